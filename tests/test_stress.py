"""Stress: the contract of docs/semantics.md under load and abuse.

Every test checks truths measured independently of the profiler:

* hits against CPython's own line events (``sys.settrace``, run separately
  on the same deterministic workload), or bounded by them where profiling
  is switched off part of the time;
* times against the test's own ``perf_counter()`` stamps: a frame's lines
  can hold no more time + await than the frame lived, at least what was
  stamped inside it, and a suspension ended by cancellation, throw, close or
  collection must not grow afterwards (the workloads keep running or
  sleeping after it, so an open suspension would break the upper bound);
* the engine's own invariants: nothing left parked or on the stack, no
  sticky error, max <= time.

The targets contain no ``assert`` (pytest rewrites asserts, which changes
line events). The whole module runs in well under a minute per Python.
"""

from __future__ import annotations

import asyncio
import gc
import os
import random
import sys
import threading
import time
import traceback
import warnings
from time import perf_counter

import pytest

from conftest import (EPS_NS, MONITORING, NS, _lineprof, assert_time_between,
                      check_invariants, collect, func_lines, hits_only, marker_line,
                      name_of, profile_calls, rec, register, settrace_hits, spin, table)

N_THREADS = 8


@pytest.fixture(autouse=True)
def _clean_hooks():
    """Each test leaves no trace function (sys or threading) behind."""
    before = sys.gettrace()
    yield
    after = sys.gettrace()
    hook = getattr(threading, "_trace_hook", None)
    if after is not before:
        sys.settrace(before)
        pytest.fail(f"a trace function was left installed: {after!r}")
    # The legacy backend keeps its threading.settrace bootstrap while its
    # profiler lives (it does nothing while disabled); anything else is a leak.
    if hook is not None and getattr(hook, "__name__", "") != "_thread_bootstrap":
        threading.settrace(None)  # type: ignore[arg-type]
        pytest.fail(f"threading.settrace hook left installed: {hook!r}")


def no_leak(prof):
    collect()
    assert prof._parked == 0, "suspended frames left parked after they ended"
    assert prof._stack_depth == 0
    assert prof.error is None


def wall_of(result, func):
    """Return (time + await) summed over the lines of ``func``, in ns."""
    return sum(r[1] + r[2] for r in func_lines(result, func).values())


def between_ns(got, lo_s, hi_s, what, slack_ns=0):
    """Assert lo <= got <= hi (seconds bounds, ns value) with float-rounding slack."""
    lo = lo_s * NS - EPS_NS - slack_ns
    hi = hi_s * NS + EPS_NS + slack_ns
    assert lo <= got <= hi, f"{what}: got {got / 1e6:.3f} ms, expected {lo / 1e6:.3f}..{hi / 1e6:.3f} ms"


# == 1. cancellation storms ======================================================

class StormError(Exception):
    pass


class Storm:
    """A deterministic plan: what each worker awaits, and when it is cancelled.

    Only ``asyncio.sleep(0)`` and never-firing timeouts are awaited, so the
    event loop's schedule, and so every line event, is the same in the truth
    run and the profiled run.
    """

    def __init__(self, n, seed):
        rng = random.Random(seed)
        self.plans = [[rng.randrange(6) for _ in range(rng.randrange(1, 7))] for _ in range(n)]
        self.cancel_at = [rng.randrange(-4, 14) for _ in range(n)]  # < 0: never
        self.n = n
        self.first = [None] * n
        self.fin = [None] * n
        self.start = [None] * n
        self.end = [None] * n
        self.cancelled = 0


async def storm_inner(k):
    for _ in range(k % 3 + 1):  # SI_FOR
        await asyncio.sleep(0)  # SI_SLEEP
    return k


async def storm_worker(i, s):
    s.first[i] = perf_counter()  # SW_FIRST
    try:
        for k in s.plans[i]:  # SW_FOR
            if k < 2:
                await storm_inner(k)  # SW_INNER
            elif k < 4:
                await asyncio.wait_for(storm_inner(k), 1e6)  # SW_WAIT_FOR
            elif k == 4:
                await asyncio.sleep(0)  # SW_SLEEP
            elif i % 7 == 0:
                raise StormError(i)  # SW_RAISE
    except asyncio.CancelledError:
        s.cancelled += 1  # SW_CANCELLED
        raise
    finally:
        s.fin[i] = perf_counter()  # SW_FIN
        await asyncio.sleep(0)  # SW_FIN_AWAIT


async def storm_shell(i, s):
    s.start[i] = perf_counter()
    try:
        await storm_worker(i, s)
    finally:
        s.end[i] = perf_counter()


async def storm_ticker(s, tasks):
    for step in range(16):
        await asyncio.sleep(0)
        for i in range(len(tasks)):
            if s.cancel_at[i] == step:
                tasks[i].cancel()


async def storm_group(s, idx, tasks):
    try:
        async with asyncio.TaskGroup() as tg:
            for i in idx:
                tasks[i] = tg.create_task(storm_shell(i, s), name=f"s{i}")
    except BaseExceptionGroup:  # noqa: F821 - 3.11+
        pass


async def storm_driver(s, mode):
    n = s.n
    # 3.11's wait_for leaves failed inner tasks unretrieved when cancelled: quiet.
    asyncio.get_running_loop().set_exception_handler(lambda loop, ctx: None)
    tasks = [None] * n
    if mode == "gather":
        for i in range(n):
            tasks[i] = asyncio.ensure_future(storm_shell(i, s))
        ticker = asyncio.ensure_future(storm_ticker(s, tasks))
        await asyncio.gather(*tasks, return_exceptions=True)
        await ticker
    elif mode == "taskgroup":
        groups = []
        for g in range(0, n, 50):
            groups.append(asyncio.ensure_future(storm_group(s, range(g, min(n, g + 50)), tasks)))
        await asyncio.sleep(0)  # the groups create their tasks
        ticker = asyncio.ensure_future(storm_ticker(s, tasks))
        # Whole groups are cancelled too: the TaskGroup cancels its children.
        groups[1].cancel()
        await asyncio.gather(*groups, return_exceptions=True)
        await ticker
    else:  # wait_for around each shell; cancelling the outer cancels the inner
        for i in range(n):
            tasks[i] = asyncio.ensure_future(asyncio.wait_for(storm_shell(i, s), 1e6))
        ticker = asyncio.ensure_future(storm_ticker(s, tasks))
        await asyncio.gather(*tasks, return_exceptions=True)
        await ticker
    await asyncio.sleep(0.03)  # every suspension has ended: nothing may grow now


