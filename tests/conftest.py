"""Shared helpers for the tier (b) tests: real Python code against independent truth.

The helpers here talk to the C extension (``lineprof._lineprof.Profiler``)
directly, so the ground truth does not depend on the Python front end:

* :func:`profile_calls` registers code objects, runs a workload with the
  hook enabled and returns the snapshot as a flat dict;
* :func:`settrace_hits` runs the same workload under ``sys.settrace`` and
  counts CPython's own ``'line'`` events per code object: the truth for hits;
* :func:`marker_line` finds a source line by a ``# MARKER`` comment, so tests
  never hard-code line numbers;
* :func:`assert_time_between` checks a profiler time (ns) against a
  ``time.perf_counter()`` sandwich measured by the test itself.

Times: ``perf_counter()`` and the profiler both read CLOCK_MONOTONIC on
Linux, so a line's interval is contained in the interval between a stamp
taken on the line before and a stamp taken on the line after, and contains
any interval stamped inside the line. Those containments are exact (up to
float rounding), whatever the machine's load, and are what the timing
tests assert.
"""

from __future__ import annotations

import dis
import gc
import importlib.util
import inspect
import os
import sys
import sysconfig
import threading
import types
from collections import Counter
from typing import Any, Callable, Dict, Iterable, Optional, Tuple

import pytest


def _load_extension() -> types.ModuleType:
    """Return ``lineprof._lineprof``.

    The usual import runs ``lineprof/__init__.py`` (the front end) first. If
    that fails, the extension is loaded from its file on its own, so these
    tests do not depend on the front end.
    """
    try:
        from lineprof import _lineprof as ext
        return ext
    except ImportError as exc:
        if "_lineprof" in str(exc):
            raise  # the extension itself is missing: nothing to fall back on
    except Exception:  # a broken front end
        pass
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lineprof",
                        "_lineprof" + sysconfig.get_config_var("EXT_SUFFIX"))
    spec = importlib.util.spec_from_file_location("lineprof._lineprof", path)
    assert spec is not None and spec.loader is not None, path
    ext = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ext)
    sys.modules["lineprof._lineprof"] = ext
    return ext


_lineprof = _load_extension()

#: Key of one line in the flat result: (qualname, lineno).
Key = Tuple[str, int]
#: (hits, time, await_, max_); times in ns.
Record = Tuple[int, int, int, int]

NS = 1_000_000_000
#: Rounding slack for comparing a profiler time with perf_counter stamps:
#: both read the same clock, so only float rounding and the ns truncation
#: separate them.
EPS_NS = 5_000

MONITORING = _lineprof.BACKEND == "monitoring"

CO_GENERATOR = inspect.CO_GENERATOR
CO_COROUTINE = inspect.CO_COROUTINE
CO_ITERABLE_COROUTINE = inspect.CO_ITERABLE_COROUTINE
CO_ASYNC_GENERATOR = inspect.CO_ASYNC_GENERATOR


# -- registration ---------------------------------------------------------

def code_of(func: Any) -> types.CodeType:
    """Return the code object of a function or method, or ``func`` if it is one.

    ``func`` may also be a ``(name, func)`` pair, to give it another name.
    """
    if isinstance(func, tuple):
        func = func[1]
    if isinstance(func, types.CodeType):
        return func
    if isinstance(func, (types.MethodType, classmethod, staticmethod)):
        func = func.__func__
    return func.__code__


def name_of(func: Any) -> str:
    """Return the qualified name stored for ``func`` (the code's qualname for a code object).

    For a ``(name, func)`` pair, returns ``name``.
    """
    if isinstance(func, tuple):
        return func[0]
    if isinstance(func, types.CodeType):
        return getattr(func, "co_qualname", func.co_name)  # co_qualname: 3.11+
    if isinstance(func, (types.MethodType, classmethod, staticmethod)):
        func = func.__func__
    return func.__qualname__


def kind_of(code: types.CodeType) -> int:
    """Return the extension's kind for ``code``, from its flags alone."""
    flags = code.co_flags
    if flags & CO_ASYNC_GENERATOR:
        return _lineprof.KIND_ASYNC_GENERATOR
    if flags & (CO_COROUTINE | CO_ITERABLE_COROUTINE):
        return _lineprof.KIND_COROUTINE
    if flags & CO_GENERATOR:
        return _lineprof.KIND_GENERATOR
    return _lineprof.KIND_FUNCTION


