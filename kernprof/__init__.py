"""kernprof: run a script, module or code string under a profiler.

Command-line compatible with line_profiler 5's ``kernprof``::

    kernprof -l [options] script.py [args...]
    kernprof -l [options] -m package.module [args...]
    kernprof -l [options] -c "code" [args...]

``-l`` line-profiles the functions decorated with ``@profile`` (or
``@lineprof.profile``) into ``<script>.lprof``; without it the whole run
goes through :mod:`cProfile` into ``<script>.prof``.  The code runs as
``__main__`` exactly as ``python`` would run it, and its exit status is
kept.  The console-script entry point is :func:`kernprof.main`.

Signals: the profile is written however the run ends.  SIGINT unwinds the
code as a KeyboardInterrupt, as in ``python``.  SIGTERM, whose default
action would kill the process on the spot, unwinds it too when the code has
not set a handler of its own; kernprof then writes the profile and ends by
SIGTERM.  A code that handles the signals itself (``signal.signal``,
``loop.add_signal_handler``) keeps them, and its exit status is kept.  While
the profile is being written, SIGINT and SIGTERM wait.
"""

from __future__ import annotations

import argparse
import builtins
import contextlib
import cProfile
import importlib.machinery
import importlib.util
import os
import pstats
import runpy
import shlex
import signal
import sys
import threading
import types
import zipfile
from typing import Any, Dict, List, NoReturn, Optional, Sequence, Tuple

import lineprof
from lineprof.api import ByCountWrapping
from lineprof.cli import positive_float
from lineprof.top import parse_address as parse_live_address
from lineprof.explicit import python_command
from lineprof.report import RICH_MISSING, rich_available

__all__ = ["ContextualProfile", "KernprofError", "build_parser", "main"]

PROG = "kernprof"
DEFAULT_UNIT = 1e-6

_HERE = os.path.dirname(os.path.abspath(__file__))
#: The file of lineprof's decorator wrappers, whose frames tracebacks do not show.
_WRAPPERS_FILE = os.path.join(os.path.dirname(os.path.abspath(lineprof.__file__)), "api.py")
_RUNPY_FILES = {getattr(runpy, "__file__", None), "<frozen runpy>"}


class KernprofError(Exception):
    """A user error kernprof reports as one line, ``kernprof: error: <message>``, exit 1."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line on stderr (exit 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


class ContextualProfile(ByCountWrapping, cProfile.Profile):
    """cProfile with kernprof's decorator, ``with`` and by-count enabling (``-b`` without ``-l``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.enable_count = 0

    def enable_by_count(self) -> None:
        """Enable cProfile when the count goes from 0 to 1; returns None."""
        if self.enable_count == 0:
            self.enable()
        self.enable_count += 1

    def disable_by_count(self) -> None:
        """Disable cProfile when the count drops to 0; returns None."""
        if self.enable_count > 0:
            self.enable_count -= 1
            if self.enable_count == 0:
                self.disable()

    def __call__(self, func: Any) -> Any:
        return self.wrap_callable(func)

    def __enter__(self) -> "ContextualProfile":
        self.enable_by_count()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.disable_by_count()

    def runcall(self, func: Any, /, *args: Any, **kwargs: Any) -> Any:
        self.enable_by_count()
        try:
            return func(*args, **kwargs)
        finally:
            self.disable_by_count()


# -- argument parsing ---------------------------------------------------------