@pytest.mark.parametrize("mode", [
    "gather",
    pytest.param("taskgroup", marks=pytest.mark.skipif(
        sys.version_info < (3, 11), reason="asyncio.TaskGroup is new in 3.11")),
    "wait_for"])
def test_cancellation_storm(mode, prof):
    n, seed = 1000, 1234
    funcs = [storm_worker, storm_inner]
    truth_storm = Storm(n, seed)
    truth = settrace_hits(funcs, lambda: asyncio.run(storm_driver(truth_storm, mode)))
    s = Storm(n, seed)
    result = profile_calls(funcs, lambda: asyncio.run(storm_driver(s, mode)), prof)
    check_invariants(result)
    assert s.cancelled == truth_storm.cancelled
    assert s.cancelled > n // 10, "the storm must cancel many tasks mid-await"
    assert hits_only(result) == truth
    # Every worker frame lived inside its shell's stamps and held the stamps
    # taken in its first line and its finally block.
    ran = [i for i in range(n) if s.first[i] is not None]
    lower = sum(s.fin[i] - s.first[i] for i in ran)
    upper = sum(s.end[i] - s.start[i] for i in ran)
    between_ns(wall_of(result, storm_worker), lower, upper, "worker frames' time + await")
    # The cancelled frames' awaits ended at their cancellation: none is left
    # open, and the worker's await is bounded by its frames' lives.
    w_await = sum(r[2] for r in func_lines(result, storm_worker).values())
    assert w_await <= upper * NS + EPS_NS
    # Tasks: a shell task's record is the union of its profiled frames,
    # which here is the worker frame; folded records keep the sums. (On
    # 3.12+ wait_for runs the shell in the caller's task, whose coroutine is
    # wait_for itself; on 3.11 in a task of its own.)
    # (GC off while snapshot() walks the records: on 3.11 a collection in
    # the middle corrupts the walk, see test_garbage_collection_during_snapshot.)
    collect()
    gc.disable()
    try:
        tasks = prof.snapshot()["tasks"]
    finally:
        gc.enable()
    shell_tasks = [t for t in tasks if t["coro"] in (storm_shell.__qualname__, "wait_for")]
    task_wall = sum(t["time"] + t["await"] for t in shell_tasks)
    between_ns(task_wall, lower, upper, "shell tasks' time + await")
    assert task_wall >= wall_of(result, storm_worker) - EPS_NS
    no_leak(prof)


async def timeout_victim(d, st):
    st.append(perf_counter())  # TV_FIRST
    try:
        await asyncio.sleep(d)  # TV_SLEEP
    finally:
        st.append(perf_counter())  # TV_FIN


async def timeout_shell(d, timeout, spans):
    st = []
    a = perf_counter()
    try:
        await asyncio.wait_for(timeout_victim(d, st), timeout)
    except (asyncio.TimeoutError, asyncio.CancelledError):
        pass
    spans.append((a, perf_counter(), st))


async def timeout_driver(n, spans, seed):
    rng = random.Random(seed)
    shells = [timeout_shell(rng.uniform(0, 0.02), rng.uniform(0, 0.02), spans) for _ in range(n)]
    tasks = [asyncio.ensure_future(c) for c in shells]
    await asyncio.sleep(0.01)
    for t in tasks[::5]:
        t.cancel()  # cancelled from outside too, while wait_for may be timing out
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.sleep(0.03)


def test_real_timeouts_and_cancellations_end_every_suspension(prof):
    """wait_for with real timers racing cancel(): schedules vary, so hits
    are bounded by the truth of the same structure, times by the stamps."""
    n = 1500
    spans = []
    result = profile_calls([timeout_victim], lambda: asyncio.run(timeout_driver(n, spans, 7)), prof)
    check_invariants(result)
    ran = [(a, b, st) for a, b, st in spans if st]
    assert len(ran) > n // 2
    first = rec(result, timeout_victim, "TV_FIRST")[0]
    fin = rec(result, timeout_victim, "TV_FIN")[0]
    assert first == fin == len(ran)
    lower = sum(st[1] - st[0] for _, _, st in ran)
    upper = sum(b - a for a, b, _ in ran)
    between_ns(wall_of(result, timeout_victim), lower, upper, "timed-out frames' time + await")
    no_leak(prof)


# == 2. throw() and close() on suspended generators and coroutines, nested ==========

class Suspend:
    def __await__(self):
        return (yield "suspended")


def inner_gen(log):
    while True:  # IG_LOOP
        try:
            x = yield "inner"  # IG_YIELD
            log.append(("inner", x))
        except ValueError as e:
            log.append(("inner caught", str(e)))  # IG_CAUGHT
        except GeneratorExit:
            log.append("inner exit")  # IG_EXIT
            raise


def middle_gen(inner, log):
    try:
        while True:  # MG_LOOP
            try:
                r = yield from inner  # MG_YIELD_FROM
                log.append(("middle got", r))
                return r
            except KeyError as e:
                log.append(("middle caught", str(e)))  # MG_CAUGHT
                yield "middle"  # MG_YIELD
                return "middle done"
    finally:
        log.append("middle finally")  # MG_FIN


def outer_gen(middle, log):
    try:
        yield from middle  # OG_YIELD_FROM
    except LookupError as e:
        log.append(("outer caught", type(e).__name__))  # OG_CAUGHT
        yield "outer"  # OG_YIELD
    finally:
        log.append("outer finally")  # OG_FIN


async def inner_coro(log):
    for _ in range(100):  # IC_LOOP
        try:
            await Suspend()  # IC_AWAIT
        except ValueError as e:
            log.append(("ic caught", str(e)))  # IC_CAUGHT
    return "ic done"


async def outer_coro(log):
    try:
        r = await inner_coro(log)  # OC_AWAIT
        log.append(r)
    except KeyError:
        log.append("oc caught")  # OC_CAUGHT
        await Suspend()  # OC_AWAIT2
    finally:
        log.append("oc finally")  # OC_FIN


class Interrupt(BaseException):
    """A KeyboardInterrupt-like BaseException."""


def is_suspended(obj):
    frame = getattr(obj, "gi_frame", None) or getattr(obj, "cr_frame", None)
    running = getattr(obj, "gi_running", False) or getattr(obj, "cr_running", False)
    return frame is not None and not running and frame.f_lasti >= 0


def drive_chain(objs, ops, gap, stamps, states):
    """Run ``ops`` (callables) one by one, ``gap`` s apart; record
    (before, after) stamps and which of ``objs`` is suspended after each op."""
    log = []
    for k, op in enumerate(ops):
        if k and gap:
            time.sleep(gap)
        before = perf_counter()
        try:
            log.append(("ok", op()))
        except StopIteration as e:
            log.append(("stop", e.value))
        except (ValueError, KeyError, LookupError, RuntimeError, Interrupt) as e:
            log.append(("raised", type(e).__name__, str(e)))
        stamps.append((before, perf_counter()))
        states.append([is_suspended(o) for o in objs])
    if gap:
        time.sleep(gap)  # everything has ended: must not be counted
    return log