def last_line(code: types.CodeType) -> int:
    """Return the last line that has bytecode in ``code`` (at least co_firstlineno)."""
    lines = [ln for _, ln in dis.findlinestarts(code) if ln is not None]
    return max([code.co_firstlineno] + lines)


def register(prof: Any, funcs: Iterable[Any]) -> Dict[str, types.CodeType]:
    """Register every function of ``funcs`` with ``prof``; return {qualname: code}.

    Two functions with the same qualname would make the flat result
    ambiguous, so that raises ValueError.
    """
    names: Dict[str, types.CodeType] = {}
    for func in funcs:
        code, name = code_of(func), name_of(func)
        if name in names and names[name] is not code:
            raise ValueError(f"two profiled functions are both named {name!r}")
        names[name] = code
        prof.add_code(code, kind_of(code), code.co_filename, name,
                      code.co_firstlineno, last_line(code))
    return names


def table(prof: Any) -> Dict[Key, Record]:
    """Return ``prof.snapshot()`` flattened to {(qualname, lineno): (hits, time, await_, max_)}."""
    snap = prof.snapshot()
    assert snap["unit"] == 1e-9
    out: Dict[Key, Record] = {}
    for fd in snap["functions"]:
        for lineno, hits, time_, await_, max_ in fd["lines"]:
            key = (fd["name"], lineno)
            assert key not in out, f"line {key} reported twice"
            out[key] = (hits, time_, await_, max_)
    return out


def profile_calls(funcs: Iterable[Any], body: Callable[[], Any],
                  prof: Optional[Any] = None) -> Dict[Key, Record]:
    """Run ``body()`` with ``funcs`` profiled; return the flat snapshot.

    ``prof`` may be a fresh ``_lineprof.Profiler`` the caller keeps (to look
    at ``error`` or ``_parked`` afterwards); by default one is made here.
    The hook is removed even if ``body`` raises (the exception propagates).
    """
    if prof is None:
        prof = _lineprof.Profiler()
    register(prof, funcs)
    prof.enable()
    try:
        body()
    finally:
        prof.disable()
    return table(prof)


def hits_only(result: Dict[Key, Record]) -> Dict[Key, int]:
    """Return {key: hits} for the lines of ``result`` that were hit at least once."""
    return {k: r[0] for k, r in result.items() if r[0]}


# -- the truth: CPython's own line events --------------------------------

def settrace_hits(funcs: Iterable[Any], body: Callable[[], Any]) -> Dict[Key, int]:
    """Run ``body()`` under ``sys.settrace``; count 'line' events per (qualname, lineno).

    Only frames whose ``f_code`` is one of ``funcs``' code objects are
    counted (and traced locally). The tracer is also installed for threads
    started through ``threading`` while ``body`` runs.
    """
    codes = {code_of(f): name_of(f) for f in funcs}
    counts: Counter = Counter()
    lock = threading.Lock()

    def local(frame: types.FrameType, event: str, arg: Any) -> Any:
        if event == "line":
            with lock:
                counts[(codes[frame.f_code], frame.f_lineno)] += 1
        return local

    def global_(frame: types.FrameType, event: str, arg: Any) -> Any:
        if frame.f_code in codes:
            return local
        return None

    # Free the garbage of earlier tests first (dropped profilers included),
    # so that nothing unrelated runs in the middle of the truth run.
    collect()
    old = sys.gettrace()
    sys.settrace(global_)
    threading.settrace(global_)
    try:
        body()
        still = sys.gettrace()
    finally:
        sys.settrace(old)
        threading.settrace(None)  # type: ignore[arg-type]
    assert still is global_, (
        f"the truth run's sys.settrace tracer was replaced by {still!r} while the "
        f"workload ran: its counts are incomplete")
    return dict(counts)


# -- finding lines -------------------------------------------------------

def marker_line(func: Any, marker: str) -> int:
    """Return the line number of the one source line of ``func`` that ends in ``# marker``."""
    func = inspect.unwrap(func) if not isinstance(func, types.CodeType) else func
    lines, start = inspect.getsourcelines(func)
    found = [start + i for i, text in enumerate(lines)
             if text.rstrip().endswith("# " + marker)]
    if len(found) != 1:
        raise LookupError(f"{marker!r} marks {len(found)} lines of {name_of(func)}")
    return found[0]