# Options taking a value, to find where `-m`/`-c` stand among the options.
_SHORT_WITH_VALUE = set("osu")
_SHORT_OPTIONAL_VALUE = set("i")
_LONG_WITH_VALUE = {"--outfile", "--setup", "--unit", "--live"}
_LONG_OPTIONAL_VALUE = {"--output-interval"}


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _bare_interval(argv: Sequence[str]) -> List[str]:
    """Return ``argv`` with a bare ``-i`` (no number after it) spelled ``--output-interval=1``.

    argparse would otherwise take the script's name as the interval.
    """
    out = list(argv)
    i = 0
    while i < len(out):
        tok = out[i]
        if tok == "--" or tok == "-" or not tok.startswith("-"):
            break
        nxt_is_value = i + 1 < len(out) and _is_number(out[i + 1])
        if tok in ("-i", "--output-interval") and not nxt_is_value:
            out[i] = "--output-interval=1"
        elif (not tok.startswith("--") and len(tok) > 2 and tok.endswith("i")
              and not (set(tok[1:-1]) & (_SHORT_WITH_VALUE | set("mc")))
              and not nxt_is_value):
            out[i:i + 1] = [tok[:-1], "--output-interval=1"]
            i += 1
        elif tok in _LONG_WITH_VALUE or (not tok.startswith("--") and tok[-1:] in _SHORT_WITH_VALUE):
            i += 1  # its value
        elif not tok.startswith("--") and set(tok[1:]) & set("mc"):
            break
        i += 1
    return out


def split_special(argv: Sequence[str]) -> Optional[Tuple[List[str], str, str, List[str]]]:
    """Find ``-m MODULE`` or ``-c CODE`` among the options, before any script name.

    Returns ``(options, "m" or "c", value, args)``, or None when a script
    name (or ``--``) comes first.  Raises KernprofError if the flag has no
    value.
    """
    i = 0
    while i < len(argv):
        tok = argv[i]
        if tok == "--" or tok == "-" or not tok.startswith("-"):
            return None
        if tok.startswith("--"):
            if "=" not in tok:
                if tok in _LONG_WITH_VALUE:
                    i += 1
                elif (tok in _LONG_OPTIONAL_VALUE and i + 1 < len(argv)
                      and _is_number(argv[i + 1])):
                    i += 1
            i += 1
            continue
        for j in range(1, len(tok)):  # a cluster of short flags, e.g. -lvo out
            ch = tok[j]
            if ch in "mc":
                if j + 1 < len(tok):
                    value, rest = tok[j + 1:], list(argv[i + 1:])
                elif i + 1 < len(argv):
                    value, rest = argv[i + 1], list(argv[i + 2:])
                else:
                    raise KernprofError(f"argument -{ch}: expected one argument")
                options = list(argv[:i]) + ([tok[:j]] if j > 1 else [])
                return options, ch, value, rest
            if ch in _SHORT_WITH_VALUE:
                if j == len(tok) - 1:
                    i += 1  # the value is the next word
                break
            if ch in _SHORT_OPTIONAL_VALUE:
                if j == len(tok) - 1 and i + 1 < len(argv) and _is_number(argv[i + 1]):
                    i += 1
                break
        i += 1
    return None


