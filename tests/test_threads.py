"""Threads: each thread's frames are timed on their own, and the counts of
all threads add up exactly.

The switch interval is lowered during these tests so that the threads
interleave inside the profiled functions many times.
"""

import asyncio
import sys
import threading
import time
from time import perf_counter

import pytest

from conftest import (MONITORING, assert_time_between, check_invariants, hits_only,
                      profile_calls, rec, register, settrace_hits, table)

N_THREADS = 8


@pytest.fixture(autouse=True)
def busy_switching():
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)
    yield
    sys.setswitchinterval(old)


def threaded_work(n, d, st):
    total = 0  # TW_FIRST
    for i in range(n):  # TW_FOR
        total += i * i
        if i % 1000 == 0:
            total %= 1000003
    a = perf_counter(); time.sleep(d); b = perf_counter()  # TW_SLEEP
    st.append((a, b))
    return total


def helper(x):
    if x % 2:
        return 3 * x + 1
    return x // 2


def collatz_steps(n):
    steps = 0
    while n != 1:
        n = helper(n)
        steps += 1
    return steps


def run_threads(target, args_list):
    threads = [threading.Thread(target=target, args=args) for args in args_list]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def times(truth, k):
    return {key: v * k for key, v in truth.items()}


def test_threads_started_after_enable_add_up_exactly(prof):
    n, d = 3000, 0.02
    funcs = [threaded_work]
    single = settrace_hits(funcs, lambda: threaded_work(n, 0, []))
    st = []
    result = profile_calls(funcs, lambda: run_threads(threaded_work, [(n, d, st)] * N_THREADS), prof)
    check_invariants(result)
    assert hits_only(result) == times(single, N_THREADS)
    hits, t, aw, mx = rec(result, threaded_work, "TW_SLEEP")
    assert hits == N_THREADS
    assert aw == 0
    spans = [b - a for a, b in st]
    # Every thread's sleep is its own: the line's total is the sum, far
    # more than the wall time of the whole run.
    assert_time_between(t, max(sum(spans), N_THREADS * d), sum(spans),
                        "sleep line summed over threads", slack_hi_s=0.005 * N_THREADS)
    assert_time_between(mx, max(spans), max(spans), "longest single sleep", slack_hi_s=0.005)
    assert prof.error is None


def test_many_threads_calling_profiled_callees(prof):
    funcs = [collatz_steps, helper]
    starts = [27, 97, 871, 6171, 77031, 837799, 8400511, 63728127]
    single = {}
    for s in starts:
        for key, v in settrace_hits(funcs, lambda s=s: collatz_steps(s)).items():
            single[key] = single.get(key, 0) + v
    result = profile_calls(funcs, lambda: run_threads(collatz_steps, [(s,) for s in starts] * 2), prof)
    check_invariants(result)
    assert hits_only(result) == times(single, 2)
    assert prof.error is None


def test_threads_started_before_enable(prof):
    """Every thread is profiled: 3.12+ (sys.monitoring), and 3.11, where the
    trace function is installed at a profiled frame's entry on any thread.
    3.8-3.10: only the enabling thread and threads started after enable()."""
    n = 2000
    funcs = [threaded_work]
    single = settrace_hits(funcs, lambda: threaded_work(n, 0, []))
    go = threading.Event()
    st = []

    def runner():
        go.wait()
        threaded_work(n, 0.005, st)

    threads = [threading.Thread(target=runner) for _ in range(N_THREADS)]
    for t in threads:
        t.start()
    register(prof, funcs)
    prof.enable()
    try:
        go.set()
        for t in threads:
            t.join()
    finally:
        prof.disable()
    result = table(prof)
    check_invariants(result)
    if sys.version_info >= (3, 11):
        assert hits_only(result) == times(single, N_THREADS)
    else:
        assert hits_only(result) == {}
    assert prof.error is None


async def thread_napper(d, st):
    a = perf_counter(); await asyncio.sleep(d); b = perf_counter()  # TN_NAP
    st.append((a, b))


def test_event_loops_in_several_threads(prof):
    d = 0.03
    st = []
    result = profile_calls(
        [thread_napper],
        lambda: run_threads(lambda: asyncio.run(thread_napper(d, st)), [()] * 4),
        prof)
    check_invariants(result)
    hits, t, aw, _ = rec(result, thread_napper, "TN_NAP")
    assert hits == 4
    spans = [b - a for a, b in st]
    # Each frame's await is at least d minus its own active time (the timer
    # is scheduled before the suspension, on the same line).
    assert_time_between(aw, 4 * d - t / 1e9, sum(spans), "await summed over threads")
    assert t + aw >= sum(spans) * 1e9 - 5_000
    assert prof._parked == 0
    assert prof.error is None


def handoff_gen():
    yield 1  # HG_YIELD
    yield 2  # HG_YIELD2


def test_generator_resumed_in_another_thread(prof):
    stamps = []

    def body():
        g = handoff_gen()
        stamps.append(perf_counter())
        next(g)
        stamps.append(perf_counter())
        time.sleep(0.02)

        def resume():
            stamps.append(perf_counter())
            next(g)
            stamps.append(perf_counter())
            list(g)

        run_threads(resume, [()])

    truth = settrace_hits([handoff_gen], body)
    stamps.clear()
    result = profile_calls([handoff_gen], body, prof)
    check_invariants(result)
    assert hits_only(result) == truth
    hits, _, aw, _ = rec(result, handoff_gen, "HG_YIELD")
    assert hits == 1
    assert_time_between(aw, stamps[2] - stamps[1], stamps[3] - stamps[0], "await across threads")
    assert prof._parked == 0
