"""Active time and max against the test's own perf_counter() stamps.

A line's active time runs from its line event to the next event of its
frame. So, for a frame that does not suspend,

    stamps taken inside the line  <=  time  <=  stamp on the next line - stamp on the line before

and both containments are exact whatever the machine's load (the profiler
and perf_counter read the same monotonic clock). The targets below take
those stamps themselves; they contain no asserts, so pytest's rewriting does
not change their line events.
"""

import time
from time import perf_counter

import pytest

from conftest import (assert_time_between, check_invariants, func_lines, hits_only,
                      marker_line, profile_calls, rec, settrace_hits, spin)


# -- targets ------------------------------------------------------------------

def sleeper(d, st):
    st.append(perf_counter())  # BEFORE
    a = perf_counter(); time.sleep(d); b = perf_counter()  # SLEEP
    st.append(perf_counter())  # AFTER
    return b - a


def spinner(d, st):
    st.append(perf_counter())  # BEFORE
    span = spin(d)  # SPIN
    st.append(perf_counter())  # AFTER
    return span


def three_steps(st):
    time.sleep(0.01)  # S1
    spin(0.01)  # S2
    x = time.sleep(0.005) or 1  # S3
    return x  # RET


def varied(ds, marks):
    for d in ds:  # LOOP
        pre = perf_counter()  # PRE
        a = perf_counter(); time.sleep(d); b = perf_counter()  # BODY
        marks.append((pre, a, b, perf_counter()))  # POST


def callee(d):
    time.sleep(d)  # CALLEE_SLEEP
    return spin(d)  # CALLEE_SPIN


def caller(d, st):
    st.append(perf_counter())  # BEFORE
    callee(d)  # CALL
    st.append(perf_counter())  # MID
    spin(d)  # UNPROFILED_CALLEE
    st.append(perf_counter())  # AFTER


def nested(n, d, spans, walls):
    a = perf_counter(); time.sleep(d); spans.append(perf_counter() - a)  # REC_SLEEP
    if n:  # REC_TEST
        a = perf_counter(); nested(n - 1, d, spans, walls); walls.append(perf_counter() - a)  # REC_CALL


def spin_then_raise(d):
    spin(d)
    raise KeyError("boom")


def raiser(d, st):
    st.append(perf_counter())  # BEFORE
    spin_then_raise(d)  # RAISE


def catcher(d, st):
    st.append(perf_counter())  # C_BEFORE
    try:
        raiser(d, st)  # CALL_RAISER
    except KeyError:
        st.append(perf_counter())  # CAUGHT
    return len(st)


# -- tests ---------------------------------------------------------------------

@pytest.mark.parametrize("d", [0.05, 0.01])
def test_sleep_line_time_is_sandwiched(d, prof):
    st, spans = [], []
    result = profile_calls([sleeper], lambda: spans.append(sleeper(d, st)), prof)
    check_invariants(result)
    hits, t, aw, mx = rec(result, sleeper, "SLEEP")
    assert hits == 1
    assert aw == 0, "a plain function never suspends"
    assert_time_between(t, max(spans[0], d), st[1] - st[0], "sleep line time")
    assert mx == t, "a line run once, uninterrupted, has max == time"
    assert prof.error is None


def test_busy_wait_line_time_is_sandwiched(prof):
    st, spans = [], []
    result = profile_calls([spinner], lambda: spans.append(spinner(0.02, st)), prof)
    hits, t, aw, mx = rec(result, spinner, "SPIN")
    assert hits == 1
    assert_time_between(t, spans[0], st[1] - st[0], "busy-wait line time")
    assert mx == t
    # The lines around it are short: they cannot have taken the busy time.
    for marker in ("BEFORE", "AFTER"):
        assert rec(result, spinner, marker)[1] < 5_000_000


def test_sum_of_line_times_matches_wall_time(prof):
    walls = []

    def body():
        t0 = perf_counter()
        three_steps([])
        walls.append(perf_counter() - t0)

    result = profile_calls([three_steps], body, prof)
    check_invariants(result)
    lines = func_lines(result, three_steps)
    assert sorted(lines) == [marker_line(three_steps, m) for m in ("S1", "S2", "S3", "RET")]
    total = sum(r[1] for r in lines.values())
    wall = walls[0]
    # Lower bound: every step's own duration; the call and return
    # themselves take microseconds, so the sum is within 10% + 2 ms of wall
    # even on a loaded machine.
    assert_time_between(total, max(0.025, wall * 0.9 - 0.002), wall, "sum of line times")
    for marker, least in (("S1", 0.01), ("S2", 0.01), ("S3", 0.005)):
        assert rec(result, three_steps, marker)[1] >= least * 1e9 - 5_000, marker


def test_max_is_longest_single_hit(prof):
    ds = [0.004, 0.012, 0.002, 0.007]
    marks = []
    result = profile_calls([varied], lambda: varied(ds, marks), prof)
    check_invariants(result)
    hits, t, aw, mx = rec(result, varied, "BODY")
    assert hits == len(ds)
    inner = [b - a for _, a, b, _ in marks]
    outer = [post - pre for pre, _, _, post in marks]
    assert_time_between(t, sum(inner), sum(outer), "total of the repeated line")
    assert_time_between(mx, max(inner), max(outer), "max of the repeated line")
    assert rec(result, varied, "LOOP")[0] == len(ds) + 1