def build_parser(with_script: bool = True) -> argparse.ArgumentParser:
    """Return kernprof's parser; ``with_script=False`` parses only the options before -m/-c."""
    parser = _Parser(
        prog=PROG, allow_abbrev=False,
        description="Run and profile a Python script, module (-m) or code string (-c).")
    prof = parser.add_argument_group("profiling options")
    prof.add_argument("-l", "--line-by-line", action="store_true",
                      help="line-profile the functions decorated with @profile "
                           "(instead of cProfile); implies --builtin")
    prof.add_argument("-b", "--builtin", action="store_true",
                      help="put `profile` in the builtins: @profile, `with profile:`, "
                           "profile.enable_by_count()/disable_by_count()")
    prof.add_argument("-s", "--setup", metavar="SETUP",
                      help="Python file to run before the profiled code, outside the profiler")
    out = parser.add_argument_group("output options")
    out.add_argument("-o", "--outfile", metavar="OUTFILE",
                     help="where to save the profile (default: <script>.lprof with -l, "
                          "<script>.prof without)")
    out.add_argument("-v", "--verbose", "--view", action="count", default=0,
                     help="show the results after saving them")
    out.add_argument("-q", "--quiet", action="count", default=0,
                     help="print less: once, no 'Wrote profile results' message; "
                          "twice, no stdout; three times, no stderr")
    out.add_argument("-r", "--rich", action="store_true",
                     help="syntax-highlighted results with -v (needs the 'rich' package)")
    out.add_argument("-u", "--unit", type=positive_float, default=DEFAULT_UNIT,
                     help=f"output unit in seconds for -v (default: {DEFAULT_UNIT:g})")
    out.add_argument("-z", "--skip-zero", action="store_true",
                     help="with -v, hide functions that were never called")
    out.add_argument("--summarize", action="store_true",
                     help="with -v, end with one line of total time per function")
    out.add_argument("-i", "--output-interval", type=positive_float, nargs="?", const=1.0,
                     default=None, metavar="SECONDS",
                     help="with -l, rewrite OUTFILE with a snapshot every SECONDS "
                          "(default 1), from a native thread: a killed program "
                          "keeps its profile")
    live = parser.add_argument_group("live view options (with -l)")
    live.add_argument("--live", metavar="ADDR",
                      help="serve live snapshots at ADDR (HOST:PORT, PORT or unix:PATH; "
                           "host defaults to 127.0.0.1; port 0 picks a free one) "
                           "for `python -m lineprof top ADDR`")
    live.add_argument("--live-allow-remote", action="store_true",
                      help="allow --live on an address other than loopback (anyone "
                           "who can reach it can read the profile)")
    if with_script:
        parser.add_argument("script", nargs="?", metavar='{path/to/script | -m module | -c "code"}',
                            help="the script, module or code to run")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the script")
    return parser


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Return the options, with ``mode`` ("script", "m" or "c") and ``target`` set.

    argparse's usage errors raise SystemExit(2).
    """
    argv = _bare_interval(argv)
    try:
        special = split_special(argv)
    except KernprofError as exc:
        build_parser().error(str(exc))
    if special is None:
        parser = build_parser()
        opts = parser.parse_args(argv)
        if opts.script is None:
            parser.error("nothing to run: give a script, -m module or -c code")
        opts.mode, opts.target = "script", opts.script
    else:
        options, flag, value, rest = special
        opts = build_parser(with_script=False).parse_args(options)
        if opts.args:  # cannot happen: split_special stops at the first word
            build_parser().error(f"unexpected arguments before -{flag}: {opts.args}")
        opts.mode, opts.target, opts.args = flag, value, rest
    opts.verbosity = opts.verbose - opts.quiet
    return opts


# -- running the code ---------------------------------------------------------

def default_outfile(mode: str, target: str, line_by_line: bool) -> str:
    """Return kernprof's default output name: ``<script basename>``, the module name or ``kernprof-command``, plus .lprof/.prof."""
    ext = ".lprof" if line_by_line else ".prof"
    if mode == "m":
        base = target
    elif mode == "c":
        base = "kernprof-command"
    else:
        base = os.path.basename(os.path.normpath(target))
    return base + ext


def find_script(name: str) -> str:
    """Return the path of script ``name``: as given, else searched on PATH.

    Raises KernprofError if it is not found or cannot be read.
    """
    if os.path.isfile(name):
        _check_readable(name)
        return name
    if _runnable_dir(name):
        return name
    if os.sep not in name and (os.altsep is None or os.altsep not in name):
        for folder in os.environ.get("PATH", os.defpath).split(os.pathsep):
            candidate = os.path.join(folder, name)
            if folder and os.path.isfile(candidate):
                _check_readable(candidate)
                return candidate
    if os.path.isdir(name):
        raise KernprofError(f"can't find '__main__' module in {name!r}")
    raise KernprofError(f"could not find script {name!r}")


def _check_readable(path: str) -> None:
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise KernprofError(f"can't open script {path!r}: {exc.strerror or exc}") from None


def _runnable_dir(path: str) -> bool:
    if os.path.isdir(path):
        return os.path.isfile(os.path.join(path, "__main__.py"))
    return False