def await_bounds(stamps, states, j):
    """Bounds of the total suspension of object j: suspended after op k
    (per ``states``) means suspended from inside op k to inside op k+1."""
    lower = upper = 0.0
    for k in range(len(stamps) - 1):
        if states[k][j]:
            lower += stamps[k + 1][0] - stamps[k][1]
            upper += stamps[k + 1][1] - stamps[k][0]
    return lower, upper


def gen_chain_scenario(gap, stamps, states, out):
    log = []
    inner = inner_gen(log)
    middle = middle_gen(inner, log)
    outer = outer_gen(middle, log)
    objs = [inner, middle, outer]
    ops = [
        lambda: next(outer),
        lambda: outer.send(1),
        lambda: outer.throw(ValueError("v1")),     # caught by inner
        lambda: outer.throw(KeyError("k1")),       # ends inner, caught by middle
        lambda: outer.throw(IndexError("i1")),     # ends middle, caught by outer
        lambda: outer.throw(Interrupt()),          # BaseException out of outer
        lambda: next(outer),
    ]
    out.append(drive_chain(objs, ops, gap, stamps, states))
    # A second chain, closed while suspended deep inside.
    inner2 = inner_gen(log)
    middle2 = middle_gen(inner2, log)
    outer2 = outer_gen(middle2, log)
    objs2 = [inner2, middle2, outer2]
    ops2 = [lambda: next(outer2), lambda: outer2.send("x"), outer2.close, lambda: next(outer2)]
    st2, sts2 = [], []
    out.append(drive_chain(objs2, ops2, gap, st2, sts2))
    out.append(log)
    stamps.append(None)
    stamps.extend(st2)
    states.append(None)
    states.extend(sts2)


def split(seq):
    i = seq.index(None)
    return seq[:i], seq[i + 1:]


def test_throw_and_close_through_nested_generators(prof):
    funcs = [inner_gen, middle_gen, outer_gen]
    plain = []
    gen_chain_scenario(0, [], [], plain)
    truth = settrace_hits(funcs, lambda: gen_chain_scenario(0, [], [], []))
    stamps, states, out = [], [], []
    result = profile_calls(funcs, lambda: gen_chain_scenario(0.004, stamps, states, out), prof)
    check_invariants(result)
    assert out == plain, "profiling changed what the generators did"
    assert hits_only(result) == truth
    (st1, st2), (ss1, ss2) = split(stamps), split(states)
    for j, func in enumerate(funcs):
        lo1, hi1 = await_bounds(st1, ss1, j)
        lo2, hi2 = await_bounds(st2, ss2, j)
        got = sum(r[2] for r in func_lines(result, func).values())
        between_ns(got, lo1 + lo2, hi1 + hi2, f"await of {func.__name__} across throw/close")
    no_leak(prof)


def coro_chain_scenario(gap, stamps, states, out):
    log = []
    oc = outer_coro(log)
    objs = [oc]
    ops = [
        lambda: oc.send(None),
        lambda: oc.throw(ValueError("v")),   # caught by inner_coro, suspends again
        lambda: oc.send(None),
        lambda: oc.throw(KeyError("k")),     # out of inner_coro, caught by outer_coro
        lambda: oc.throw(Interrupt()),       # out of everything
    ]
    out.append(drive_chain(objs, ops, gap, stamps, states))
    oc2 = outer_coro(log)
    st2, sts2 = [], []
    out.append(drive_chain([oc2], [lambda: oc2.send(None), lambda: oc2.throw(ValueError("w")), oc2.close,
                                   lambda: oc2.send(None)], gap, st2, sts2))
    out.append(log)
    stamps.append(None)
    stamps.extend(st2)
    states.append(None)
    states.extend(sts2)


def test_throw_and_close_through_nested_coroutines(prof):
    funcs = [inner_coro, outer_coro]
    plain = []
    coro_chain_scenario(0, [], [], plain)
    truth = settrace_hits(funcs, lambda: coro_chain_scenario(0, [], [], []))
    stamps, states, out = [], [], []
    result = profile_calls(funcs, lambda: coro_chain_scenario(0.004, stamps, states, out), prof)
    check_invariants(result)
    assert out == plain
    assert hits_only(result) == truth
    (st1, st2), (ss1, ss2) = split(stamps), split(states)
    # outer_coro's frame is suspended exactly when the chain's outer object is.
    lo = await_bounds(st1, ss1, 0)[0] + await_bounds(st2, ss2, 0)[0]
    hi = await_bounds(st1, ss1, 0)[1] + await_bounds(st2, ss2, 0)[1]
    between_ns(sum(r[2] for r in func_lines(result, outer_coro).values()), lo, hi, "outer coroutine await")
    # inner_coro is suspended only while outer_coro waits on it: at most that.
    ic = sum(r[2] for r in func_lines(result, inner_coro).values())
    assert ic <= hi * NS + EPS_NS
    assert ic >= (await_bounds(st1[:4], ss1[:4], 0)[0] + await_bounds(st2[:3], ss2[:3], 0)[0]) * NS - EPS_NS
    no_leak(prof)


async def inner_agen(log):
    try:
        for i in range(100):  # IA_LOOP
            try:
                yield i  # IA_YIELD
            except ValueError:
                log.append("ia caught")  # IA_CAUGHT
    finally:
        log.append("ia finally")  # IA_FIN


async def outer_agen(log):
    inner = inner_agen(log)
    try:
        async for x in inner:  # OA_FOR
            try:
                yield x  # OA_YIELD
            except ValueError as e:
                await inner.athrow(e)  # OA_ATHROW
            except KeyError:
                await inner.aclose()  # OA_ACLOSE
                yield "closed inner"  # OA_YIELD2
    finally:
        log.append("oa finally")  # OA_FIN


async def agen_scenario(gap, stamps, out):
    log = []
    og = outer_agen(log)
    ops = [lambda: og.__anext__(), lambda: og.asend(None), lambda: og.athrow(ValueError("v")),
           lambda: og.athrow(KeyError("k")), lambda: og.athrow(Interrupt()), lambda: og.__anext__()]
    og2 = outer_agen(log)
    ops += [lambda: og2.__anext__(), lambda: og2.athrow(ValueError("w")), og2.aclose, lambda: og2.__anext__()]
    for k, op in enumerate(ops):
        if k and gap:
            await asyncio.sleep(gap)
        before = perf_counter()
        try:
            out.append(("ok", await op()))
        except StopAsyncIteration:
            out.append("stop")
        except (ValueError, KeyError, RuntimeError, Interrupt) as e:
            out.append(("raised", type(e).__name__))
        stamps.append((before, perf_counter()))
    if gap:
        await asyncio.sleep(gap)
    out.append(log)


