"""The same truths, through the Python front end ``lineprof.LineProfiler``.

Hits must equal sys.settrace's line events, times must sit inside the
test's own perf_counter() sandwiches, whichever way profiling is switched
on: ``LineProfiler(*funcs)`` with ``with prof:``, ``runcall``,
``enable_by_count``/``disable_by_count``, or the profiler used as a
decorator (for plain functions, generators, coroutines and async
generators alike).
"""

import asyncio
import os
import time
from time import perf_counter

import pytest

import truth_cases
from conftest import assert_time_between, code_of, marker_line, name_of, settrace_hits

try:
    from lineprof import LineProfiler
except Exception as exc:  # the front end is missing or broken
    LineProfiler = None
    pytestmark = pytest.mark.skip(
        reason=f"lineprof.LineProfiler is not importable ({type(exc).__name__}: {exc})")

from test_async import napper, plain_gen, ticks
from test_timing import sleeper


def by_position(funcs, truth):
    """Re-key {(qualname, lineno): hits} as {(file basename, firstlineno, lineno): hits}."""
    first = {}
    for f in funcs:
        code = code_of(f)
        name = f[0] if isinstance(f, tuple) else getattr(f, "__qualname__", None) or name_of(code)
        first[name] = (os.path.basename(code.co_filename), code.co_firstlineno)
    return {first[name] + (line,): hits for (name, line), hits in truth.items()}


def api_hits(stats):
    """{(file basename, firstlineno, lineno): hits} from LineStats.functions."""
    out = {}
    for fs in stats.functions:
        for line, r in fs.lines.items():
            if r.hits:
                key = (os.path.basename(fs.file), fs.firstlineno, line)
                assert key not in out
                out[key] = r.hits
    return out


def line_record(stats, func, marker):
    code = code_of(func)
    line = marker_line(func, marker)
    for fs in stats.functions:
        if fs.firstlineno == code.co_firstlineno and os.path.basename(fs.file) == os.path.basename(code.co_filename):
            return fs.lines.get(line)
    raise LookupError(f"{func} not in the stats")


def plain_funcs(funcs):
    return [f[1] if isinstance(f, tuple) else f for f in funcs]


@pytest.mark.parametrize("name", truth_cases.all_case_names())
def test_hits_through_context_manager(name):
    funcs, body = truth_cases.CASES[name]
    truth = by_position(funcs, settrace_hits(funcs, body))
    prof = LineProfiler(*plain_funcs(funcs))
    with prof:
        body()
    stats = prof.get_stats()
    assert api_hits(stats) == truth
    assert prof.error is None
    # line_profiler's view agrees with the richer one.
    for fs in stats.functions:
        assert sorted(stats.timings[fs.key]) == sorted(
            (ln, r.hits, r.time) for ln, r in fs.lines.items())


def test_runcall_and_enable_by_count():
    funcs, body = truth_cases.CASES["recursion_workload"]
    truth = by_position(funcs, settrace_hits(funcs, body))
    prof = LineProfiler()
    for f in funcs:
        prof.add_function(f)
    assert prof.runcall(truth_cases.fib, 9) == 34
    prof.enable_by_count()
    prof.enable_by_count()
    prof.disable_by_count()
    assert prof.enabled, "one count is still held"
    truth_cases.is_even(11)
    truth_cases.is_odd(7)
    prof.disable_by_count()
    assert not prof.enabled
    truth_cases.fib(5)  # not counted
    assert api_hits(prof.get_stats()) == truth


def test_decorated_function_time():
    prof = LineProfiler()
    wrapped = prof(sleeper)
    st, spans = [], []
    spans.append(wrapped(0.02, st))
    assert not prof.enabled
    r = line_record(prof.get_stats(), sleeper, "SLEEP")
    assert r.hits == 1
    assert_time_between(r.time, max(spans[0], 0.02), st[1] - st[0], "sleep line via the decorator")
    assert r.max_ == r.time
    assert r.await_ == 0


def test_decorated_coroutine_await():
    prof = LineProfiler()
    wrapped = prof(napper)
    assert asyncio.iscoroutinefunction(wrapped)
    st = []
    asyncio.run(wrapped(0.03, st))
    stats = prof.get_stats()
    (fs,) = [f for f in stats.functions if f.name == napper.__qualname__]
    assert fs.kind == "coroutine"
    r = fs.lines[marker_line(napper, "NAP")]
    assert r.hits == 1
    assert_time_between(r.await_, 0.03 - r.time / 1e9, st[1] - st[0], "await via the decorator")
    assert r.time < 5_000_000


def test_decorated_generator_yield_await():
    prof = LineProfiler()
    wrapped = prof(plain_gen)
    g = wrapped(2)
    stamps = [perf_counter()]
    next(g)
    stamps.append(perf_counter())
    time.sleep(0.02)
    stamps.append(perf_counter())
    next(g)
    stamps.append(perf_counter())
    assert list(g) == []
    truth = by_position([plain_gen], settrace_hits([plain_gen], lambda: list(plain_gen(2))))
    stats = prof.get_stats()
    assert api_hits(stats) == truth
    r = line_record(stats, plain_gen, "PG_YIELD")
    assert r.hits == 2
    assert_time_between(r.await_, stamps[2] - stamps[1], stamps[3] - stamps[0], "yield await via the decorator")
    assert [f.kind for f in stats.functions] == ["generator"]


def test_decorated_async_generator():
    prof = LineProfiler()
    wrapped = prof(ticks)
    ds, naps = [0.01, 0.01], []

    async def consume():
        return [d async for d in wrapped(ds, naps)]

    assert asyncio.run(consume()) == ds
    stats = prof.get_stats()
    r = line_record(stats, ticks, "AG_NAP")
    assert r.hits == 2
    assert_time_between(r.await_, sum(ds) - r.time / 1e9, sum(b - a for a, b in naps),
                        "async generator await via the decorator")
    assert [f.kind for f in stats.functions] == ["async_generator"]


def bare_yielder():
    x = 1
    yield x  # BY_YIELD
    yield x + 1


@pytest.mark.parametrize("how", ["close", "del"])
def test_decorated_generator_suspension_ends_at_close(how):
    """Through the decorator, a generator suspended at a yield outside any
    try block and then closed (or dropped) has its suspension end at that
    moment, on 3.13 too, where CPython closes it without running it."""
    import gc

    prof = LineProfiler()
    wrapped = prof(bare_yielder)
    st = []
    g = wrapped()
    st.append(perf_counter())
    next(g)
    st.append(perf_counter())
    time.sleep(0.03)
    st.append(perf_counter())
    if how == "close":
        g.close()
    else:
        del g
        gc.collect()
    st.append(perf_counter())
    time.sleep(0.03)  # ended: must not count
    r = line_record(prof.get_stats(), bare_yielder, "BY_YIELD")
    assert r.hits == 1
    assert_time_between(r.await_, st[2] - st[1], st[3] - st[0], f"await of a decorated generator ended by {how}")
    engine = getattr(prof, "_c", None)  # the extension's Profiler, if exposed
    if engine is not None:
        assert engine._parked == 0
    assert not prof.enabled
