"""kernprof's main flow: make the profiler, run the code under it, write and show the profile.

:func:`run_main` is what :func:`kernprof.main` calls once the start-up
signal guard is in place (see :mod:`kernprof.signals`).
"""

from __future__ import annotations

import argparse
import builtins
import contextlib
import cProfile
import os
import pstats
import shlex
import sys
from typing import Any, Optional, Sequence

import lineprof
from lineprof.api import ByCountWrapping
from lineprof.explicit import python_command
from lineprof.report import RICH_MISSING, rich_available
from lineprof.top import parse_address as parse_live_address

from . import signals
from .errors import PROG, KernprofError, error, say
from .options import parse_args
from .running import (default_outfile, find_setup, prepare, print_exception,
                      install_trimming_excepthook, run_setup, run_target)


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



def _make_profiler(line_by_line: bool) -> Any:
    if not line_by_line:
        return ContextualProfile()
    try:
        return lineprof.LineProfiler()
    except ImportError as exc:
        raise KernprofError(f"line profiling needs the lineprof C extension, "
                            f"which failed to import: {exc}") from None


def _profile_and_report(opts: argparse.Namespace, guard: signals.HeldSignals) -> int:
    line = opts.line_by_line
    builtin = opts.builtin or line
    outfile = opts.outfile or default_outfile(opts.mode, opts.target, line)
    setup = find_setup(opts.setup) if opts.setup else None
    prof = _make_profiler(line)  # before sys.path[0] changes: may import the extension
    prepare(opts)
    lineprof.profile._install(prof)
    if builtin:
        builtins.profile = prof

    owner = os.getpid()
    stdout = sys.stdout
    held = signals.HeldSignals()
    try:
        with contextlib.ExitStack() as quiet:
            if opts.verbosity < -1:
                devnull = quiet.enter_context(open(os.devnull, "w"))
                quiet.enter_context(contextlib.redirect_stdout(devnull))
                stdout = devnull
                if opts.verbosity < -2:
                    quiet.enter_context(contextlib.redirect_stderr(devnull))
            try:
                _start_worker(prof, opts, outfile)
                outcome = _run(prof, opts, setup, guard, held)
            finally:
                if line:
                    prof.stop_worker()  # before the final write to the same file
            if os.getpid() != owner:
                # A child forked by the code came back here: the profile is
                # the parent's to write, and this process ends as it would.
                held.release()
                status = 0
            else:
                status = _write(prof, opts, outfile, stdout)
                held.release()
                try:
                    held.redeliver()  # signals that waited for the write take effect now
                except BaseException as exc:  # what their handlers raised
                    outcome = signals.stronger(outcome, exc)
                if status == 0 and not held.received:
                    try:
                        _show_quietly(prof, opts, outfile, stdout)
                    except (KeyboardInterrupt, signals.Terminated) as exc:  # a signal while showing
                        outcome = signals.stronger(outcome, exc)
    finally:
        held.release()
        signals.uninstall_fatal()

    if outcome is None:
        return status
    if isinstance(outcome, SystemExit):  # Terminated included: main() ends by its signal
        if status and outcome.code in (None, 0):
            return status  # the profile was not written: not a success
        raise outcome
    if isinstance(outcome, KeyboardInterrupt):
        install_trimming_excepthook()
        raise outcome
    print_exception(outcome)
    if _is_missing_profile(outcome) and not (opts.builtin or opts.line_by_line):
        say(sys.stderr, f"{PROG}: hint: `profile` is defined only with -l (line by line) "
                        f"or -b: try kernprof -l "
                        f"{' '.join(shlex.quote(a) for a in _command(opts))}")
    return 1


def _is_missing_profile(exc: BaseException) -> bool:
    """Return whether ``exc`` is the NameError of code that uses ``@profile`` without it being defined."""
    return (isinstance(exc, NameError) and not isinstance(exc, UnboundLocalError)
            and str(exc) == "name 'profile' is not defined")