def test_athrow_and_aclose_through_nested_async_generators(prof):
    funcs = [inner_agen, outer_agen]
    plain = []
    asyncio.run(agen_scenario(0, [], plain))
    truth = settrace_hits(funcs, lambda: asyncio.run(agen_scenario(0, [], [])))
    stamps, out = [], []
    result = profile_calls(funcs, lambda: asyncio.run(agen_scenario(0.004, stamps, out)), prof)
    check_invariants(result)
    assert out == plain
    assert hits_only(result) == truth
    # outer_agen is suspended at a yield after ops 0-3 and 6-7 (the results
    # in ``out`` say which ops returned a value), finished after the others.
    suspended_after = [out[k][0] == "ok" and k not in (4, 5, 8, 9) for k in range(len(stamps))]
    lo = sum(stamps[k + 1][0] - stamps[k][1] for k in range(len(stamps) - 1) if suspended_after[k])
    hi = sum(stamps[k + 1][1] - stamps[k][0] for k in range(len(stamps) - 1) if suspended_after[k])
    between_ns(sum(r[2] for r in func_lines(result, outer_agen).values()), lo, hi, "outer async generator await")
    # The inner one is suspended at least as long as the outer one waits at
    # its own yield with the inner one still open, and never after the end.
    ia = sum(r[2] for r in func_lines(result, inner_agen).values())
    assert ia <= (stamps[-1][1] - stamps[0][0]) * NS
    assert ia >= (stamps[3][0] - stamps[0][1]) * NS - EPS_NS
    no_leak(prof)


# A throw() that the awaitee swallows by returning: CPython 3.11 resumes the
# delegating frame past its RESUME instruction, with no 'call' event (3.11's
# wait_for does this when its task is cancelled after the inner future is
# done). The frame must still resume, once: no second record for it.

def swallowing_gen():
    try:
        yield "s"  # SW_G_YIELD
    except ValueError:
        return "swallowed"  # SW_G_RETURN


def resumed_unseen_gen():
    x = yield from swallowing_gen()  # RU_YIELD_FROM
    spin(0.004)  # RU_SPIN: after the throw, active
    yield x  # RU_YIELD


def returned_unseen_gen():
    return (yield from swallowing_gen())  # RN_RETURN: no line event after the throw


async def swallowing_coro():
    try:
        await Suspend()  # SW_C_AWAIT
    except ValueError:
        return "swallowed"  # SW_C_RETURN


async def resumed_unseen_coro():
    x = await swallowing_coro()  # RC_AWAIT
    spin(0.004)  # RC_SPIN
    await Suspend()  # RC_AWAIT2
    return x


def unseen_resume_scenario(gap, spans, keep):
    """Each object: started, suspended ``gap`` s, thrown into, run to its
    end; then kept alive (finished) while the run goes on: nothing of it may
    grow."""
    for func in (resumed_unseen_gen, returned_unseen_gen, resumed_unseen_coro):
        obj = func()
        a = perf_counter()
        obj.send(None)
        if gap:
            time.sleep(gap)
        try:
            obj.throw(ValueError("swallowed"))
            obj.send(None)  # runs to its end (close() would send no event on 3.13)
        except StopIteration:
            pass
        spans.append((func, perf_counter() - a))
        keep.append(obj)
    if gap:
        time.sleep(gap)


def test_throw_swallowed_by_the_awaitee_resumes_the_frame(prof):
    funcs = [swallowing_gen, resumed_unseen_gen, returned_unseen_gen, swallowing_coro, resumed_unseen_coro]
    truth = settrace_hits(funcs, lambda: unseen_resume_scenario(0, [], []))
    spans, keep = [], []
    result = profile_calls(funcs, lambda: unseen_resume_scenario(0.004, spans, keep), prof)
    check_invariants(result)
    assert hits_only(result) == truth
    for func, life in spans:
        lower = 0.004 + (0.004 if func is not returned_unseen_gen else 0.0)
        between_ns(wall_of(result, func), lower, life, f"{func.__name__}'s time + await")
    keep.clear()
    no_leak(prof)


# == 3. recursion 1000 deep ========================================================

def rec_func(n, st):
    if n == 0:  # RF_TEST
        st.append(spin(0.002))  # RF_BOTTOM
        return 0
    return rec_func(n - 1, st) + 1  # RF_CALL


async def rec_coro(n, d, st):
    if n == 0:  # RC_TEST
        a = perf_counter(); await asyncio.sleep(d); b = perf_counter()  # RC_NAP
        st.append((a, b))
        return 0
    return await rec_coro(n - 1, d, st) + 1  # RC_CALL


@pytest.fixture
def deep_stack():
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, 6000))
    yield
    sys.setrecursionlimit(old)


def test_recursive_function_1000_deep(prof, deep_stack):
    truth = settrace_hits([rec_func], lambda: rec_func(1000, []))
    st, walls = [], []

    def body():
        for _ in range(3):
            t0 = perf_counter()
            rec_func(1000, st)
            walls.append(perf_counter() - t0)

    result = profile_calls([rec_func], body, prof)
    check_invariants(result)
    assert hits_only(result) == {k: 3 * v for k, v in truth.items()}
    hits, t, aw, mx = rec(result, rec_func, "RF_CALL")
    assert hits == 3000 and aw == 0
    # Each outermost RF_CALL line spans its whole recursion: max is one of
    # them; the bottom's spin is inside every one of the 1000 frames' lines.
    assert_time_between(mx, max(st), max(walls), "outermost recursive line")
    assert t >= 1000 * sum(st) * NS - EPS_NS
    assert_time_between(rec(result, rec_func, "RF_BOTTOM")[1], sum(st), sum(walls), "bottom line")
    no_leak(prof)


