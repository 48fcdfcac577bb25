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

Signals: the profile is written however the run ends (:mod:`kernprof.signals`).

The package is split by concern: :mod:`kernprof.options` (the command
line), :mod:`kernprof.running` (finding and running the code, its
tracebacks), :mod:`kernprof.signals`, and :mod:`kernprof.cli` (the main
flow).  Importing ``kernprof`` itself is cheap: :func:`main` holds the
signals back before it imports the rest, and the names below are loaded
on first use.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from . import signals as _signals

__all__ = ["ContextualProfile", "KernprofError", "build_parser", "main"]

#: Where each public (and test-used) name lives, loaded on first use.
_LAZY = {
    "ContextualProfile": "cli", "run_main": "cli",
    "KernprofError": "errors",
    "build_parser": "options", "parse_args": "options", "split_special": "options",
    "DEFAULT_UNIT": "options",
    "find_script": "running", "check_module": "running", "default_outfile": "running",
    "trim_traceback": "running", "trim_exception": "running",
}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run kernprof with ``argv`` (default ``sys.argv[1:]``) and return the exit code.

    Signals that come while kernprof starts wait for the run (see
    :mod:`kernprof.signals`); the rest is :func:`kernprof.cli.run_main`.
    """
    guard = _signals.HeldSignals(default_only=True)
    guard.hold()
    try:
        from .cli import run_main

        return run_main(argv, guard)
    finally:
        guard.release()


def __getattr__(name: str) -> Any:
    if name == "__version__":  # lineprof's: one version for the two
        from lineprof._version import __version__

        return __version__
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'kernprof' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