def rec(result: Dict[Key, Record], func: Any, marker_or_line: Any) -> Record:
    """Return the record of a line of ``func`` (by marker or number); zeros if absent."""
    line = (marker_or_line if isinstance(marker_or_line, int)
            else marker_line(func, marker_or_line))
    return result.get((name_of(func), line), (0, 0, 0, 0))


def func_lines(result: Dict[Key, Record], func: Any) -> Dict[int, Record]:
    """Return {lineno: record} of one function."""
    name = name_of(func)
    return {ln: r for (n, ln), r in result.items() if n == name}


# -- comparing times -------------------------------------------------------

def ns(seconds: float) -> int:
    """Return ``seconds`` as integer nanoseconds."""
    return int(round(seconds * NS))


def fmt(value_ns: float) -> str:
    return f"{value_ns / 1e6:.3f} ms"


def assert_time_between(got_ns: int, lo_s: float, hi_s: float, what: str = "time",
                        rel_lo: float = 0.0, slack_hi_s: float = 0.0) -> None:
    """Assert ``lo_s - eps <= got_ns/1e9 <= hi_s + eps``.

    ``lo_s``/``hi_s`` are perf_counter measurements in seconds. ``rel_lo``
    loosens the lower bound relatively, ``slack_hi_s`` raises the upper one;
    both default to 0 for exact sandwiches.
    """
    lo = ns(lo_s) * (1.0 - rel_lo) - EPS_NS
    hi = ns(hi_s) + ns(slack_hi_s) + EPS_NS
    assert lo <= got_ns <= hi, (
        f"{what}: got {fmt(got_ns)}, expected between {fmt(lo)} and {fmt(hi)}")


# -- fixtures --------------------------------------------------------------

@pytest.fixture
def prof():
    """A fresh ``_lineprof.Profiler``, disabled again after the test."""
    p = _lineprof.Profiler()
    yield p
    if p.enabled:
        p.disable()


#: The modules whose tests the checks below apply to (other test modules
#: in this directory have their own conventions).
TRUTH_MODULES = frozenset({"test_hits", "test_timing", "test_async", "test_edge",
                           "test_threads", "test_api_truth"})


@pytest.fixture(autouse=True)
def _no_hook_left_behind(request):
    """Fail loudly if a test leaves a trace function behind (it would skew the next test)."""
    if request.module.__name__ not in TRUTH_MODULES:
        yield
        return
    before = sys.gettrace()
    yield
    after = sys.gettrace()
    if after is not before:
        sys.settrace(before)
        pytest.fail(f"a trace function was left installed: {after!r}")


def collect() -> None:
    """Run the cyclic GC until nothing more is freed."""
    while gc.collect():
        pass


# -- workload helpers (never profiled themselves) -----------------------------

def spin(seconds: float) -> float:
    """Busy-wait for at least ``seconds``; return the span measured with perf_counter."""
    from time import perf_counter

    t0 = perf_counter()
    t = t0
    while t - t0 < seconds:
        t = perf_counter()
    return t - t0


def check_invariants(result: Dict[Key, Record]) -> None:
    """Assert what holds for every line of every profile: counters are
    non-negative and the longest stretch is no longer than the total time."""
    for key, (hits, time_, await_, max_) in result.items():
        assert hits >= 0 and time_ >= 0 and await_ >= 0 and max_ >= 0, (key, hits, time_, await_, max_)
        assert max_ <= time_, f"{key}: max {max_} > time {time_}"


