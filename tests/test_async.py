"""Coroutines, generators and async generators: active time, await time, hits.

A frame's line interval (from its line event to the frame's next line
event, return or unwind) is split into active stretches and suspended
stretches. The targets stamp perf_counter() around their awaits, so:

* a suspension that happens inside ``a = perf_counter(); await ...; b = perf_counter()``
  is contained in [a, b]: ``await_ <= b - a``, exactly;
* the whole line interval contains [a, b]: ``time + await_ >= b - a``, exactly;
* ``asyncio.sleep(d)`` keeps the frame suspended for at least d minus the
  line's active time (see :func:`slept_at_least`).

Suspensions ended by throw(), close(), cancellation or destruction must end
at that moment: the tests keep sleeping afterwards, so a suspension that was
left open would grow past the exact upper bound.
"""

import asyncio
import gc
import sys
import time
from time import perf_counter

import pytest

from conftest import (assert_time_between, check_invariants, hits_only, marker_line,
                      profile_calls, rec, settrace_hits, spin)


def slept_at_least(d, active_ns):
    """Lower bound of the await of a line that ran ``asyncio.sleep(d)``.

    asyncio fires the timer no earlier than d after scheduling it, and the
    frame suspends after scheduling it; the time in between is active time
    of the same line. So ``await >= d - active``, exactly, even when the
    machine preempts the thread between the two.
    """
    return d - active_ns / 1e9


def run(coro_fn, *args):
    """Return a body that runs ``coro_fn(*args)`` in a fresh event loop."""
    return lambda: asyncio.run(coro_fn(*args))


def no_leak(prof):
    gc.collect()
    assert prof._parked == 0, "suspended frames left in the profiler after they ended"
    assert prof.error is None


# -- targets: plain awaits ---------------------------------------------------------

async def napper(d, st):
    st.append(perf_counter())  # BEFORE
    await asyncio.sleep(d)  # NAP
    st.append(perf_counter())  # AFTER


async def inner_work(st):
    st.append(spin(0.01))  # I_SPIN
    a = perf_counter(); await asyncio.sleep(0.03); b = perf_counter()  # I_NAP
    st.append((a, b))
    return 1


async def outer_work(st):
    st.append(perf_counter())  # O_BEFORE
    r = await inner_work(st)  # O_AWAIT
    st.append(perf_counter())  # O_AFTER
    return r


async def worker(d, spans):
    a = perf_counter(); await asyncio.sleep(d); b = perf_counter()  # W_NAP
    spans.append((a, b))  # W_REC
    return d


async def gather_many(ds, spans):
    coros = []
    for d in ds:
        coros.append(worker(d, spans))
    return await asyncio.gather(*coros)  # GATHER


# -- tests: plain awaits -------------------------------------------------------------

def test_await_sleep_is_await_time_not_active(prof):
    d, st = 0.05, []
    result = profile_calls([napper], run(napper, d, st), prof)
    check_invariants(result)
    hits, t, aw, mx = rec(result, napper, "NAP")
    assert hits == 1
    assert_time_between(aw, slept_at_least(d, t), st[1] - st[0], "await of asyncio.sleep line")
    assert aw <= (d + 0.05) * 1e9, "await far longer than the sleep"
    assert t < 5_000_000, f"active time {t} ns of a line that only awaits"
    assert t + aw <= (st[1] - st[0]) * 1e9 + 5_000
    assert mx <= t
    for marker in ("BEFORE", "AFTER"):
        assert rec(result, napper, marker)[0] == 1
        assert rec(result, napper, marker)[2] == 0
    no_leak(prof)