def test_recursive_coroutine_1000_deep(prof, deep_stack):
    d = 0.02
    truth = settrace_hits([rec_coro], lambda: asyncio.run(rec_coro(1000, 0, [])))
    st, walls = [], []

    def body():
        t0 = perf_counter()
        asyncio.run(rec_coro(1000, d, st))
        walls.append(perf_counter() - t0)

    result = profile_calls([rec_coro], body, prof)
    check_invariants(result)
    assert hits_only(result) == truth
    (a, b), = st
    hits, t, aw, mx = rec(result, rec_coro, "RC_CALL")
    assert hits == 1000
    # Each of the 1000 frames is suspended inside the bottom's [a, b], and
    # for at least d minus its own line's activity: per frame, not per code.
    assert_time_between(aw, 1000 * d - t / 1e9, 1000 * (b - a), "1000 frames' awaits")
    n_hits, n_t, n_aw, _ = rec(result, rec_coro, "RC_NAP")
    assert_time_between(n_aw, d - n_t / 1e9, b - a, "bottom await")
    assert t + aw <= 1000 * walls[0] * NS
    tasks = prof.snapshot()["tasks"]
    assert len(tasks) == 1
    assert_time_between(tasks[0]["time"] + tasks[0]["await"], b - a, walls[0], "the one task's wall")
    no_leak(prof)


# == 4. eight threads at once ===================================================

def thread_work(n, d, st):
    total = 0  # TH_FIRST
    for i in range(n):  # TH_FOR
        total += thread_gen_sum(i % 7)
    a = perf_counter(); time.sleep(d); b = perf_counter()  # TH_SLEEP
    st.append((a, b))
    return total


def thread_gen(k):
    for i in range(k):  # TG_FOR
        yield i  # TG_YIELD


def thread_gen_sum(k):
    return sum(thread_gen(k))  # TGS_SUM


def test_eight_threads_with_snapshots_running_alongside(prof):
    """Eight threads (started after enable, as 3.11 needs) run profiled
    functions and generators while the main thread takes snapshots."""
    n, d = 400, 0.02
    funcs = [thread_work, thread_gen, thread_gen_sum]
    single = settrace_hits(funcs, lambda: thread_work(n, 0, []))
    st = []
    snaps = []
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)

    def body():
        threads = [threading.Thread(target=thread_work, args=(n, d, st)) for _ in range(N_THREADS)]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            snaps.append(table(prof))
            time.sleep(0.001)
        for t in threads:
            t.join()

    try:
        result = profile_calls(funcs, body, prof)
    finally:
        sys.setswitchinterval(old)
    check_invariants(result)
    assert hits_only(result) == {k: v * N_THREADS for k, v in single.items()}
    # Counters only grow from one snapshot to the next.
    for s0, s1 in zip(snaps, snaps[1:] + [result]):
        for key, r0 in s0.items():
            r1 = s1.get(key, (0, 0, 0, 0))
            assert r1[0] >= r0[0] and r1[1] >= r0[1] and r1[2] >= r0[2], (key, r0, r1)
    spans = [b - a for a, b in st]
    t_sleep = rec(result, thread_work, "TH_SLEEP")[1]
    assert_time_between(t_sleep, sum(spans), sum(spans), "sleep line summed over threads",
                        slack_hi_s=0.005 * N_THREADS)
    # A generator suspended in one thread is never confused with another's.
    yield_key = (name_of(thread_gen), marker_line(thread_gen, "TG_YIELD"))
    assert rec(result, thread_gen, "TG_YIELD")[0] == single[yield_key] * N_THREADS
    no_leak(prof)


# == 5. switching profiling on and off with live frames ==============================

def toggled_gen(k):
    a = yield k  # TGN_YIELD
    yield a  # TGN_YIELD2


async def toggled_coro():
    await Suspend()  # TC_AWAIT


def test_toggle_1000_times_with_many_suspended_frames(prof):
    """Suspended generators and coroutines stay parked across 1000
    disable()/enable() pairs; resumed after the last enable(), each one's
    await is its true suspension."""
    register(prof, [toggled_gen, toggled_coro])
    stamps = []
    prof.enable()
    try:
        gens = [toggled_gen(k) for k in range(200)]
        coros = [toggled_coro() for _ in range(200)]
        stamps.append(perf_counter())
        for g in gens:
            next(g)
        for c in coros:
            c.send(None)
        stamps.append(perf_counter())
        for _ in range(1000):
            prof.disable()
            prof.enable()
        time.sleep(0.01)
        stamps.append(perf_counter())
        for g in gens:
            g.send(1)
        for c in coros:
            try:
                c.send(None)
            except StopIteration:
                pass
        stamps.append(perf_counter())
        for g in gens:
            g.close()
        del gens, coros
    finally:
        prof.disable()
    result = table(prof)
    check_invariants(result)
    y = rec(result, toggled_gen, "TGN_YIELD")
    assert y[0] == 200
    between_ns(y[2], 200 * (stamps[2] - stamps[1]), 200 * (stamps[3] - stamps[0]), "await across toggles")
    c = rec(result, toggled_coro, "TC_AWAIT")
    assert c[0] == 200
    between_ns(c[2], 200 * (stamps[2] - stamps[1]), 200 * (stamps[3] - stamps[0]), "coroutine await across toggles")
    no_leak(prof)


def counted_work(n, st):
    a = perf_counter()  # CW_FIRST
    total = 0
    for i in range(n):  # CW_FOR
        total += i % 3
    time.sleep(0.001)  # CW_SLEEP
    st.append((a, perf_counter()))  # CW_LAST
    return total


async def counted_coro(st):
    a = perf_counter()  # CC_FIRST
    await asyncio.sleep(0.002)  # CC_SLEEP
    st.append((a, perf_counter()))  # CC_LAST


def test_enable_by_count_from_eight_threads():
    """Decorated functions switch the hook on and off by count from eight
    threads, so it is switched many times while other threads' frames are
    live. Each call holds a count while it runs: on 3.12+ every call is
    counted in full. (3.11: a thread's running frames stop being timed when
    another thread's disable_by_count() switches recording off: bounded by
    the truth.)"""
    from lineprof import LineProfiler

    n = 300
    funcs = [counted_work, counted_coro]
    single = settrace_hits(funcs, lambda: (counted_work(n, []), asyncio.run(counted_coro([]))))
    lp = LineProfiler()
    work = lp(counted_work)
    coro = lp(counted_coro)
    st = []
    go = threading.Event()

    def runner():
        go.wait()
        for _ in range(10):
            work(n, st)
            asyncio.run(coro(st))

    threads = [threading.Thread(target=runner) for _ in range(N_THREADS)]
    for t in threads:
        t.start()
    go.set()
    for t in threads:
        t.join()
    assert lp.enable_count == 0 and not lp.enabled
    result = table(lp._c)
    check_invariants(result)
    expected = {k: v * 10 * N_THREADS for k, v in single.items()}
    got = hits_only(result)
    if MONITORING:
        assert got == expected
    else:
        assert all(got[k] <= expected.get(k, 0) for k in got), (got, expected)
    # Time: never more than the calls' own spans, give or take the hook's own
    # work inside each span (after the first line's clock read, the last
    # line's event and the return's): a few microseconds on 3.12+; the
    # legacy hook's events cost about 5 us each on 3.11, 10 under ASan.
    span_sum = sum(b - a for a, b in st)
    per_call = EPS_NS if MONITORING else 50_000
    assert wall_of(result, counted_work) + wall_of(result, counted_coro) <= span_sum * NS + per_call * len(st)
    assert lp._c._parked == 0 and lp.error is None


