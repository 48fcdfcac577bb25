"""``lineprof.profile``: a decorator you can leave in the code.

* Under ``kernprof -l`` (or ``-b``), it hands every function to kernprof's
  profiler, the same object kernprof puts in ``builtins.profile``.
* Otherwise, with ``LINEPROF=1`` (or line_profiler's ``LINE_PROFILE=1``) in
  the environment, the first decorated function creates a
  :class:`~lineprof.api.LineProfiler` that stays enabled until the
  interpreter exits; at exit the profile is written to
  ``<script basename>.lprof`` in the current directory (or to
  ``$LINEPROF_OUTPUT``) and a short summary is printed with the command to
  view it.  Decorated functions are returned unchanged (no wrapper).
* With neither, ``profile(func)`` returns ``func`` unchanged: no overhead,
  and the C extension is not even imported.
"""

from __future__ import annotations

import atexit
import os
import shlex
import shutil
import sys
from typing import Any, Callable, Optional, TypeVar

__all__ = ["GlobalProfiler", "profile", "python_command"]

F = TypeVar("F", bound=Callable[..., Any])

ENV_FLAGS = ("LINEPROF", "LINE_PROFILE")
ENV_OUTPUT = "LINEPROF_OUTPUT"
_FALSY = ("", "0", "false", "no", "off")


def env_enabled() -> bool:
    """Return True if ``LINEPROF`` or ``LINE_PROFILE`` is set to a true-ish value."""
    return any(os.environ.get(name, "").strip().lower() not in _FALSY for name in ENV_FLAGS)


def python_command() -> str:
    """Return how to type this interpreter in a shell: "python", "python3" or its path."""
    for name in ("python", "python3"):
        found = shutil.which(name)
        try:
            if found and os.path.samefile(found, sys.executable):
                return name
        except OSError:
            pass
    return shlex.quote(sys.executable)


def default_output() -> str:
    """Return ``$LINEPROF_OUTPUT`` or ``<basename of sys.argv[0]>.lprof``."""
    out = os.environ.get(ENV_OUTPUT)
    if out:
        return out
    script = sys.argv[0] if sys.argv else ""
    base = os.path.basename(script) if script not in ("", "-c", "-") else ""
    return (base or "lineprof") + ".lprof"


def _in_child_process() -> bool:
    mp = sys.modules.get("multiprocessing")
    return mp is not None and mp.parent_process() is not None


class GlobalProfiler:
    """The object behind ``lineprof.profile``; see the module docstring."""

    def __init__(self) -> None:
        self._installed: Any = None  # kernprof's profiler, when kernprof runs
        self._own: Any = None  # our LineProfiler, under LINEPROF=1
        self._off = False
        self._output: Optional[str] = None
        self._pid = 0  # the process that enabled it: only it writes at exit

    @property
    def profiler(self) -> Any:
        """Return the profiler decorated functions go to, or None when profiling is off."""
        return self._installed if self._installed is not None else self._own

    def _install(self, prof: Any) -> None:
        """Make ``profile`` delegate to ``prof`` (kernprof does this); None undoes it."""
        self._installed = prof

    def __call__(self, func: F) -> F:
        """Profile ``func`` if profiling is on, and return it (or kernprof's wrapper of it).

        Raises TypeError, when profiling is on, for objects with no Python code.
        """
        if self._installed is not None:
            return self._installed(func)
        prof = self._own
        if prof is None:
            if self._off or not env_enabled():
                return func
            prof = self.enable()
        prof.add_function(func)
        return func

    def enable(self, output: Optional[str] = None) -> Any:
        """Start profiling decorated functions now, as ``LINEPROF=1`` would; return the LineProfiler.

        ``output`` overrides where the profile is written at exit.
        """
        self._off = False
        if output is not None:
            self._output = output
        if self._own is None:
            from .api import LineProfiler

            self._own = LineProfiler()
            self._own.enable_by_count()
            self._pid = os.getpid()
            atexit.register(self._at_exit)
        return self._own

    def disable(self) -> None:
        """Make later decorations no-ops; functions already registered stay profiled.  Returns None."""
        self._off = True

    def __getattr__(self, name: str) -> Any:
        # print_stats, dump_stats, get_stats... of the active profiler.
        if name.startswith("_"):
            raise AttributeError(name)
        prof = self.profiler
        if prof is None:
            raise AttributeError(
                f"lineprof.profile has no {name!r}: profiling is off "
                f"(set LINEPROF=1 or run under kernprof -l)")
        return getattr(prof, name)

    def _at_exit(self) -> None:
        """Write the profile and print a short summary; never raises."""
        prof = self._own
        if prof is None or _in_child_process() or os.getpid() != self._pid:
            return  # a forked child: the profile is the parent's to write
        try:
            prof.disable()
        except Exception:
            pass
        out = self._output or default_output()
        try:
            prof.dump_stats(out)
        except OSError as exc:
            print(f"lineprof: could not write {out!r}: {exc.strerror or exc}", file=sys.stderr)
            return
        try:
            from .report import show_summary

            stats = prof.get_stats()
            show_summary(stats, stats.functions, stream=sys.stdout, stripzeros=True)
        except Exception as exc:  # the file is written; the summary is a bonus
            print(f"lineprof: could not summarise the profile: {exc}", file=sys.stderr)
        print(f"Wrote profile results to {out!r}")
        print("Inspect results with:")
        print(f"{python_command()} -m lineprof {shlex.quote(out)}")
        sys.stdout.flush()


#: The global decorator; see the module docstring.
profile = GlobalProfiler()