# -- test dependencies: present, or a failure that says MISSING -------------------------

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def require(module: str, what: Optional[str] = None) -> types.ModuleType:
    """Return the imported ``module``; fail the test with ``MISSING: <what>`` if it is not installed.

    scripts/setup.sh installs every test dependency, so a missing one is a
    broken set-up, never a reason to skip.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        pytest.fail(f"MISSING: {what or module} for {sys.executable} ({exc}); "
                    f"scripts/setup.sh installs it", pytrace=False)


def line_profiler_dir() -> str:
    """Return the folder scripts/setup.sh installs line_profiler 5.1 into, for this Python.

    It is kept off the venv's path: line_profiler ships a ``kernprof``
    module of its own, which would shadow ours.
    """
    return os.path.join(ROOT, ".venv", "%d.%d-line_profiler" % sys.version_info[:2])


def import_line_profiler(module: str = "line_profiler.line_profiler") -> types.ModuleType:
    """Return ``module`` of line_profiler 5.1, imported from :func:`line_profiler_dir` with our ``kernprof`` kept.

    Fails with ``MISSING: line_profiler`` when it is not installed there.
    """
    import kernprof  # noqa: F401  (ours, before line_profiler's folder is on the path)

    if sys.version_info < (3, 10):
        pytest.skip("line_profiler 5.1 needs Python 3.10 or newer (Requires-Python >=3.10)")

    folder = line_profiler_dir()
    if not os.path.isdir(os.path.join(folder, "line_profiler")):
        pytest.fail(f"MISSING: line_profiler 5.1 in {folder}; scripts/setup.sh installs it",
                    pytrace=False)
    sys.path.append(folder)
    try:
        return importlib.import_module(module)
    finally:
        sys.path.remove(folder)


@pytest.fixture
def uvloop_required() -> types.ModuleType:
    """uvloop, for the tests that run a program on its loop too (MISSING when absent)."""
    return require("uvloop")


#: Marks a test (or a parameter) that needs uvloop.
needs_uvloop = pytest.mark.usefixtures("uvloop_required")


def child_env(**extra: str) -> Dict[str, str]:
    """Return the environment for a child Python: this checkout first on the path, no profiling flags set."""
    e = dict(os.environ)
    for name in ("LINEPROF", "LINE_PROFILE", "LINEPROF_OUTPUT", "LINEPROF_RC",
                 "LINE_PROFILER_RC"):
        e.pop(name, None)
    e["PYTHONPATH"] = ROOT + os.pathsep + e.get("PYTHONPATH", "")
    e.update(extra)
    return e


# -- python -m lineprof under a memory limit, with its peak RSS ---------------------------

#: The address-space limit hostile-input runs get (RLIMIT_AS).
MEMORY_LIMIT = 1 << 30

# ``python -m lineprof ARGS`` (runpy does what -m does), then the process's
# peak RSS since exec (VmHWM) to the file named by $LINEPROF_TEST_HWM.  The
# rusage of wait4 would not do: a forked child's ru_maxrss counts the
# parent's pages it shared before exec, here all of pytest's.
RUN_LINEPROF = """\
import os, runpy
try:
    runpy.run_module("lineprof", run_name="__main__", alter_sys=True)
finally:
    try:
        with open("/proc/self/status") as status, open(os.environ["LINEPROF_TEST_HWM"], "w") as f:
            f.write(next(line for line in status if line.startswith("VmHWM:")).split()[1])
    except OSError:  # no /proc here
        pass
"""


def _limit_memory() -> None:
    # preexec_fn: runs in the child between fork and exec.
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def run_lineprof_limited(args: Any, cwd: Any = None, timeout: float = 30.0,
                         **env: str) -> Tuple[Optional[int], bytes, str, float, Optional[float]]:
    """Run ``python -m lineprof ARGS`` under :data:`MEMORY_LIMIT`, killed at ``timeout``.

    Returns (exit status, stdout, stderr as text, seconds, peak RSS in MiB
    or None where it could not be read: killed, or no /proc).
    """
    import subprocess
    import tempfile
    import time

    with tempfile.TemporaryDirectory() as scratch:
        hwm = os.path.join(scratch, "hwm")
        with open(os.path.join(scratch, "out"), "w+b") as out, \
                open(os.path.join(scratch, "err"), "w+b") as err:
            start = time.monotonic()
            proc = subprocess.Popen([sys.executable, "-c", RUN_LINEPROF, *args], cwd=cwd,
                                    env=child_env(LINEPROF_TEST_HWM=hwm, **env),
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                    preexec_fn=_limit_memory)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            seconds = time.monotonic() - start
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read(), err.read().decode("utf-8", "replace")
        try:
            with open(hwm) as f:
                rss: Optional[float] = int(f.read()) / 1024
        except (OSError, ValueError):
            rss = None
    return proc.returncode, stdout, stderr, seconds, rss
