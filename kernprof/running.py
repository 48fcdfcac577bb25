"""Running the code kernprof profiles: finding the script or module, running it as ``__main__``, and its tracebacks.

The code runs as ``python`` would run it: ``sys.argv``, ``sys.path[0]``
and the ``__main__`` module are set the same way, and a traceback leaves
out kernprof's frames, runpy's and those of lineprof's ``@profile``
wrappers.
"""

from __future__ import annotations

import argparse
import builtins
import contextlib
import importlib.machinery
import importlib.util
import linecache
import os
import runpy
import sys
import types
import zipfile
from typing import Any, List, Optional

import lineprof.api

from .errors import KernprofError

_HERE = os.path.dirname(os.path.abspath(__file__))
#: The file of lineprof's decorator wrappers, whose frames tracebacks do not show.
_WRAPPERS_FILE = os.path.abspath(lineprof.api.__file__)
_RUNPY_FILES = {getattr(runpy, "__file__", None), "<frozen runpy>"}


def default_outfile(mode: str, target: str, line_by_line: bool) -> str:
    """Return kernprof's default output name: ``<script basename>``, the module name, ``kernprof-command`` or ``kernprof-stdin``, plus .lprof/.prof."""
    ext = ".lprof" if line_by_line else ".prof"
    if mode == "m":
        base = target
    elif mode == "c":
        base = "kernprof-command"
    elif mode == "stdin":
        base = "kernprof-stdin"
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
        # Python 3.9+ runs a script under its absolute path; 3.8 as typed
        # (its tracebacks and __file__ say so; profiles still record it whole).
        opts.script_path = abs_path if sys.version_info >= (3, 9) else path
        _set_path0(os.path.dirname(os.path.realpath(abs_path)))
    elif opts.mode == "m":
        sys.argv = [opts.target, *opts.args]  # runpy replaces argv[0] with the file
        _set_path0(os.getcwd())
        check_module(opts.target)
    elif opts.mode == "stdin":
        sys.argv = ["-", *opts.args]
        _set_path0("")
        try:
            opts.code = sys.stdin.read()
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise KernprofError(f"can't read the script from standard input: {exc}") from None
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
    elif opts.mode == "stdin":  # as python - runs it
        module = _main_module(__file__="<stdin>",
                              __loader__=importlib.machinery.BuiltinImporter)
        _exec_code(opts.code, "<stdin>", module.__dict__)
    else:
        module = _main_module(__loader__=importlib.machinery.BuiltinImporter)
        _exec_code(opts.target, "<string>", module.__dict__)


def _exec_code(code: str, name: str, namespace: dict) -> None:
    # linecache holds the code for the run, so -v can show its lines.
    linecache.cache[name] = (len(code), None, code.splitlines(True), name)
    exec(compile(code, name, "exec", dont_inherit=True), namespace)


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


def print_exception(exc: BaseException) -> None:
    # The default hook shows exc.__traceback__, whatever tb it is given.
    trim_exception(exc)
    sys.excepthook(type(exc), exc, exc.__traceback__)


def install_trimming_excepthook() -> None:
    previous = sys.excepthook

    def hook(exc_type: Any, exc: Any, tb: Any) -> None:
        if isinstance(exc, BaseException):
            trim_exception(exc)
            tb = exc.__traceback__
        else:
            tb = trim_traceback(tb)
        previous(exc_type, exc, tb)

    sys.excepthook = hook