def check_module(name: str) -> None:
    """Return None if ``python -m name`` could run it; raise KernprofError otherwise."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError, TypeError, AttributeError):
        spec = None
    if spec is None:
        raise KernprofError(f"no module named {name!r}")
    if spec.submodule_search_locations is not None:
        try:
            main_spec = importlib.util.find_spec(name + ".__main__")
        except (ImportError, ValueError):
            main_spec = None
        if main_spec is None:
            raise KernprofError(f"{name!r} is a package and cannot be directly executed "
                                f"(no {name}.__main__)")


def _set_path0(entry: str) -> None:
    if sys.path:
        sys.path[0] = entry
    else:
        sys.path.insert(0, entry)


def _main_module(**attrs: Any) -> types.ModuleType:
    module = types.ModuleType("__main__")
    module.__dict__.update(__builtins__=builtins, __spec__=None, __package__=None, **attrs)
    sys.modules["__main__"] = module
    return module


def _exec_file(path: str, namespace: dict) -> None:
    with open(path, "rb") as f:
        source = f.read()
    exec(compile(source, path, "exec", dont_inherit=True), namespace)


def prepare(opts: argparse.Namespace) -> None:
    """Set sys.argv and sys.path[0] as python would for the target; returns None.

    Raises KernprofError if the script or module cannot be found.
    """
    if opts.mode == "script":
        path = find_script(opts.target)
        opts.script_path = path
        sys.argv = [opts.target, *opts.args]
        if os.path.isdir(path) or zipfile.is_zipfile(path):
            return  # runpy.run_path puts the directory or zip on sys.path itself
        abs_path = path if os.path.isabs(path) else os.path.join(os.getcwd(), path)
        opts.script_path = abs_path
        _set_path0(os.path.dirname(os.path.realpath(abs_path)))
    elif opts.mode == "m":
        sys.argv = [opts.target, *opts.args]  # runpy replaces argv[0] with the file
        _set_path0(os.getcwd())
        check_module(opts.target)
    else:
        sys.argv = ["-c", *opts.args]
        _set_path0("")


def run_target(opts: argparse.Namespace) -> None:
    """Run the script, module or code as ``__main__``; returns None, raises what it raises."""
    if opts.mode == "script":
        path = opts.script_path
        if os.path.isdir(path) or zipfile.is_zipfile(path):
            runpy.run_path(path, run_name="__main__")
            return
        module = _main_module(
            __file__=path, __cached__=None,
            __loader__=importlib.machinery.SourceFileLoader("__main__", path))
        _exec_file(path, module.__dict__)
    elif opts.mode == "m":
        runpy.run_module(opts.target, run_name="__main__", alter_sys=True)
    else:
        module = _main_module(__loader__=importlib.machinery.BuiltinImporter)
        exec(compile(opts.target, "<string>", "exec", dont_inherit=True), module.__dict__)


def find_setup(path: str) -> str:
    """Return the absolute path of setup file ``path``; raise KernprofError if it is missing."""
    if not os.path.isfile(path):
        raise KernprofError(f"could not find setup file {path!r}")
    return os.path.abspath(path)


def run_setup(abs_path: str) -> None:
    """Execute the setup file ``abs_path`` as ``__main__`` in a namespace of its own; returns None."""
    folder = os.path.dirname(abs_path)
    sys.path.insert(0, folder)
    try:
        _exec_file(abs_path, {"__file__": abs_path, "__name__": "__main__",
                              "__builtins__": builtins})
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(folder)


# -- tracebacks -----------------------------------------------------------------

def _is_ours(filename: str) -> bool:
    return os.path.dirname(os.path.abspath(filename)) == _HERE


def _is_wrapper(code: types.CodeType) -> bool:
    return code.co_name == "wrapper" and os.path.abspath(code.co_filename) == _WRAPPERS_FILE


def trim_traceback(tb: Optional[types.TracebackType]) -> Optional[types.TracebackType]:
    """Return ``tb`` without kernprof's (and runpy's) frames in front of the user's code.

    The frames of lineprof's decorator wrappers (``@profile``) are left out
    too, wherever they are, so the traceback reads as under ``python``.
    """
    return _drop_wrappers(_trim_front(tb))


def _trim_front(tb: Optional[types.TracebackType]) -> Optional[types.TracebackType]:
    last_ours = None
    t = tb
    while t is not None:
        if _is_ours(t.tb_frame.f_code.co_filename):
            last_ours = t
        t = t.tb_next
    if last_ours is None:
        return tb
    t = last_ours.tb_next
    while t is not None and t.tb_frame.f_code.co_filename in _RUNPY_FILES:
        t = t.tb_next
    return t


def _drop_wrappers(tb: Optional[types.TracebackType]) -> Optional[types.TracebackType]:
    entries = []
    while tb is not None:
        entries.append(tb)
        tb = tb.tb_next
    kept = [t for t in entries if not _is_wrapper(t.tb_frame.f_code)]
    if len(kept) == len(entries):
        return entries[0] if entries else None
    new = None
    for t in reversed(kept):
        new = types.TracebackType(new, t.tb_frame, t.tb_lasti, t.tb_lineno)
    return new


_EXCEPTION_GROUP = getattr(builtins, "BaseExceptionGroup", ())


def trim_exception(exc: BaseException) -> None:
    """Trim the tracebacks of ``exc`` and of the exceptions it chains or groups in place; returns None."""
    todo: List[Optional[BaseException]] = [exc]
    seen = set()
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        e.__traceback__ = trim_traceback(e.__traceback__)
        todo += [e.__cause__, e.__context__]
        if isinstance(e, _EXCEPTION_GROUP):
            todo += list(e.exceptions)


def _print_exception(exc: BaseException) -> None:
    # The default hook shows exc.__traceback__, whatever tb it is given.
    trim_exception(exc)
    sys.excepthook(type(exc), exc, exc.__traceback__)


def _install_trimming_excepthook() -> None:
    previous = sys.excepthook

    def hook(exc_type: Any, exc: Any, tb: Any) -> None:
        if isinstance(exc, BaseException):
            trim_exception(exc)
            tb = exc.__traceback__
        else:
            tb = trim_traceback(tb)
        previous(exc_type, exc, tb)

    sys.excepthook = hook


# -- signals ----------------------------------------------------------------------

_SIGTERM = getattr(signal, "SIGTERM", None)
#: The signals held while the profile is written.
_HELD = tuple(s for s in (getattr(signal, "SIGINT", None), _SIGTERM) if s is not None)


class _Terminated(SystemExit):
    """Raised by kernprof's SIGTERM handler to unwind the profiled code.

    A SystemExit, so that asyncio passes it through tasks and the loop as it
    does KeyboardInterrupt.  Its code is the shell's status for a SIGTERM
    death (143), for the case where it escapes kernprof.
    """

    def __init__(self) -> None:
        super().__init__(128 + int(_SIGTERM or 15))


#: The process that installed kernprof's SIGTERM handler.
_sigterm_owner: Optional[int] = None
_fork_hook_registered = False


def _on_sigterm(signum: int, frame: Any) -> None:
    if os.getpid() != _sigterm_owner:  # a child forked by the code: die as by default
        signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)
        return
    raise _Terminated()


def _sigterm_default_in_child() -> None:
    # A forked child (multiprocessing's workers) dies by SIGTERM at once, as
    # under python: Pool.terminate() and Process.terminate() rely on it.
    with contextlib.suppress(OSError, ValueError, TypeError):
        if signal.getsignal(_SIGTERM) is _on_sigterm:
            signal.signal(_SIGTERM, signal.SIG_DFL)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def install_sigterm() -> bool:
    """Make SIGTERM raise in the code instead of killing the process at once.

    Only when SIGTERM has its default action and this is the main thread;
    returns True if kernprof's handler was installed.
    """
    if _SIGTERM is None or not _in_main_thread():
        return False
    global _sigterm_owner, _fork_hook_registered
    try:
        if signal.getsignal(_SIGTERM) != signal.SIG_DFL:
            return False
        _sigterm_owner = os.getpid()
        signal.signal(_SIGTERM, _on_sigterm)
    except (OSError, ValueError):
        return False
    if not _fork_hook_registered and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_sigterm_default_in_child)
        _fork_hook_registered = True
    return True


def uninstall_sigterm() -> None:
    """Give SIGTERM its default action back if kernprof's handler is still the one; returns None."""
    with contextlib.suppress(OSError, ValueError, TypeError):
        if signal.getsignal(_SIGTERM) is _on_sigterm:
            signal.signal(_SIGTERM, signal.SIG_DFL)


