"""Edge cases: enabling and disabling around live frames, exceptions, deep
recursion, snapshots of open suspensions, and the program's behaviour.

The rules under test: a frame already running when profiling is enabled is
adopted at its next event (the lines it runs afterwards are counted); a
frame running when profiling is disabled stops being timed at that moment;
the profiled program returns and raises exactly what it does unprofiled.
"""

import sys
import time
import traceback
from time import perf_counter

import pytest

import truth_cases
from conftest import (assert_time_between, check_invariants, func_lines, hits_only,
                      marker_line, name_of, profile_calls, rec, register, settrace_hits,
                      spin, table)
from conftest import _lineprof


class NoProfiler:
    """Stands in for a Profiler in the truth runs: enable/disable do nothing."""

    def enable(self):
        pass

    def disable(self):
        pass


def after(truth, func, marker):
    """Return the truth restricted to the lines of ``func`` after the marked line."""
    line = marker_line(func, marker)
    name = name_of(func)
    return {k: v for k, v in truth.items() if k[0] != name or k[1] > line}


# -- enable while running ----------------------------------------------------

def self_enabling(p, n):
    x = 0  # SE_FIRST
    p.enable()  # SE_ENABLE
    for i in range(n):  # SE_FOR
        x += i
        if x > 5:
            x -= 1
    return x


def enabling_callee(p):
    p.enable()  # EC_ENABLE
    return 1


def outer_running(p, n):
    total = 0  # OR_FIRST
    total += enabling_callee(p)  # OR_CALL
    for i in range(n):  # OR_FOR
        total += i
    return total


def test_enable_from_inside_a_profiled_frame(prof):
    truth = settrace_hits([self_enabling], lambda: self_enabling(NoProfiler(), 6))
    register(prof, [self_enabling])
    try:
        value = self_enabling(prof, 6)
    finally:
        prof.disable()
    result = table(prof)
    check_invariants(result)
    assert value == self_enabling(NoProfiler(), 6)
    expected = after(truth, self_enabling, "SE_ENABLE")
    assert expected, "lines run after enable() must be counted"
    assert hits_only(result) == expected
    assert prof.error is None


def test_enable_from_a_callee_adopts_the_running_caller(prof):
    funcs = [outer_running, enabling_callee]
    truth = settrace_hits(funcs, lambda: outer_running(NoProfiler(), 4))
    register(prof, funcs)
    try:
        value = outer_running(prof, 4)
    finally:
        prof.disable()
    result = table(prof)
    check_invariants(result)
    assert value == 1 + sum(range(4))
    # The callee's remaining lines, and the caller's lines after the call.
    expected = after(after(truth, enabling_callee, "EC_ENABLE"), outer_running, "OR_CALL")
    assert hits_only(result) == expected
    # The caller is adopted at its next event: the rest of OR_CALL is not
    # timed on the caller (it started unseen), the following lines are.
    assert rec(result, outer_running, "OR_FOR")[0] == 5
    assert prof.error is None


def suspended_before_enable(log):
    log.append(1)  # SB_FIRST
    yield 1  # SB_YIELD
    log.append(2)  # SB_AFTER
    yield 2  # SB_YIELD2
    log.append(3)  # SB_LAST


def test_generator_suspended_before_enable_is_adopted_at_resume(prof):
    def drive(p):
        g = suspended_before_enable([])
        next(g)
        p.enable()
        time.sleep(0.01)
        out = list(g)
        p.disable()
        return out

    truth = settrace_hits([suspended_before_enable], lambda: drive(NoProfiler()))
    register(prof, [suspended_before_enable])
    assert drive(prof) == [2]
    result = table(prof)
    check_invariants(result)
    assert hits_only(result) == after(truth, suspended_before_enable, "SB_YIELD")
    # Its suspension started unseen: no await for SB_YIELD; the later one is seen.
    assert rec(result, suspended_before_enable, "SB_YIELD")[2] == 0
    assert prof._parked == 0
    assert prof.error is None


# -- disable while running -------------------------------------------------------

def self_disabling(p, st):
    a = 1  # SD_FIRST
    st.append(spin(0.005))  # SD_SPIN
    p.disable(); st.append(perf_counter())  # SD_DISABLE
    spin(0.02)  # SD_UNSEEN
    return a  # SD_RETURN


def disabling_callee(p):
    p.disable()
    return perf_counter()


def outer_disabled(p, st):
    st.append(perf_counter())  # OD_BEFORE
    st.append(disabling_callee(p))  # OD_CALL
    spin(0.02)  # OD_UNSEEN
    return len(st)