def test_outer_line_carries_inner_suspension_as_await(prof):
    st = []
    funcs = [outer_work, inner_work]
    result = profile_calls(funcs, run(outer_work, st), prof)
    check_invariants(result)
    o_before, spun, (a, b), o_after = st
    hits, t, aw, _ = rec(result, outer_work, "O_AWAIT")
    assert hits == 1
    # Active: the inner's busy 10 ms ran inside the outer's line.
    assert_time_between(t, spun, (o_after - o_before), "outer active")
    # Await: the outer frame was suspended while the inner one was.
    assert_time_between(aw, slept_at_least(0.03, t), b - a, "outer await")
    assert t + aw <= (o_after - o_before) * 1e9 + 5_000
    # The inner frame's own lines.
    i_hits, i_t, i_aw, _ = rec(result, inner_work, "I_NAP")
    assert i_hits == 1
    assert_time_between(i_aw, slept_at_least(0.03, i_t), b - a, "inner await")
    assert i_t + i_aw >= (b - a) * 1e9 - 5_000
    assert_time_between(rec(result, inner_work, "I_SPIN")[1], spun, (o_after - o_before), "inner spin")
    assert rec(result, inner_work, "I_SPIN")[2] == 0
    # Nesting: the inner's suspension is contained in the outer's.
    assert aw <= i_aw + 5_000
    no_leak(prof)


def test_interleaved_instances_are_timed_per_frame(prof):
    """Ten instances of one coroutine suspended at the same line at the same
    time: the line's await is the sum of each instance's own suspension,
    far more than the wall time (a per-code "current line" would give ~max)."""
    ds = [0.005 * (i + 1) for i in range(10)]
    spans = []
    truth = settrace_hits([worker, gather_many], run(gather_many, ds, []))
    t0 = perf_counter()
    result = profile_calls([worker, gather_many], run(gather_many, ds, spans), prof)
    wall = perf_counter() - t0
    check_invariants(result)
    assert hits_only(result) == truth
    hits, t, aw, mx = rec(result, worker, "W_NAP")
    assert hits == len(ds)
    inner = sum(b - a for a, b in spans)
    assert_time_between(aw, slept_at_least(sum(ds), t), inner, "sum of the instances' awaits")
    assert aw > 2 * wall * 1e9, "await is summed per frame, so it exceeds the wall time"
    assert t + aw >= inner * 1e9 - 5_000
    assert t < 10_000_000
    # The gather line waited for the longest one, once.
    g_hits, g_t, g_aw, _ = rec(result, gather_many, "GATHER")
    assert g_hits == 1
    assert_time_between(g_aw, slept_at_least(max(ds), g_t), wall, "gather's await")
    no_leak(prof)


# -- cancellation and timeouts -----------------------------------------------------

async def victim(st):
    st.append(perf_counter())  # V_BEFORE
    try:
        await asyncio.sleep(10)  # V_LONG
    finally:
        st.append(perf_counter())  # V_FIN


async def cancel_driver(st, cancelled_at, gap):
    task = asyncio.create_task(victim(st))
    await asyncio.sleep(gap)
    cancelled_at.append(perf_counter())
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    await asyncio.sleep(gap)  # the victim's suspension must not grow now


def test_cancellation_ends_the_suspension(prof):
    st, cancelled_at = [], []
    # On 3.13 CPython reports a second 'line' event for the await line when
    # the cancellation is thrown in: the truth is settrace's, not a constant.
    truth = settrace_hits([victim], run(cancel_driver, [], [], 0.001))
    result = profile_calls([victim], run(cancel_driver, st, cancelled_at, 0.03), prof)
    check_invariants(result)
    assert hits_only(result) == truth
    v_before, v_fin = st
    hits, t, aw, _ = rec(result, victim, "V_LONG")
    # Suspended from (just after) V_BEFORE to the cancellation's throw, which
    # comes after cancel() and before the finally block's stamp.
    assert_time_between(aw + t, cancelled_at[0] - v_before, v_fin - v_before, "cancelled await line")
    assert_time_between(aw, cancelled_at[0] - v_before - t / 1e9, v_fin - v_before, "cancelled await")
    assert t < 5_000_000
    no_leak(prof)


async def slow_inner(st):
    st.append(perf_counter())  # SI_BEFORE
    try:
        await asyncio.sleep(10)  # SI_LONG
    finally:
        st.append(perf_counter())  # SI_FIN


async def timeout_outer(st, out, timeout):
    out.append(perf_counter())  # TO_BEFORE
    try:
        await asyncio.wait_for(slow_inner(st), timeout)  # TO_WAIT
    except asyncio.TimeoutError:
        out.append(perf_counter())  # TO_CAUGHT
    await asyncio.sleep(timeout)