def end_by_signal(signum: int) -> None:
    """Flush the output and end the process by ``signum``'s default action; does not return."""
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        with contextlib.suppress(Exception):
            stream.flush()
    with contextlib.suppress(OSError, ValueError):
        signal.signal(signum, signal.SIG_DFL)
        if hasattr(signal, "pthread_sigmask"):
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signum})
        signal.raise_signal(signum)
    os._exit(128 + signum)  # the signal did not end the process (not the main thread?)


class HeldSignals:
    """Holds SIGINT and SIGTERM back while the profile is written.

    :meth:`hold` puts in handlers that only note the signal (for every
    thread: the handlers are process-wide, unlike a signal mask);
    :meth:`release` puts the previous handlers back, and :meth:`redeliver`
    then sends the noted signals again, so that those handlers get them as
    if they had come just after the write.  ``received`` lists the signals
    that came in between, in order.  All do nothing outside the main thread.
    """

    def __init__(self) -> None:
        self.received: List[int] = []
        self._saved: Dict[int, Any] = {}
        self._redelivered = False

    def _note(self, signum: int, frame: Any) -> None:
        self.received.append(signum)

    def hold(self) -> None:
        """Install the noting handlers that are not yet installed; returns None.

        Calling it again finishes a hold that a signal interrupted.
        """
        if not _in_main_thread():
            return
        for signum in _HELD:
            if signum in self._saved:
                continue
            try:
                self._saved[signum] = signal.signal(signum, self._note)
            except (OSError, ValueError):
                pass

    def release(self) -> None:
        """Put the previous handlers back; returns None.  Signals received since stay in ``received``."""
        while self._saved:
            signum, previous = self._saved.popitem()
            with contextlib.suppress(OSError, ValueError, TypeError):
                # None: a handler not set from Python; the default is the best guess.
                signal.signal(signum, signal.SIG_DFL if previous is None else previous)

    def redeliver(self) -> None:
        """Send each signal received while held to this process once more, SIGTERM first; returns None.

        Call it after :meth:`release`, once.  The handlers run now and
        raise what they raise (KeyboardInterrupt for SIGINT's default); an
        ignored signal stays ignored, and one whose action is the default
        ends the process, output flushed first.
        """
        if self._redelivered or not self.received:
            return
        self._redelivered = True
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        for signum in sorted(set(self.received), key=lambda s: s != _SIGTERM):
            signal.raise_signal(signum)