def test_disable_from_inside_a_profiled_frame(prof):
    st = []
    register(prof, [self_disabling])
    prof.enable()
    try:
        t0 = perf_counter()
        assert self_disabling(prof, st) == 1
    finally:
        prof.disable()
    time.sleep(0.01)
    result = table(prof)
    check_invariants(result)
    lines = func_lines(result, self_disabling)
    assert {ln: r[0] for ln, r in lines.items()} == {
        marker_line(self_disabling, m): 1 for m in ("SD_FIRST", "SD_SPIN", "SD_DISABLE")}
    # SD_DISABLE is timed from its line event to disable(): well under the
    # 20 ms that follow.
    assert_time_between(rec(result, self_disabling, "SD_DISABLE")[1], 0, st[1] - t0,
                        "line that disabled profiling")
    assert_time_between(rec(result, self_disabling, "SD_SPIN")[1], st[0], st[1] - t0, "spin before disable")
    assert prof.error is None


def test_disable_from_a_callee_stops_the_callers_line(prof):
    st = []
    register(prof, [outer_disabled, disabling_callee])
    prof.enable()
    try:
        outer_disabled(prof, st)
    finally:
        prof.disable()
    time.sleep(0.01)
    result = table(prof)
    check_invariants(result)
    before, disabled_at = st
    hits, t, _, _ = rec(result, outer_disabled, "OD_CALL")
    assert hits == 1
    assert_time_between(t, 0, disabled_at - before, "caller's line at disable")
    assert rec(result, outer_disabled, "OD_UNSEEN") == (0, 0, 0, 0)


def toggler(p, n):
    for i in range(n):  # T_FOR
        p.disable()  # T_OFF
        p.enable()  # T_ON
    return n  # T_RETURN


def parked_gen():
    yield 1  # PK_YIELD
    return 2  # PK_RETURN


def test_enable_disable_1000_times_with_live_frames(prof):
    """Each disable() detaches the running toggler frame; each enable() lets
    its next line event adopt it again. T_ON's line event always happens
    while disabled, so it is never counted; everything else is."""
    n = 1000
    truth = settrace_hits([toggler], lambda: toggler(NoProfiler(), n))
    register(prof, [toggler, parked_gen])
    stamps = []
    prof.enable()
    try:
        g = parked_gen()
        stamps.append(perf_counter())
        next(g)                           # parked, across all the toggling
        stamps.append(perf_counter())
        assert toggler(prof, n) == n
        stamps.append(perf_counter())
        try:
            next(g)
        except StopIteration as e:
            assert e.value == 2
        stamps.append(perf_counter())
    finally:
        prof.disable()
    result = table(prof)
    check_invariants(result)
    expected = {k: v for k, v in truth.items() if k != (name_of(toggler), marker_line(toggler, "T_ON"))}
    assert {k: v for k, v in hits_only(result).items() if k[0] == name_of(toggler)} == expected
    hits, _, aw, _ = rec(result, parked_gen, "PK_YIELD")
    assert hits == 1
    assert_time_between(aw, stamps[2] - stamps[1], stamps[3] - stamps[0], "await across 1000 toggles")
    assert rec(result, parked_gen, "PK_RETURN")[0] == 1
    assert prof._parked == 0
    assert prof.error is None


def test_second_profiler_cannot_be_enabled(prof):
    prof.enable()
    try:
        other = _lineprof.Profiler()
        with pytest.raises(RuntimeError):
            other.enable()
        assert not other.enabled
    finally:
        prof.disable()
    other.enable()      # free again once the first is disabled
    other.disable()


# -- exceptions and results are unchanged ----------------------------------------------

def exc_state():
    """sys.exc_info() as comparable data: type name, repr, traceback frames."""
    t, v, tb = sys.exc_info()
    frames = [(f.name, f.lineno) for f in traceback.extract_tb(tb)] if tb is not None else None
    return (t.__name__ if t else None, repr(v), frames)


def chain_c(n, seen):
    if n == 0:
        try:
            {}["k"]
        except KeyError:
            seen.append(exc_state())
            raise LookupError("c")
    return chain_c(n - 1, seen)


def chain_b(n, seen):
    try:
        chain_c(n, seen)
    finally:
        seen.append(exc_state())


def chain_a(n, seen):
    try:
        chain_b(n, seen)
    except LookupError as e:
        seen.append(exc_state())
        raise ValueError("a") from e
    finally:
        seen.append(exc_state())


def chain_top(n, seen):
    try:
        chain_a(n, seen)
    except ValueError:
        seen.append(exc_state())
        try:
            raise TypeError("during handling")
        except TypeError as t:
            seen.append(repr(t.__context__))
    seen.append(exc_state())
    chain_a(n, seen)


def describe(exc):
    """A structural description of an exception, its chain and traceback."""
    out = []
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        frames = [(f.name, f.lineno) for f in traceback.extract_tb(exc.__traceback__)]
        out.append((type(exc).__name__, str(exc), exc.__suppress_context__,
                    type(exc.__cause__).__name__, type(exc.__context__).__name__, frames))
        exc = exc.__cause__ or exc.__context__
    return out