def spinning_thread(stop, st, ready):
    n = 0  # ST_FIRST
    a = perf_counter()
    ready.append(a)
    while not stop.is_set():  # ST_LOOP
        n += 1  # ST_BODY
    st.append((a, perf_counter()))  # ST_LAST
    return n


def test_toggle_while_frames_run_in_other_threads(prof):
    """The main thread toggles profiling while 8 threads run profiled
    loops: counts never exceed CPython's, and no frame is ever timed for
    longer than it ran."""
    stop = threading.Event()
    st = []
    register(prof, [spinning_thread])
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)  # the main thread gets the GIL back quickly
    prof.enable()
    try:
        ready = []
        threads = [threading.Thread(target=spinning_thread, args=(stop, st, ready)) for _ in range(N_THREADS)]
        for t in threads:
            t.start()
        while len(ready) < N_THREADS:  # every thread is in its loop, first line counted
            time.sleep(0.001)
        for _ in range(200):
            prof.disable()
            time.sleep(0.0002)
            prof.enable()
            time.sleep(0.0002)
        stop.set()
        for t in threads:
            t.join()
    finally:
        prof.disable()
        sys.setswitchinterval(old)
    result = table(prof)
    check_invariants(result)
    spans = [b - a for a, b in st]
    assert wall_of(result, spinning_thread) <= sum(spans) * NS + EPS_NS * N_THREADS
    loop = rec(result, spinning_thread, "ST_LOOP")[0]
    body = rec(result, spinning_thread, "ST_BODY")[0]
    # Every counted body line follows a counted loop test, except where a
    # switch fell in between (one per toggle per thread at most).
    assert abs(loop - body) <= 400 * N_THREADS + N_THREADS
    assert rec(result, spinning_thread, "ST_FIRST")[0] == N_THREADS
    no_leak(prof)


# == 6. suspended frames garbage-collected =========================================

def gc_gen(box, guarded):
    box.append(perf_counter())  # GG_FIRST
    if guarded:
        try:
            yield box  # GG_YIELD_TRY
        finally:
            box.append("fin")
    else:
        yield box  # GG_YIELD_BARE


async def gc_coro(box):
    box.append(perf_counter())  # GC_FIRST
    await Suspend()  # GC_AWAIT


async def gc_agen(box):
    box.append(perf_counter())  # GA_FIRST
    yield box  # GA_YIELD


async def gc_task_victim(fut, box):
    box.append(perf_counter())  # GT_FIRST
    await fut  # GT_AWAIT