def test_wait_for_timeout(prof):
    st, out = [], []
    funcs = [slow_inner, timeout_outer]
    truth = settrace_hits(funcs, run(timeout_outer, [], [], 0.001))
    result = profile_calls(funcs, run(timeout_outer, st, out, 0.03), prof)
    check_invariants(result)
    assert hits_only(result) == truth
    si_before, si_fin = st
    to_before, to_caught = out
    hits, t, aw, _ = rec(result, timeout_outer, "TO_WAIT")
    assert_time_between(aw, slept_at_least(0.03, t), to_caught - to_before, "wait_for await")
    assert t + aw <= (to_caught - to_before) * 1e9 + 5_000
    s_hits, s_t, s_aw, _ = rec(result, slow_inner, "SI_LONG")
    # wait_for's timer starts after TO_BEFORE; the inner suspends at most its
    # line's active time after SI_BEFORE; the timeout fires 30 ms after the
    # timer starts, and only then is the inner resumed (cancelled).
    assert_time_between(s_aw, to_before + 0.03 - si_before - s_t / 1e9, si_fin - si_before,
                        "timed-out inner await")
    assert rec(result, slow_inner, "SI_FIN")[0] == 1
    no_leak(prof)


# -- async generators ------------------------------------------------------------------

async def ticks(ds, naps):
    for d in ds:  # AG_FOR
        a = perf_counter(); await asyncio.sleep(d); b = perf_counter()  # AG_NAP
        naps.append((a, b))
        yield d  # AG_YIELD


async def tick_consumer(ds, naps, works):
    async for d in ticks(ds, naps):  # AC_FOR
        works.append((perf_counter(), spin(0.005), perf_counter()))  # AC_WORK
    works.append(perf_counter())  # AC_END


def test_async_generator_await_and_yield(prof):
    ds = [0.01, 0.02, 0.015]
    naps, works = [], []
    funcs = [ticks, tick_consumer]
    truth = settrace_hits(funcs, run(tick_consumer, [0, 0, 0], [], []))
    result = profile_calls(funcs, run(tick_consumer, ds, naps, works), prof)
    check_invariants(result)
    assert hits_only(result) == truth
    hits, t, aw, _ = rec(result, ticks, "AG_NAP")
    assert hits == len(ds)
    inner = sum(b - a for a, b in naps)
    assert_time_between(aw, slept_at_least(sum(ds), t), inner, "await inside the async generator")
    assert t + aw >= inner * 1e9 - 5_000
    # Suspended at the yield while the consumer works: from after the
    # stamp b of the nap to the stamp a of the next nap (or the loop's end).
    y_hits, _, y_aw, _ = rec(result, ticks, "AG_YIELD")
    assert y_hits == len(ds)
    ends = [a for a, _ in naps[1:]] + [works[-1]]
    upper = sum(end - b for (_, b), end in zip(naps, ends))
    lower = sum(w1 - w0 for w0, _, w1 in works[:-1])
    assert_time_between(y_aw, lower, upper, "await at the async generator's yield")
    # The consumer was suspended while the generator slept.
    c_hits, c_t, c_aw, _ = rec(result, tick_consumer, "AC_FOR")
    assert c_hits == truth[(tick_consumer.__qualname__, marker_line(tick_consumer, "AC_FOR"))]
    # The consumer suspends just after the generator and resumes just
    # before it; those gaps are the consumer's active time.
    assert_time_between(c_aw, slept_at_least(sum(ds), t + c_t), inner, "consumer's await at async for")
    no_leak(prof)


# -- generators driven by hand --------------------------------------------------------

def plain_gen(n):
    for i in range(n):  # PG_FOR
        yield i  # PG_YIELD


def drive(gen, gaps, stamps):
    """Call next(gen) len(gaps)+1 times, sleeping gaps[i] between calls."""
    stamped([lambda: next(gen)] * (len(gaps) + 1), gaps, stamps)