def test_callee_time_is_included_in_callers_line(prof):
    st = []
    d = 0.01
    result = profile_calls([caller, callee], lambda: caller(d, st), prof)
    check_invariants(result)
    call_hits, call_t, _, call_max = rec(result, caller, "CALL")
    assert call_hits == 1
    # The callee's whole run is inside the caller's line.
    callee_total = sum(r[1] for r in func_lines(result, callee).values())
    assert callee_total >= 2 * d * 1e9 - 5_000
    assert call_t >= callee_total
    assert_time_between(call_t, 2 * d, st[1] - st[0], "line calling a profiled callee")
    assert call_max == call_t
    # The same holds for a callee that is not profiled.
    assert_time_between(rec(result, caller, "UNPROFILED_CALLEE")[1], d, st[2] - st[1],
                        "line calling an unprofiled callee")
    # The callee's own lines are timed on their own.
    assert_time_between(rec(result, callee, "CALLEE_SLEEP")[1], d, call_t / 1e9, "callee sleep")
    assert_time_between(rec(result, callee, "CALLEE_SPIN")[1], d, call_t / 1e9, "callee spin")


def test_recursion_times_each_frame_on_its_own(prof):
    """Each level's recursive-call line includes the whole nested call (its
    active time), so that line's total over the levels is the sum of the
    nested calls' durations: time(REC_CALL) ~ sum(walls), while the sleep
    line is counted once per level: time(REC_SLEEP) ~ sum(spans)."""
    depth, d = 4, 0.004
    spans, walls, outer = [], [], []

    def body():
        t0 = perf_counter()
        nested(depth, d, spans, walls)
        outer.append(perf_counter() - t0)

    truth = settrace_hits([nested], lambda: nested(depth, d, [], []))
    result = profile_calls([nested], body, prof)
    check_invariants(result)
    assert hits_only(result) == truth
    assert len(spans) == depth + 1 and len(walls) == depth
    sleep_t = rec(result, nested, "REC_SLEEP")[1]
    call_t = rec(result, nested, "REC_CALL")[1]
    # REC_SLEEP: the sleep spans, plus a few microseconds per level.
    assert_time_between(sleep_t, sum(spans), sum(spans), "recursive sleep line",
                        slack_hi_s=0.001 * (depth + 1))
    # REC_CALL at level k covers the nested call (walls[k]); its own stamps
    # are on the same line, so the containment is one-sided plus slack.
    assert_time_between(call_t, sum(walls), sum(walls), "recursive call line",
                        slack_hi_s=0.001 * depth)
    # That is what the contract implies, and no more: each nested sleep is
    # in REC_CALL once per enclosing level, so REC_CALL ~ d * (1 + 2 + ... + depth).
    assert_time_between(call_t, d * depth * (depth + 1) / 2, outer[0] * depth,
                        "recursive call line against the sleeps it encloses")
    # The longest stretch is the outermost level's call.
    assert_time_between(rec(result, nested, "REC_CALL")[3], max(walls), min(outer[0], max(walls) + 0.001),
                        "max of the recursive call line")


def test_exception_time_charged_to_raising_line(prof):
    st = []
    d = 0.01
    result = profile_calls([catcher, raiser], lambda: catcher(d, st), prof)
    check_invariants(result)
    hits, t, _, mx = rec(result, raiser, "RAISE")
    assert hits == 1
    # From the line event to the unwind: includes the callee's spin.
    assert_time_between(t, d, st[2] - st[1], "line that raised")
    assert mx == t
    # The caller's line is charged until the exception reaches its handler.
    assert_time_between(rec(result, catcher, "CALL_RAISER")[1], d, st[2] - st[0],
                        "line whose callee raised")
    assert rec(result, catcher, "CAUGHT")[0] == 1
    assert prof.error is None


def test_snapshot_of_a_running_line_is_not_double_counted(prof):
    """snapshot() in the middle of a line counts it up to now; the final total is still the line's duration."""
    snaps, st = [], []

    def take():
        spin(0.005)
        snaps.append(prof.snapshot())
        spin(0.005)

    def target():
        st.append(perf_counter())  # BEFORE
        take(); take(); take()  # SNAPPING
        st.append(perf_counter())  # AFTER

    line = marker_line(target, "SNAPPING")
    result = profile_calls([target], target, prof)
    check_invariants(result)
    mid = [dict(((f["name"], ln), (h, t, a, m)) for f in s["functions"] for ln, h, t, a, m in f["lines"])
           for s in snaps]
    key = (target.__qualname__, line)
    partial = [m[key][1] for m in mid]
    assert partial == sorted(partial) and partial[0] >= 0.005e9 - 5_000
    hits, t, _, mx = result[key]
    assert hits == 1
    assert_time_between(t, 0.03, st[1] - st[0], "line with snapshots inside")
    assert mx == t, "a snapshot does not break the line's stretch"