def collected_frames_body(st, gap):
    """Suspend generators, coroutines and async generators in reference
    cycles and tasks of a closed loop; drop them; collect. Stamps go to st."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        collect()
        objs = []
        st["t0"] = perf_counter()
        for i in range(150):
            box = []
            g = gc_gen(box, i % 2 == 0)
            box.append(g)
            next(g)
            objs.append(g)
            cbox = []
            c = gc_coro(cbox)
            cbox.append(c)
            c.send(None)
            objs.append(c)
            abox = []
            ag = gc_agen(abox)
            abox.append(ag)
            try:
                ag.__anext__().send(None)
            except StopIteration:
                pass
            objs.append(ag)
        # Tasks of a loop that is closed with them pending.
        loop = asyncio.new_event_loop()
        loop.set_exception_handler(lambda loop, ctx: None)  # "Task was destroyed but it is pending"
        for i in range(50):
            fut = loop.create_future()
            tbox = [fut]
            loop.create_task(gc_task_victim(fut, tbox))
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()
        st["t1"] = perf_counter()
        del objs, g, c, ag, box, cbox, abox, fut, tbox, loop
        time.sleep(gap)
        st["before_gc"] = perf_counter()
        collect()
        st["after_gc"] = perf_counter()
        time.sleep(gap)  # destroyed: must not count
    finally:
        if was_enabled:
            gc.enable()


def test_collected_suspended_frames_stop_awaiting(prof):
    """Hundreds of generators, coroutines and async generators suspended in
    reference cycles, plus tasks of a closed loop: their await ends when the
    garbage collector destroys them, not later. (Hits follow CPython: 3.13
    reports a line event when it closes some of them.)"""
    funcs = [gc_gen, gc_coro, gc_agen, gc_task_victim]
    truth = settrace_hits(funcs, lambda: collected_frames_body({}, 0))
    st = {}
    result = profile_calls(funcs, lambda: collected_frames_body(st, 0.03), prof)
    check_invariants(result)
    assert hits_only(result) == truth
    # Every frame was suspended from before t1 until the collection.
    for func, marker, k in ((gc_gen, "GG_YIELD_TRY", 75), (gc_gen, "GG_YIELD_BARE", 75),
                            (gc_coro, "GC_AWAIT", 150), (gc_agen, "GA_YIELD", 150)):
        hits, _, aw, _ = rec(result, func, marker)
        assert hits >= k
        between_ns(aw, k * (st["before_gc"] - st["t1"]), k * (st["after_gc"] - st["t0"]),
                   f"collected {func.__name__} ({marker})")
    hits, _, aw, _ = rec(result, gc_task_victim, "GT_AWAIT")
    assert hits >= 50
    between_ns(aw, 0, 50 * (st["after_gc"] - st["t0"]), "tasks of a closed loop")
    no_leak(prof)


class Node:
    def __init__(self, other=None):
        self.other = other
        self.gen = None

    def __del__(self):
        # Runs during a collection: resumes another profiled generator.
        g = self.gen
        if g is not None:
            for _ in g:  # ND_RESUME
                pass


def del_gen(n):
    for i in range(n):  # DG_FOR
        yield i  # DG_YIELD


def test_collection_that_runs_profiled_code(prof):
    """Finalizers run by the collector start and resume profiled frames
    while other profiled frames are being destroyed."""
    funcs = [del_gen, Node.__del__]

    def body():
        was = gc.isenabled()
        gc.disable()
        try:
            nodes = []
            for i in range(300):
                a = Node()
                b = Node(a)
                a.other = b
                a.gen = del_gen(3)
                next(a.gen)
                b.gen = del_gen(2)
                nodes.append(a)
            del nodes, a, b
            collect()
        finally:
            if was:
                gc.enable()

    truth = settrace_hits(funcs, body)
    result = profile_calls(funcs, body, prof)
    check_invariants(result)
    assert hits_only(result) == truth
    no_leak(prof)


# == 7. exceptions everywhere ======================================================

class Boom(Exception):
    pass


class Fragile:
    def __init__(self, log):
        self.log = log

    def __del__(self):
        self.log.append("del")  # FR_DEL
        raise Boom("in __del__")  # FR_RAISE


def raiser(n, log):
    if n == 0:  # RA_TEST
        Fragile(log)  # RA_FRAGILE
        raise Boom("bottom")  # RA_RAISE
    try:
        raiser(n - 1, log)  # RA_CALL
    finally:
        if n % 3 == 0:
            raise KeyError(n)  # RA_FINALLY_RAISE


def interrupted(log):
    try:
        raise Interrupt("like Ctrl-C")  # IN_RAISE
    finally:
        log.append(sys.exc_info()[0].__name__)  # IN_FIN


async def await_raiser(fut, log):
    try:
        await fut  # AR_AWAIT
    except Boom as e:
        log.append(repr(e.__context__))  # AR_CAUGHT
        raise ValueError("after await") from e  # AR_RERAISE


def describe(exc):
    out = []
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        frames = [(f.name, f.lineno) for f in traceback.extract_tb(exc.__traceback__)]
        out.append((type(exc).__name__, str(exc), frames))
        exc = exc.__cause__ or exc.__context__
    return out


def exceptions_everywhere():
    log, out = [], []
    unraisable = []
    old_hook = sys.unraisablehook
    sys.unraisablehook = lambda u: unraisable.append((type(u.exc_value).__name__, str(u.exc_value)))
    try:
        for n in (0, 1, 5, 30):
            try:
                raiser(n, log)
            except (Boom, KeyError) as e:
                out.append(describe(e))
            out.append(sys.exc_info()[0])
        for _ in range(3):
            try:
                interrupted(log)
            except Interrupt as e:
                out.append(describe(e))

        async def main():
            loop = asyncio.get_running_loop()
            for i in range(20):
                fut = loop.create_future()
                t = asyncio.ensure_future(await_raiser(fut, log))
                await asyncio.sleep(0)
                fut.set_exception(Boom(f"fut {i}"))
                try:
                    await t
                except ValueError as e:
                    out.append(describe(e))
        asyncio.run(main())
        gc.collect()
    finally:
        sys.unraisablehook = old_hook
    return log, out, unraisable, sys.exc_info()


def test_exceptions_everywhere_unchanged_and_counted(prof):
    funcs = [raiser, interrupted, await_raiser, Fragile.__del__]
    plain = exceptions_everywhere()
    truth = settrace_hits(funcs, exceptions_everywhere)
    got = []
    result = profile_calls(funcs, lambda: got.append(exceptions_everywhere()), prof)
    check_invariants(result)
    assert got[0] == plain
    assert plain[2] and all(u == ("Boom", "in __del__") for u in plain[2])
    assert plain[3] == (None, None, None)
    assert hits_only(result) == truth
    no_leak(prof)


async def handled_then_profiled(log):
    log.append(repr(sys.exc_info()[1]))  # HP_FIRST
    await asyncio.sleep(0)  # HP_AWAIT
    log.append(repr(sys.exc_info()[1]))  # HP_AFTER
    try:
        raise KeyError("inner")  # HP_RAISE
    except KeyError as e:
        log.append(repr(e.__context__))  # HP_CONTEXT


def gen_in_handler(log):
    log.append(repr(sys.exc_info()[1]))  # GH_FIRST
    yield  # GH_YIELD
    log.append(repr(sys.exc_info()[1]))  # GH_AFTER


class GrumpyTask(asyncio.Task):
    """A task whose introspection raises: the hook must swallow it."""

    def get_name(self):
        raise RuntimeError("get_name failed")

    def get_coro(self):
        raise Interrupt("get_coro interrupted")


def exc_state_scenario():
    log = []

    async def main():
        asyncio.get_running_loop().set_task_factory(lambda loop, coro, **kw: GrumpyTask(coro, loop=loop, **kw))
        try:
            raise ValueError("being handled")
        except ValueError:
            await handled_then_profiled(log)
            t = asyncio.ensure_future(handled_then_profiled(log))
            await t
            log.append(repr(sys.exc_info()[1]))
        log.append(repr(sys.exc_info()[1]))

    try:
        raise OSError("outer")
    except OSError:
        g = gen_in_handler(log)
        next(g)
    try:
        raise LookupError("other")
    except LookupError:
        next(g, None)
    asyncio.run(main())
    log.append(sys.exc_info())
    return log


def test_exception_state_never_touched_by_the_hook(prof):
    """sys.exc_info() and __context__ seen by profiled code are what they are
    unprofiled, even when the hook's own calls into asyncio fail."""
    funcs = [handled_then_profiled, gen_in_handler]
    plain = exc_state_scenario()
    truth = settrace_hits(funcs, exc_state_scenario)
    got = []
    result = profile_calls(funcs, lambda: got.append(exc_state_scenario()), prof)
    assert got[0] == plain
    assert plain[-1] == (None, None, None)
    assert "ValueError('being handled')" in plain
    assert hits_only(result) == truth
    check_invariants(result)
    no_leak(prof)


def test_failing_current_task_is_swallowed(prof, monkeypatch):
    """asyncio.current_task replaced by one that raises (the hook calls it
    when a coroutine starts): user code sees nothing, hits stay exact."""
    def broken(loop=None):
        raise Interrupt("current_task broke")

    monkeypatch.setattr(asyncio, "current_task", broken)
    funcs = [handled_then_profiled]
    truth = settrace_hits(funcs, lambda: asyncio.run(handled_then_profiled([])))
    log = []
    result = profile_calls(funcs, lambda: asyncio.run(handled_then_profiled(log)), prof)
    assert hits_only(result) == truth
    assert log == ["None", "None", "None"]
    assert sys.exc_info() == (None, None, None)
    no_leak(prof)


# == 8. fork while profiling =========================================================

def forked_gen():
    yield 1  # FG_YIELD
    yield 2  # FG_YIELD2


def child_only(n):
    total = 0  # CO_FIRST
    for i in range(n):  # CO_FOR
        total += i
    return total


def busy_thread_fn(stop, st):
    st.append(perf_counter())  # BT_FIRST
    while not stop.is_set():  # BT_LOOP
        time.sleep(0.001)  # BT_SLEEP
    st.append(perf_counter())  # BT_LAST