def test_generator_yield_await_is_the_gap_between_next_calls(prof):
    gaps = [0.02, 0.01, 0.03]
    stamps = []
    truth = settrace_hits([plain_gen], lambda: drive(plain_gen(3), [0, 0, 0], []))
    result = profile_calls([plain_gen], lambda: drive(plain_gen(3), gaps, stamps), prof)
    check_invariants(result)
    assert hits_only(result) == truth, "a resumption is not a new hit"
    hits, t, aw, mx = rec(result, plain_gen, "PG_YIELD")
    assert hits == 3
    lower, upper = suspension_bounds(stamps)
    assert_time_between(aw, max(lower, sum(gaps)), upper, "await at the yield")
    assert t < 5_000_000 and mx <= t
    no_leak(prof)


def guarded_gen(log):
    try:
        yield 1  # GG_YIELD
        yield 2  # GG_YIELD2
    finally:
        log.append(perf_counter())  # GG_FIN


def resilient_gen(log):
    while True:  # RG_LOOP
        try:
            yield 1  # RG_YIELD
        except ValueError:
            log.append(perf_counter())  # RG_CAUGHT


def bare_gen():
    x = 1  # BG_FIRST
    yield x  # BG_YIELD
    yield x + 1  # BG_YIELD2


def _end_suspension(gen_fn, how, gap, st, args, keep):
    """Start gen_fn(*args), suspend it at its first yield for gap seconds,
    then end it by ``how`` ("close", "throw" or "del"); keep sleeping after.
    The generator stays referenced from ``keep`` unless deleted."""
    g = gen_fn(*args)
    st.append(perf_counter())            # 0: before the first next()
    next(g)
    st.append(perf_counter())            # 1: suspended since before this
    time.sleep(gap)
    st.append(perf_counter())            # 2: still suspended here
    if how == "close":
        g.close()
    elif how == "throw":
        try:
            g.throw(KeyError("thrown"))
        except KeyError:
            pass
    else:
        del g
    st.append(perf_counter())            # 3: the suspension has ended
    time.sleep(gap)                      # must not be counted as await
    if how != "del":
        keep.append(g)


@pytest.mark.parametrize("how", ["close", "throw", "del"])
@pytest.mark.parametrize("gen_fn", [guarded_gen, bare_gen], ids=["in_try", "bare"])
def test_suspension_ends_at_close_throw_or_deletion(gen_fn, how, prof):
    """The yield outside any try block matters on 3.13, where CPython closes
    such a generator without running it (no hook event at all)."""
    gap = 0.03
    args = ([],) if gen_fn is guarded_gen else ()
    truth = settrace_hits([gen_fn], lambda: _end_suspension(gen_fn, how, 0, [], args, []))
    st, kept = [], []
    result = profile_calls([gen_fn], lambda: _end_suspension(gen_fn, how, gap, st, args, kept), prof)
    written = perf_counter()
    check_invariants(result)
    assert hits_only(result) == truth
    marker = "GG_YIELD" if gen_fn is guarded_gen else "BG_YIELD"
    hits, t, aw, _ = rec(result, gen_fn, marker)
    assert hits == 1
    if how == "close" and gen_fn is bare_gen and sys.version_info >= (3, 13):
        # 3.13+ closes it without running it, and no event marks the moment
        # (docs/semantics.md): used directly, not through the @profile
        # wrapper, its suspension ends at the next profile write.
        assert_time_between(aw, st[2] - st[1], written - st[0], "await at a bare yield closed on 3.13")
    else:
        assert_time_between(aw, st[2] - st[1], st[3] - st[0], f"await at a yield ended by {how}")
    if gen_fn is guarded_gen:
        assert rec(result, guarded_gen, "GG_FIN")[0] == 1, "the finally block runs"
        assert rec(result, guarded_gen, "GG_YIELD2")[0] == 0
    # A closed or thrown-out generator is finished even while still referenced.
    assert prof._parked == 0, f"a generator ended by {how} is still parked"
    kept.clear()
    no_leak(prof)


def stamped(calls, gaps, stamps):
    """Run calls[0](), then for each gap: sleep, run the next call; stamps
    gets (before, after) of every call. Exceptions the calls raise are
    swallowed (StopIteration, a thrown KeyError...)."""
    for i, call in enumerate(calls):
        if i and gaps[i - 1]:
            time.sleep(gaps[i - 1])
        before = perf_counter()
        try:
            call()
        except (StopIteration, KeyError):
            pass
        stamps.append((before, perf_counter()))


