"""Out of memory inside the hook: the program goes on untouched.

The core's allocations are made to fail (``_lineprof._fail_allocations``)
while profiled code runs: on a new thread's record, a deep stack, the
parked pool of suspended coroutines, a task record, anywhere in a mixed
asyncio workload. Every time, the program's own results and exceptions are
exactly what they are without a profiler, nothing is raised into it,
recording stops with one warning, ``prof.error`` says why, and what was
recorded before stays readable.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import warnings

import pytest

import lineprof
from lineprof import _lineprof


@pytest.fixture(autouse=True)
def _restore_allocator():
    yield
    _lineprof._fail_allocations(-1)


def deep(n):
    if n == 0:
        return 0
    return 1 + deep(n - 1)


def gen(n):
    for i in range(n):
        yield i * i


async def leaf(i):
    await asyncio.sleep(0)
    if i % 7 == 3:
        raise ValueError(i)
    return i


async def fan(n):
    results = await asyncio.gather(*(leaf(i) for i in range(n)), return_exceptions=True)
    return [r if isinstance(r, int) else repr(r) for r in results]


def workload():
    """Threads, recursion, generators, tasks: what the hook allocates for."""
    out = {}

    def in_thread():
        out["thread"] = deep(50)

    t = threading.Thread(target=in_thread)
    t.start()
    t.join()
    out["deep"] = deep(100)
    out["gen"] = sum(gen(100))
    out["async"] = asyncio.run(fan(40))
    return out


def run_with_failure(after, capfd):
    prof = lineprof.LineProfiler()
    for f in (deep, gen, leaf, fan):
        prof.add_function(f)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        prof.enable_by_count()
        try:
            _lineprof._fail_allocations(after)
            try:
                got = workload()
            finally:
                _lineprof._fail_allocations(-1)
        finally:
            prof.disable_by_count()
    return prof, got, capfd.readouterr().err


def expected():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return workload()


def test_fail_at_once(capfd):
    want = expected()
    prof, got, err = run_with_failure(0, capfd)
    assert got == want
    assert prof.error is not None and prof.error.startswith("out of memory in ")
    assert err.count("lineprof: recording stopped: out of memory in ") == 1
    prof.get_stats()  # readable
    # A new profiler records normally afterwards.
    prof2 = lineprof.LineProfiler()
    wrapped = prof2(deep)
    assert wrapped(5) == 5
    assert prof2.error is None
    assert prof2.get_stats().functions[0].total_hits == 6 + 1 + 5  # the test, the base case, the recursion


@pytest.mark.parametrize("after", list(range(1, 40)) + [60, 100, 200, 400])
def test_fail_after_n_allocations(after, capfd):
    """Whichever allocation fails, the program's results are the same."""
    want = expected()
    prof, got, err = run_with_failure(after, capfd)
    assert got == want
    if prof.error is not None:
        assert prof.error.startswith("out of memory in ")
        assert err.count("lineprof: recording stopped:") == 1
    else:
        assert "recording stopped" not in err
    stats = prof.get_stats()
    # What was recorded is self-consistent: no line has time without hits
    # in a plain function.
    for fs in stats.functions:
        if fs.kind == "function":
            for rec in fs.lines.values():
                assert rec.max_ <= rec.time
    assert prof._c._stack_depth == 0


def test_exception_state_untouched(capfd):
    """A failure inside the hook leaves the program's exception state alone."""
    prof = lineprof.LineProfiler()
    prof.add_function(deep)
    prof.enable_by_count()
    try:
        try:
            raise KeyError("mine")
        except KeyError:
            _lineprof._fail_allocations(0)
            deep(3)
            _lineprof._fail_allocations(-1)
            assert sys.exc_info()[0] is KeyError
            assert str(sys.exc_info()[1]) == "'mine'"
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            prof.disable_by_count()
    assert prof.error is not None