def run_chain():
    seen = []
    try:
        chain_top(30, seen)
    except ValueError as e:
        info = describe(e)
    return seen, info, exc_state()


def test_exceptions_and_exc_info_unchanged_by_profiling(prof):
    funcs = [chain_a, chain_b, chain_c, chain_top]
    plain = run_chain()
    out = []
    result = profile_calls(funcs, lambda: out.append(run_chain()), prof)
    assert out[0] == plain
    assert out[0][2] == (None, "None", None)
    assert sys.exc_info() == (None, None, None)
    assert hits_only(result) == settrace_hits(funcs, run_chain)
    check_invariants(result)
    assert prof.error is None


@pytest.mark.parametrize("name", truth_cases.all_case_names())
def test_results_unchanged_by_profiling(name, prof):
    funcs, body = truth_cases.CASES[name]
    plain = body()
    out = []
    profile_calls(funcs, lambda: out.append(body()), prof)
    assert out[0] == plain
    assert prof.error is None
    assert prof._parked == 0


def test_error_is_none_and_state_clean_after_normal_runs(prof):
    funcs, body = truth_cases.CASES["generator_workload"]
    profile_calls(funcs, body, prof)
    assert prof.error is None
    assert not prof.enabled
    assert prof._stack_depth == 0
    prof.clear()
    assert table(prof) == {}
    assert prof.snapshot()["functions"] and all(
        f["lines"] == [] for f in prof.snapshot()["functions"])


# -- deep recursion ------------------------------------------------------------------

def deep(n):
    if n == 0:  # DEEP_TEST
        return 0
    return deep(n - 1) + 1  # DEEP_CALL


def test_deep_recursion_1000(prof):
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, 5000))
    try:
        truth = settrace_hits([deep], lambda: deep(1000))
        out, walls = [], []

        def body():
            t0 = perf_counter()
            out.append(deep(1000))
            walls.append(perf_counter() - t0)

        result = profile_calls([deep], body, prof)
    finally:
        sys.setrecursionlimit(old)
    check_invariants(result)
    assert out == [1000]
    assert hits_only(result) == truth
    assert rec(result, deep, "DEEP_CALL")[0] == 1000
    # The outermost DEEP_CALL line spans the whole recursion.
    assert rec(result, deep, "DEEP_CALL")[3] <= walls[0] * 1e9 + 5_000
    assert prof.error is None
    assert prof._stack_depth == 0


# -- snapshots of open suspensions --------------------------------------------------

def slow_gen():
    yield 1  # SG_YIELD
    spin(0.005)  # SG_SPIN


def test_snapshot_while_suspended_then_after_resume(prof):
    register(prof, [slow_gen])
    st = []
    prof.enable()
    try:
        g = slow_gen()
        st.append(perf_counter())           # 0
        next(g)
        st.append(perf_counter())           # 1
        time.sleep(0.02)
        st.append(perf_counter())           # 2
        first = table(prof)                 # open suspension counted up to now
        st.append(perf_counter())           # 3
        time.sleep(0.02)
        st.append(perf_counter())           # 4
        second = table(prof)
        st.append(perf_counter())           # 5
        time.sleep(0.01)
        st.append(perf_counter())           # 6
        for _ in g:
            pass
        st.append(perf_counter())           # 7
    finally:
        prof.disable()
    time.sleep(0.01)
    final = table(prof)
    check_invariants(final)
    key = (name_of(slow_gen), marker_line(slow_gen, "SG_YIELD"))
    assert_time_between(first[key][2], st[2] - st[1], st[3] - st[0], "await at first snapshot")
    assert_time_between(second[key][2], st[4] - st[1], st[5] - st[0], "await at second snapshot")
    assert_time_between(final[key][2], st[6] - st[1], st[7] - st[0], "await after resume")
    assert final[key][0] == 1
    # Later snapshots after the frame finished change nothing.
    assert table(prof) == final
    assert prof._parked == 0


def test_snapshot_after_disable_does_not_grow_finished_lines(prof):
    funcs, body = truth_cases.CASES["coroutine_workload"]
    first = profile_calls(funcs, body, prof)
    time.sleep(0.01)
    assert table(prof) == first


def test_generator_resumed_while_disabled(prof):
    """A parked generator that runs on while profiling is off: the lines it
    runs then are not counted, those after re-enabling are; no crash, no
    leak once it finishes."""
    register(prof, [suspended_before_enable])
    log = []
    prof.enable()
    try:
        g = suspended_before_enable(log)
        next(g)                   # SB_FIRST, SB_YIELD seen
        prof.disable()
        next(g)                   # SB_AFTER, SB_YIELD2 unseen
        prof.enable()
        assert list(g) == []      # SB_LAST seen
    finally:
        prof.disable()
    assert log == [1, 2, 3]
    result = table(prof)
    check_invariants(result)
    assert {ln: h for (n, ln), h in hits_only(result).items()} == {
        marker_line(suspended_before_enable, m): 1 for m in ("SB_FIRST", "SB_YIELD", "SB_LAST")}
    del g
    assert prof._parked == 0
    assert prof.error is None