def suspension_bounds(stamps):
    """Bounds of the total suspension when suspension i starts inside call i
    and ends inside call i+1: it contains [after_i, before_i+1] and is
    contained in [before_i, after_i+1]."""
    lower = sum(stamps[i + 1][0] - stamps[i][1] for i in range(len(stamps) - 1))
    upper = sum(stamps[i + 1][1] - stamps[i][0] for i in range(len(stamps) - 1))
    return lower, upper


def test_throw_caught_then_suspended_again(prof):
    def body(log, gap, stamps):
        g = resilient_gen(log)
        calls = [lambda: next(g), lambda: g.throw(ValueError("again")),
                 lambda: g.throw(ValueError("again")), g.close]
        stamped(calls, [gap] * 3, stamps)
        time.sleep(gap)  # closed: must not count

    truth = settrace_hits([resilient_gen], lambda: body([], 0, []))
    stamps = []
    result = profile_calls([resilient_gen], lambda: body([], 0.02, stamps), prof)
    check_invariants(result)
    assert hits_only(result) == truth
    hits, t, aw, _ = rec(result, resilient_gen, "RG_YIELD")
    assert hits == 3, "each throw resumes the frame; it reaches the yield again, a new hit"
    assert rec(result, resilient_gen, "RG_CAUGHT")[0] == 2
    lower, upper = suspension_bounds(stamps)
    assert_time_between(aw, max(lower, 0.06), upper, "await of a yield resumed by throw()")
    no_leak(prof)


def cyclic_gen(box, guarded):
    box.append(perf_counter())  # CY_FIRST
    if guarded:
        try:
            yield box  # CY_YIELD_TRY
        finally:
            box.append(perf_counter())  # CY_FIN
    else:
        yield box  # CY_YIELD_BARE


@pytest.mark.parametrize("guarded", [True, False], ids=["in_try", "bare"])
def test_garbage_collected_generator_ends_suspension_at_collection(guarded, prof):
    st = []

    def body():
        was_enabled = gc.isenabled()
        gc.disable()   # collect only when the test says so
        try:
            box = []
            g = cyclic_gen(box, guarded)
            box.append(g)                 # a cycle: only the GC can free it
            st.append(perf_counter())     # 0: before the suspension
            next(g)
            st.append(perf_counter())     # 1: suspended since before this
            del g, box
            time.sleep(0.03)              # unreachable but not destroyed: still suspended
            st.append(perf_counter())     # 2: still suspended here
            gc.collect()
            st.append(perf_counter())     # 3: destroyed before this
            time.sleep(0.03)              # destroyed: must not count
        finally:
            if was_enabled:
                gc.enable()

    result = profile_calls([cyclic_gen], body, prof)
    check_invariants(result)
    marker = "CY_YIELD_TRY" if guarded else "CY_YIELD_BARE"
    hits, t, aw, _ = rec(result, cyclic_gen, marker)
    assert hits == 1
    assert_time_between(aw, st[2] - st[1], st[3] - st[0],
                        "await of a generator destroyed by the GC")
    if guarded:
        assert rec(result, cyclic_gen, "CY_FIN")[0] == 1
    no_leak(prof)


class Suspend:
    def __await__(self):
        yield "suspended"


async def parked_coro(box):
    box.append(perf_counter())  # PC_BEFORE
    await Suspend()  # PC_AWAIT
    box.append("never")  # PC_NEVER


