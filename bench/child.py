"""One measurement, in a fresh interpreter of a bench venv.

Usage:
    python bench/child.py calibrate
    python bench/child.py run WORKLOAD PROFILER N [--floor-dir DIR] [--callgrind]

``calibrate`` counts, with sys.settrace, the line events each workload sends
from its profiled functions per unit of N (per loop iteration or per task),
and prints them as JSON.

``run`` warms the workload up, then runs it once with N under PROFILER and
prints one JSON object: the wall time of the workload alone (the profiler is
started before the clock starts and stopped after it stops), the resident
set size before it and the peak during it, and the line events the profiler
itself recorded (for lineprof, line_profiler and the floor hook) so the
orchestrator can check that every profiler saw the same program.

With --callgrind (the orchestrator runs valgrind --tool=callgrind
--instr-atstart=no) the workload runs twice under the profiler, with N and
with 2N, each through _lpfloor.measure from the floor hook's directory:
callgrind instruments and counts only those two calls, as two dumps of the
profile. Their difference is the cost of N units of work, start-up and
constant costs cancelled. The JSON is then of no interest.

Only the standard library, the profilers and bench/workloads.py are used:
this runs inside .venv/bench-3.X, not under the orchestrator's Python.
"""
from __future__ import annotations

import json
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import workloads  # noqa: E402

# Small enough to be quick under callgrind, large enough to settle the
# specialising interpreter and to allocate asyncio's machinery before the
# resident set size is read.
WARMUP_N = {"line": 2000, "calls": 50, "asyncio": 1000, "memory": 2000}


class Session:
    """A profiler ready to start: ``start()``, ``stop()``, and ``events()``,
    the line events it recorded (None when it does not count lines)."""

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def events(self):
        return None


class Plain(Session):
    pass


def _last_line(code) -> int:
    lines = [ln for _, _, ln in code.co_lines() if ln is not None]
    return max(lines, default=code.co_firstlineno)


class Lineprof(Session):
    """lineprof's extension, used directly through its documented binding
    (docs/binding.md): what is measured is the C hook, not the front end."""

    def __init__(self, funcs):
        from lineprof import _lineprof as lp
        import inspect
        self.prof = lp.Profiler()
        for f in funcs:
            code = f.__code__
            if code.co_flags & inspect.CO_ASYNC_GENERATOR:
                kind = lp.KIND_ASYNC_GENERATOR
            elif code.co_flags & inspect.CO_COROUTINE:
                kind = lp.KIND_COROUTINE
            elif code.co_flags & inspect.CO_GENERATOR:
                kind = lp.KIND_GENERATOR
            else:
                kind = lp.KIND_FUNCTION
            self.prof.add_code(code, kind, code.co_filename,
                               getattr(code, "co_qualname", code.co_name),
                               code.co_firstlineno, _last_line(code))

    def start(self):
        self.prof.enable()

    def stop(self):
        self.prof.disable()
        if self.prof.error is not None:
            raise RuntimeError(f"lineprof: {self.prof.error}")

    def events(self):
        snap = self.prof.snapshot()
        return sum(rec[1] for fn in snap["functions"] for rec in fn["lines"])


class Floor(Session):
    """The floor hook of bench/floor/lpfloor.c."""

    def __init__(self, funcs):
        import _lpfloor
        self.mod = _lpfloor
        self.codes = [f.__code__ for f in funcs]
        for code in self.codes:
            _lpfloor.add_code(code)
        self.tool = None

    def start(self):
        self.mod.reset()
        if self.mod.BACKEND == "settrace":
            self.mod.enable()
            return
        mon = sys.monitoring
        for tool in (5, 4, 3, 2, 1, 0):
            if mon.get_tool(tool) is None:
                break
        else:
            raise RuntimeError("floor: no free sys.monitoring tool id")
        mon.use_tool_id(tool, "lineprof-bench-floor")
        self.tool = tool
        mon.register_callback(tool, mon.events.LINE, self.mod.line)
        for code in self.codes:
            mon.set_local_events(tool, code, mon.events.LINE)

    def stop(self):
        if self.mod.BACKEND == "settrace":
            self.mod.disable()
            return
        mon = sys.monitoring
        for code in self.codes:
            mon.set_local_events(self.tool, code, 0)
        mon.register_callback(self.tool, mon.events.LINE, None)
        mon.free_tool_id(self.tool)

    def events(self):
        return self.mod.count()