def _command(opts: argparse.Namespace) -> list:
    """Return what kernprof was asked to run: the script and its arguments, -m or -c."""
    if opts.mode in ("script", "stdin"):
        return [opts.target, *opts.args]
    return [f"-{opts.mode}", opts.target, *opts.args]


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
            error(f"--live: {exc}")
            raise SystemExit(2) from None
        if not addr["local"] and not opts.live_allow_remote:
            error(f"--live: refusing {opts.live}: not a loopback address, so anyone who "
                   f"can reach it could read the profile (add --live-allow-remote to allow it)")
            raise SystemExit(2)
    try:
        address = prof.start_worker(
            flush=outfile if opts.output_interval is not None else None,
            interval=opts.output_interval or 1.0, live=opts.live,
            allow_remote=opts.live_allow_remote)
    except ValueError as exc:  # an interval out of range
        error(str(exc))
        raise SystemExit(2) from None
    except OSError as exc:  # cannot listen
        raise KernprofError(f"--live: {exc}") from None
    if address and opts.verbosity >= -2:
        say(sys.stderr, f"{PROG}: live view at {address}; watch it with: "
                         f"{python_command()} -m lineprof top {shlex.quote(address)}")


def _run(prof: Any, opts: argparse.Namespace, setup: Optional[str],
         guard: signals.HeldSignals, held: signals.HeldSignals) -> Optional[BaseException]:
    """Run the setup file and the code under ``prof``; return what the code raised, or None.

    The signals ``guard`` noted since kernprof started are handed over to
    the run's handlers first; if one came, the code does not run and its
    exception is the outcome.  When the code is done, however it ended,
    ``held`` holds the signals back, so that nothing interrupts the
    profile write that follows.
    """
    line = opts.line_by_line
    outcome: Optional[BaseException] = None
    try:
        try:
            guard.handover()
            if guard.received:  # during start-up: the code does not run
                raise signals.exception_for(guard.received[0])
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
        error(f"could not write profile to {outfile!r}: {exc.strerror or exc}")
        return 1
    if opts.verbosity >= 0:
        say(stdout, f"Wrote profile results to {outfile!r}")
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
                say(stdout, "No profile data.")
    elif opts.verbosity >= 0:
        viewer = "lineprof" if line else "pstats"
        say(stdout, f"Inspect results with:\n{python_command()} -m {viewer} {shlex.quote(outfile)}")


def run_main(argv: Optional[Sequence[str]], guard: signals.HeldSignals) -> int:
    """Run kernprof with ``argv`` (default ``sys.argv[1:]``) and return the exit code.

    ``guard`` holds the signals that came since kernprof started (see
    :mod:`kernprof.signals`).  The profiled code's own ``SystemExit`` and
    ``KeyboardInterrupt`` are re-raised after the profile is written, so
    the process ends as ``python`` would have; another uncaught exception
    prints its traceback and returns 1.  After a fatal signal that kernprof
    caught, the process ends by that signal and this does not return.
    Usage errors raise SystemExit(2).
    """
    try:
        opts = parse_args(sys.argv[1:] if argv is None else list(argv))
    except KernprofError as exc:  # a configuration file that cannot be used
        error(str(exc))
        return 1
    if opts.config.warning():
        say(sys.stderr, f"{PROG}: warning: {opts.config.warning()}")
    if (opts.output_interval is not None or opts.live) and not opts.line_by_line:
        error("-i/--output-interval and --live need -l/--line-by-line")
        return 2
    if opts.rich and not rich_available():
        error(RICH_MISSING)
        return 2

    saved_argv, saved_path = list(sys.argv), list(sys.path)
    saved_main = sys.modules.get("__main__")
    missing = object()
    saved_builtin = builtins.__dict__.get("profile", missing)
    terminated = 0
    try:
        return _profile_and_report(opts, guard)
    except KernprofError as exc:
        error(str(exc))
        return 1
    except signals.Terminated as exc:
        terminated = exc.signum
        return 128 + terminated  # not reached: ends by the signal below
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
            signals.end_by_signal(terminated)