def test_garbage_collected_coroutine_ends_suspension(prof):
    def plain():
        c = parked_coro([])
        c.send(None)
        del c

    truth = settrace_hits([parked_coro], plain)
    st = []

    def body():
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            box = []
            c = parked_coro(box)
            box.append(c)
            st.append(perf_counter())
            st.append(c.send(None))
            st.append(perf_counter())
            del c, box
            time.sleep(0.03)
            st.append(perf_counter())
            gc.collect()
            st.append(perf_counter())
            time.sleep(0.03)
        finally:
            if was_enabled:
                gc.enable()

    result = profile_calls([parked_coro], body, prof)
    check_invariants(result)
    assert hits_only(result) == truth
    s0, sent, s1, s2, s3 = st
    assert sent == "suspended"
    hits, t, aw, _ = rec(result, parked_coro, "PC_AWAIT")
    assert_time_between(aw, s2 - s1, s3 - s0, "await of a collected coroutine")
    assert rec(result, parked_coro, "PC_NEVER")[0] == 0
    no_leak(prof)


def test_many_generators_suspended_at_once_leave_nothing_parked(prof):
    """Create, suspend and drop generators and coroutines in bulk: every
    parked frame is released when its owner ends or dies."""

    def body():
        gens = [plain_gen(5) for _ in range(300)]
        for g in gens:
            next(g)
        for g in gens[::2]:
            list(g)
        for g in gens[1::4]:
            g.close()
        del gens
        coros = []
        for _ in range(100):
            box = []
            c = parked_coro(box)
            c.send(None)
            coros.append(c)
        del coros

    truth = settrace_hits([plain_gen, parked_coro], body)
    result = profile_calls([plain_gen, parked_coro], body, prof)
    check_invariants(result)
    assert hits_only(result) == truth
    assert rec(result, plain_gen, "PG_YIELD")[0] == 150 * 5 + 150
    no_leak(prof)


# -- max across a suspension, aclose ---------------------------------------------

async def two_stretches(st):
    st.append(perf_counter())  # TS_BEFORE
    st.append(spin(0.01)); await asyncio.sleep(0.02); st.append(spin(0.015))  # TS_LINE
    st.append(perf_counter())  # TS_AFTER


def test_max_is_one_stretch_not_the_line_total(prof):
    """A line that runs 10 ms, suspends 20 ms, then runs 15 ms: time is the
    25 ms of activity, await the 20 ms, and max the longer stretch (15 ms)."""
    st = []
    result = profile_calls([two_stretches], run(two_stretches, st), prof)
    check_invariants(result)
    before, first, second, after = st
    hits, t, aw, mx = rec(result, two_stretches, "TS_LINE")
    assert hits == 1
    # The spins are measured inside the stretches, so only t - first - second
    # can lie between scheduling the timer and suspending.
    assert_time_between(aw, slept_at_least(0.02, t - (first + second) * 1e9), (after - before) - first - second,
                        "await between the stretches")
    assert_time_between(t + aw, first + second, after - before, "the line's whole interval")
    assert_time_between(t, first + second, (after - before) - aw / 1e9, "two active stretches")
    # max is one of the two stretches: at least the longer spin, and at most
    # the line's interval minus the await and the other stretch (which is at
    # least the shorter spin; under load the 10 ms spin may be the longer).
    assert_time_between(mx, max(first, second), (after - before) - aw / 1e9 - min(first, second),
                        "longest stretch")
    # (had max joined the two stretches, it would exceed that upper bound by ~first)
    no_leak(prof)


async def bare_agen(log):
    log.append(1)  # BA_FIRST
    yield 1  # BA_YIELD
    log.append(2)  # BA_NEVER


async def aclose_driver(st, gap):
    g = bare_agen([])
    st.append(perf_counter())
    await g.__anext__()
    st.append(perf_counter())
    await asyncio.sleep(gap)
    st.append(perf_counter())
    await g.aclose()
    st.append(perf_counter())
    await asyncio.sleep(gap)  # closed: must not count
    st.append(g)  # still referenced


def test_async_generator_aclose_ends_the_suspension(prof):
    truth = settrace_hits([bare_agen], run(aclose_driver, [], 0))
    st = []
    result = profile_calls([bare_agen], run(aclose_driver, st, 0.03), prof)
    check_invariants(result)
    assert hits_only(result) == truth
    hits, _, aw, _ = rec(result, bare_agen, "BA_YIELD")
    assert hits == 1
    assert_time_between(aw, st[2] - st[1], st[3] - st[0], "await at an async generator's yield ended by aclose")
    assert prof._parked == 0
    st.clear()
    no_leak(prof)