class LineProfilerSession(Session):
    def __init__(self, funcs):
        from line_profiler import LineProfiler
        self.prof = LineProfiler()
        for f in funcs:
            self.prof.add_function(f)

    def start(self):
        self.prof.enable_by_count()

    def stop(self):
        self.prof.disable_by_count()

    def events(self):
        timings = self.prof.get_stats().timings
        return sum(hits for lines in timings.values() for _, hits, _ in lines)


class Yappi(Session):
    def __init__(self, funcs):
        import yappi
        self.yappi = yappi
        yappi.set_clock_type("wall")

    def start(self):
        self.yappi.start()

    def stop(self):
        self.yappi.stop()


class Pyinstrument(Session):
    def __init__(self, funcs):
        from pyinstrument import Profiler
        self.prof = Profiler(async_mode="enabled")  # 1 ms sampling interval

    def start(self):
        self.prof.start()

    def stop(self):
        self.prof.stop()


class CProfile(Session):
    def __init__(self, funcs):
        import cProfile
        self.prof = cProfile.Profile()

    def start(self):
        self.prof.enable()

    def stop(self):
        self.prof.disable()


SESSIONS = {
    "plain": lambda funcs: Plain(),
    "floor": Floor,
    "lineprof": Lineprof,
    "line_profiler": LineProfilerSession,
    "yappi": Yappi,
    "pyinstrument": Pyinstrument,
    "cProfile": CProfile,
}


def _rss_bytes() -> int:
    """Return the current resident set size in bytes (0 if unknown)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _reset_peak() -> bool:
    """Reset the kernel's peak RSS of this process; return whether it worked."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_rss_bytes() -> int:
    """Return the peak resident set size: VmHWM, or ru_maxrss if unreadable."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run(workload: str, profiler: str, n: int, callgrind: bool = False) -> dict:
    """Run workload with n under profiler once, after a warm-up; return the measurement."""
    fn = workloads.WORKLOADS[workload]
    session = SESSIONS[profiler](workloads.PROFILED[workload])
    fn(WARMUP_N[workload])
    if callgrind:
        import _lpfloor
        session.start()
        _lpfloor.measure(fn, n, "N")
        _lpfloor.measure(fn, 2 * n, "2N")
        session.stop()
        return {"events": session.events()}
    rss_before = _rss_bytes()
    peak_reset = _reset_peak()
    session.start()
    t0 = time.perf_counter()
    fn(n)
    t1 = time.perf_counter()
    session.stop()
    peak = _peak_rss_bytes()
    return {
        "seconds": t1 - t0,
        "rss_before": rss_before,
        "peak_rss": peak,
        "peak_reset": peak_reset,
        "events": session.events(),
    }


def calibrate() -> dict:
    """Return line events per unit of N for each workload, counted by sys.settrace."""
    out = {}
    for name, fn in workloads.WORKLOADS.items():
        codes = {f.__code__ for f in workloads.PROFILED[name]}
        counts = []
        for n in (1000, 2000):
            box = [0]

            def local(frame, event, arg, box=box):
                if event == "line":
                    box[0] += 1
                return local

            def glob(frame, event, arg):
                return local if frame.f_code in codes else None

            sys.settrace(glob)
            try:
                fn(n)
            finally:
                sys.settrace(None)
            counts.append(box[0])
        out[name] = (counts[1] - counts[0]) / 1000
    return out


def versions() -> dict:
    """Return the versions of Python and of every profiler importable here."""
    from importlib import metadata
    out = {"python": sys.version.split()[0]}
    try:
        import lineprof._lineprof as lp
        out["lineprof clock"] = lp.clock()
    except (ImportError, AttributeError):
        out["lineprof clock"] = None
    for dist in ("lineprof", "line_profiler", "yappi", "pyinstrument"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def main(argv) -> int:
    if argv[:1] == ["calibrate"]:
        print(json.dumps({"events_per_unit": calibrate(), "versions": versions()}))
        return 0
    if len(argv) >= 4 and argv[0] == "run":
        if "--floor-dir" in argv:
            sys.path.insert(0, argv[argv.index("--floor-dir") + 1])
        print(json.dumps(run(argv[1], argv[2], int(argv[3]),
                             callgrind="--callgrind" in argv)))
        return 0
    print(__doc__.split("\n\n")[1], file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