# -- registering code while enabled ---------------------------------------------------

def late_func(n):
    total = 0  # LF_FIRST
    for i in range(n):
        total += i
    return total


def late_gen():
    yield 1  # LG_YIELD
    x = 2  # LG_AFTER
    yield x  # LG_YIELD2


def test_add_code_while_enabled(prof):
    """Code registered while profiling is on: calls made after add_code are
    counted in full, and a generator of that code created before (suspended)
    is adopted when it resumes, like a frame running at enable()."""
    single = settrace_hits([late_func], lambda: late_func(5))
    gen_truth = settrace_hits([late_gen], lambda: list(late_gen()))
    prof.enable()
    try:
        late_func(5)                    # not registered yet: not counted
        g = late_gen()
        next(g)                         # suspended before registration
        register(prof, [late_func, late_gen])
        late_func(5)
        rest = list(g)
    finally:
        prof.disable()
    assert rest == [2]
    result = table(prof)
    check_invariants(result)
    expected = dict(single)
    expected.update(after(gen_truth, late_gen, "LG_YIELD"))
    assert hits_only(result) == expected
    assert prof._parked == 0
    assert prof.error is None


def self_registering(p, n):
    total = 0  # SR_FIRST
    register(p, [self_registering])  # SR_REGISTER
    for i in range(n):
        total += i
    return total


def test_add_code_of_a_running_frame(prof):
    """A frame running (here: registering its own code) when its code is
    added is adopted at its next event, like a frame running at enable()."""
    class Recorder:
        def add_code(self, *args):
            pass

    truth = settrace_hits([self_registering], lambda: self_registering(Recorder(), 4))
    prof.enable()
    try:
        assert self_registering(prof, 4) == 6
    finally:
        prof.disable()
    result = table(prof)
    check_invariants(result)
    assert hits_only(result) == after(truth, self_registering, "SR_REGISTER")
    assert prof.error is None


# -- the profiler's lifetime ---------------------------------------------------------------

PROFILER_DROPPED = r'''
import gc, sys
sys.path.insert(0, sys.argv[1])
import conftest
from conftest import register

def gen():
    yield 1
    yield 2

async def coro():
    class S:
        def __await__(self):
            yield
    await S()

p = conftest._lineprof.Profiler()
register(p, [gen, coro])
p.enable()
gens = [gen() for _ in range(50)]
for g in gens:
    next(g)
cs = [coro() for _ in range(50)]
for c in cs:
    c.send(None)
p.disable()
del p
gc.collect()
del gens[::2]
gc.collect()
for g in gens:
    list(g)
del gens, cs
gc.collect()
p2 = conftest._lineprof.Profiler()
p2.enable()
g = gen()
next(g)
p2.disable()
del g
print("ok")
'''


def test_dropping_a_disabled_profiler_leaves_other_tracers_alone():
    """A profiler that was enabled, then disabled, then garbage-collected
    must not uninstall a trace function someone else set in between
    (a debugger, coverage, or the next profiler)."""
    import gc

    def f():
        return 1

    p = _lineprof.Profiler()
    register(p, [f])
    p.enable()
    f()
    p.disable()

    def tracer(frame, event, arg):
        return None

    old = sys.gettrace()
    sys.settrace(tracer)
    try:
        del p
        gc.collect()
        after_drop = sys.gettrace()
    finally:
        sys.settrace(old)
    assert after_drop is tracer, f"sys.settrace tracer replaced by {after_drop!r} when a profiler died"

    # The same for the next profiler: dropping the old one must not unhook it.
    p1 = _lineprof.Profiler()
    register(p1, [f])
    p1.enable()
    p1.disable()
    p2 = _lineprof.Profiler()
    register(p2, [f])
    p2.enable()
    try:
        del p1
        gc.collect()
        f()
    finally:
        p2.disable()
    assert hits_only(table(p2)) == {(name_of(f), f.__code__.co_firstlineno + 1): 1}


def test_profiler_dropped_while_frames_are_suspended(tmp_path):
    """Drop a profiler while generators and coroutines it parked are still
    suspended, then let them finish or die: no crash (run in a child
    process, since a crash would take pytest down)."""
    import os
    import subprocess

    script = tmp_path / "dropped.py"
    script.write_text(PROFILER_DROPPED)
    proc = subprocess.run([sys.executable, str(script), os.path.dirname(os.path.abspath(__file__))],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "ok"