def _stronger(outcome: Optional[BaseException], exc: BaseException) -> BaseException:
    """Return which of the run's ``outcome`` and a later signal's ``exc`` decides the exit.

    A SIGTERM that kernprof caught is final; otherwise the later one wins,
    except that a later KeyboardInterrupt does not replace an earlier one.
    """
    if isinstance(outcome, _Terminated):
        return outcome
    if isinstance(outcome, KeyboardInterrupt) and isinstance(exc, KeyboardInterrupt):
        return outcome
    return exc


# -- main -------------------------------------------------------------------------

def _say(stream: Any, text: str) -> None:
    with contextlib.suppress(Exception):
        stream.write(text + "\n")
        stream.flush()


def _error(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run kernprof with ``argv`` (default ``sys.argv[1:]``) and return the exit code.

    The profiled code's own ``SystemExit`` and ``KeyboardInterrupt`` are
    re-raised after the profile is written, so the process ends as
    ``python`` would have; another uncaught exception prints its traceback
    and returns 1.  After a SIGTERM that kernprof caught (see the module
    docstring), the process ends by SIGTERM and this does not return.
    Usage errors raise SystemExit(2).
    """
    opts = parse_args(sys.argv[1:] if argv is None else list(argv))
    if (opts.output_interval is not None or opts.live) and not opts.line_by_line:
        _error("-i/--output-interval and --live need -l/--line-by-line")
        return 2
    if opts.rich and not rich_available():
        _error(RICH_MISSING)
        return 2

    saved_argv, saved_path = list(sys.argv), list(sys.path)
    saved_main = sys.modules.get("__main__")
    missing = object()
    saved_builtin = builtins.__dict__.get("profile", missing)
    terminated = False
    try:
        return _profile_and_report(opts)
    except KernprofError as exc:
        _error(str(exc))
        return 1
    except _Terminated:
        terminated = True
        return 128 + int(_SIGTERM or 15)  # not reached: ends by SIGTERM below
    finally:
        sys.argv = saved_argv
        sys.path[:] = saved_path
        if saved_main is not None:
            sys.modules["__main__"] = saved_main
        if saved_builtin is missing:
            builtins.__dict__.pop("profile", None)
        else:
            builtins.profile = saved_builtin
        lineprof.profile._install(None)
        if terminated:
            end_by_signal(int(_SIGTERM))


def _make_profiler(line_by_line: bool) -> Any:
    if not line_by_line:
        return ContextualProfile()
    try:
        return lineprof.LineProfiler()
    except ImportError as exc:
        raise KernprofError(f"line profiling needs the lineprof C extension, "
                            f"which failed to import: {exc}") from None


def _profile_and_report(opts: argparse.Namespace) -> int:
    line = opts.line_by_line
    builtin = opts.builtin or line
    outfile = opts.outfile or default_outfile(opts.mode, opts.target, line)
    setup = find_setup(opts.setup) if opts.setup else None
    prof = _make_profiler(line)  # before sys.path[0] changes: may import the extension
    prepare(opts)
    lineprof.profile._install(prof)
    if builtin:
        builtins.profile = prof

    stdout = sys.stdout
    held = HeldSignals()
    ours = install_sigterm()  # before the setup file: it is part of the run
    try:
        with contextlib.ExitStack() as quiet:
            if opts.verbosity < -1:
                devnull = quiet.enter_context(open(os.devnull, "w"))
                quiet.enter_context(contextlib.redirect_stdout(devnull))
                stdout = devnull
                if opts.verbosity < -2:
                    quiet.enter_context(contextlib.redirect_stderr(devnull))
            _start_worker(prof, opts, outfile)
            try:
                outcome = _run(prof, opts, setup, held)
            finally:
                if line:
                    prof.stop_worker()  # before the final write to the same file
            status = _write(prof, opts, outfile, stdout)
            held.release()
            try:
                held.redeliver()  # signals that waited for the write take effect now
            except BaseException as exc:  # what their handlers raised
                outcome = _stronger(outcome, exc)
            if status == 0 and not held.received:
                try:
                    _show_quietly(prof, opts, outfile, stdout)
                except (KeyboardInterrupt, _Terminated) as exc:  # a signal while showing
                    outcome = _stronger(outcome, exc)
    finally:
        held.release()
        if ours:
            uninstall_sigterm()

    if outcome is None:
        return status
    if isinstance(outcome, SystemExit):  # _Terminated included: main() ends by SIGTERM
        if status and outcome.code in (None, 0):
            return status  # the profile was not written: not a success
        raise outcome
    if isinstance(outcome, KeyboardInterrupt):
        _install_trimming_excepthook()
        raise outcome
    _print_exception(outcome)
    return 1


def _start_worker(prof: Any, opts: argparse.Namespace, outfile: str) -> None:
    """Start the native worker for -i and --live, and say where the live view is; returns None.

    Raises KernprofError when it cannot listen, and exits with a usage
    error (2) for a bad or non-loopback address.
    """
    if opts.output_interval is None and not opts.live:
        return
    if opts.live:
        try:
            addr = parse_live_address(opts.live)
        except ValueError as exc:
            _error(f"--live: {exc}")
            raise SystemExit(2) from None
        if not addr["local"] and not opts.live_allow_remote:
            _error(f"--live: refusing {opts.live}: not a loopback address, so anyone who "
                   f"can reach it could read the profile (add --live-allow-remote to allow it)")
            raise SystemExit(2)
    try:
        address = prof.start_worker(
            flush=outfile if opts.output_interval is not None else None,
            interval=opts.output_interval or 1.0, live=opts.live,
            allow_remote=opts.live_allow_remote)
    except ValueError as exc:  # an interval out of range
        _error(str(exc))
        raise SystemExit(2) from None
    except OSError as exc:  # cannot listen
        raise KernprofError(f"--live: {exc}") from None
    if address and opts.verbosity >= -2:
        _say(sys.stderr, f"{PROG}: live view at {address}; watch it with: "
                         f"{python_command()} -m lineprof top {shlex.quote(address)}")


def _run(prof: Any, opts: argparse.Namespace, setup: Optional[str],
         held: HeldSignals) -> Optional[BaseException]:
    """Run the setup file and the code under ``prof``; return what the code raised, or None.

    When the code is done, however it ended, ``held`` holds SIGINT and
    SIGTERM back, so that nothing interrupts the profile write that follows.
    """
    line = opts.line_by_line
    outcome: Optional[BaseException] = None
    try:
        try:
            if setup:
                run_setup(setup)  # outside the profiler
            if line:
                prof.enable_by_count()  # on for the whole run
                try:
                    run_target(opts)
                finally:
                    prof.disable_by_count()
            elif opts.builtin:
                run_target(opts)
            else:
                prof.runcall(run_target, opts)
        finally:
            held.hold()
    except BaseException as exc:  # the script's own outcome, kept for later
        outcome = exc
    held.hold()  # again, in case a signal came in the middle of the first
    while getattr(prof, "enable_count", 0) > 0:
        prof.disable_by_count()
    return outcome


def _write(prof: Any, opts: argparse.Namespace, outfile: str, stdout: Any) -> int:
    """Write the profile and say where; return 0, or 1 if writing failed."""
    try:
        prof.dump_stats(outfile)
    except OSError as exc:
        _error(f"could not write profile to {outfile!r}: {exc.strerror or exc}")
        return 1
    if opts.verbosity >= 0:
        _say(stdout, f"Wrote profile results to {outfile!r}")
    return 0


def _show_quietly(prof: Any, opts: argparse.Namespace, outfile: str, stdout: Any) -> None:
    """Show the results as the options ask; a reader of our output that went away is not an error."""
    try:
        _show(prof, opts, outfile, stdout)
    except BrokenPipeError:  # the reader of our output went away
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), stdout.fileno())


def _show(prof: Any, opts: argparse.Namespace, outfile: str, stdout: Any) -> None:
    line = opts.line_by_line
    if opts.verbosity > 0:
        if line:
            prof.print_stats(stream=stdout, output_unit=opts.unit, stripzeros=opts.skip_zero,
                             summarize=opts.summarize, rich=opts.rich)
        else:
            try:
                pstats.Stats(prof, stream=stdout).strip_dirs().sort_stats(-1).print_stats()
            except TypeError:  # pstats refuses an empty profile
                _say(stdout, "No profile data.")
    elif opts.verbosity >= 0:
        viewer = "lineprof" if line else "pstats"
        _say(stdout, f"Inspect results with:\n{python_command()} -m {viewer} {shlex.quote(outfile)}")