def forking(path, st):
    st["pre"] = perf_counter()  # FK_PRE
    pid = os.fork()  # FK_FORK
    st["post"] = perf_counter()  # FK_POST
    return pid


def _child(prof, path, gens, st):
    """In the child: resume a parked generator, run new profiled code, write
    the profile, report stamps through a file. Never returns."""
    code = 1
    try:
        t_resume0 = perf_counter()
        vals = [next(g) for g in gens]
        t_resume1 = perf_counter()
        child_only(50)
        time.sleep(0.03)
        t_dump0 = perf_counter()
        prof.dump(path + ".lprof")
        with open(path + ".txt", "w") as f:
            f.write(repr({"vals": vals, "resume": (t_resume0, t_resume1), "dump": t_dump0,
                          "error": prof.error, "enabled": prof.enabled}))
        code = 0
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(code)


def flat(stats):
    out = {}
    for fd in stats["functions"]:
        for lineno, hits, t, aw, mx in fd["lines"]:
            out[(fd["name"], lineno)] = (hits, t, aw, mx)
    return out


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_with_suspended_frames(prof, tmp_path):
    funcs = [forked_gen, child_only, forking]
    register(prof, funcs)
    path = str(tmp_path / "child")
    st = {}
    prof.enable()
    try:
        gens = [forked_gen() for _ in range(20)]
        t_susp0 = perf_counter()
        for g in gens:
            next(g)
        t_susp1 = perf_counter()
        time.sleep(0.01)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads
            pid = forking(path, st)
        if pid == 0:
            _child(prof, path, gens, st)
        t_parent0 = perf_counter()
        _, status = os.waitpid(pid, 0)
        time.sleep(0.01)
        t_resume0 = perf_counter()
        for g in gens:
            next(g)
        t_resume1 = perf_counter()
        for g in gens:
            list(g)
        del gens, g
    finally:
        prof.disable()
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
    parent = table(prof)
    check_invariants(parent)
    # The parent: its own generators' suspension, nothing of the child's.
    y = rec(parent, forked_gen, "FG_YIELD")
    assert y[0] == 20
    between_ns(y[2], 20 * (t_resume0 - t_susp1), 20 * (t_resume1 - t_susp0), "parent's await across fork")
    assert rec(parent, child_only, "CO_FIRST") == (0, 0, 0, 0)
    assert rec(parent, forking, "FK_POST")[0] == 1
    # The child: kept profiling, wrote its own profile.
    with open(path + ".txt") as f:
        info = eval(f.read())  # noqa: S307 - written by the child above
    assert info["vals"] == [2] * 20 and info["error"] is None and info["enabled"]
    child = flat(_lineprof.read_file(path + ".lprof"))
    check_invariants(child)
    assert rec(child, child_only, "CO_FOR")[0] == 51
    assert rec(child, forking, "FK_POST")[0] == 1
    c = rec(child, forked_gen, "FG_YIELD")
    assert c[0] == 20
    r0, r1 = info["resume"]
    between_ns(c[2], 20 * (r0 - t_susp1), 20 * (r1 - t_susp0), "child's await of generators parked before fork")
    no_leak(prof)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_does_not_time_other_threads_frames_in_the_child(prof, tmp_path):
    """A thread runs a profiled line when another thread forks. In the child
    that thread does not exist: its line must not go on accruing time."""
    register(prof, [busy_thread_fn])
    path = str(tmp_path / "ghost")
    stop = threading.Event()
    st = []
    prof.enable()
    try:
        th = threading.Thread(target=busy_thread_fn, args=(stop, st))
        th.start()
        time.sleep(0.02)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            t_fork0 = perf_counter()
            pid = os.fork()
        if pid == 0:
            code = 1
            try:
                time.sleep(0.1)  # the ghost frame's thread is gone
                prof.dump(path + ".lprof")
                code = 0
            finally:
                os._exit(code)
        t_fork1 = perf_counter()
        os.waitpid(pid, 0)
        stop.set()
        th.join()
    finally:
        prof.disable()
    child = flat(_lineprof.read_file(path + ".lprof"))
    wall = sum(r[1] + r[2] for (n, _), r in child.items() if n == name_of(busy_thread_fn))
    # In the child, the thread's frame lived from its first line until the fork.
    assert wall <= (t_fork1 - st[0]) * NS + EPS_NS, (
        f"ghost thread's lines hold {wall / 1e6:.1f} ms, but it ran {(t_fork1 - st[0]) * 1e3:.1f} ms before the fork")


# == 9. known bugs, reduced ===========================================================

GC_DURING_SNAPSHOT = r"""
import asyncio, gc, re, sys
import lineprof._lineprof as L

async def rp_coro():
    await asyncio.sleep(0)

p = L.Profiler()
c = rp_coro.__code__
p.add_code(c, L.KIND_COROUTINE, c.co_filename, "rp_coro", c.co_firstlineno, c.co_firstlineno + 1)
p.enable()
loop = asyncio.new_event_loop()

async def batch(n):
    await asyncio.gather(*(rp_coro() for _ in range(n)))

loop.run_until_complete(batch(1500))   # 1500 tasks die: 1000 kept whole, the rest folded
tasks = [loop.create_task(rp_coro()) for _ in range(500)]
loop.run_until_complete(asyncio.gather(*tasks))
gc.collect()
gc.disable()
boxes = []
for t in tasks:                        # each task now reachable only from a cycle
    b = [t]
    b.append(b)
    boxes.append(b)
del tasks, t, b, boxes
loop.close()
p.disable()
gc.enable()
gc.set_threshold(1)                    # collect at snapshot()'s first allocation
snap = p.snapshot()
gc.set_threshold(700)
bad = [t["name"] for t in snap["tasks"] if not re.fullmatch(r"Task-[0-9]+|rp_coro", t["name"])]
total = sum(t["folded"] or 1 for t in snap["tasks"])
print(len(snap["tasks"]), total, bad[:3])
sys.exit(1 if bad else 0)
"""


def test_garbage_collection_during_snapshot(tmp_path):
    """On 3.11 the cyclic GC runs inside any allocation, including the ones
    snapshot() makes while it walks the task records; tasks it frees then
    are retired (and folded, freed) under the walk. Run in a child process:
    the use-after-free may crash."""
    import subprocess

    script = tmp_path / "gc_snapshot.py"
    script.write_text(GC_DURING_SNAPSHOT)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                          cwd=str(tmp_path), env=env)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    n_records, n_tasks, bad = proc.stdout.split(" ", 2)
    assert int(n_tasks) == 2000 and bad.strip() == "[]"
