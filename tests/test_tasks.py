"""Event-loop task attribution, against the programs' own perf_counter() clocks.

Every active and await interval of a profiled frame that runs inside an
asyncio task is also counted for that task (``snapshot()["tasks"]``). The
workloads below stamp ``time.perf_counter()`` (the profiler's clock,
CLOCK_MONOTONIC) at known points and record the truth about tasks with
``asyncio.current_task()``; the tests compare the task records with them:

* **Lower bounds are exact.** A busy-wait measured inside a task's profiled
  frame is active time of that task; a span between a task's first and last
  stamps lies inside the task's profiled span, so ``time + await`` covers it;
  ``asyncio.sleep(d)`` keeps the frame suspended for at least ``d`` minus the
  active time of its own line (see :func:`slept_floor`).
* **Upper bounds are exact where a sandwich exists** (a suspension inside
  ``a = perf_counter(); await ...; b = perf_counter()`` is at most ``b - a``;
  a task's records lie between stamps its creator takes around it) and have
  :data:`SLACK` otherwise (10 ms for the lines around the busy-waits: on a
  noisy shared 2-core machine a preemption there adds several ms). Where a
  bug would add less than that (a double count), the exact bounds catch it.
* ``first``/``last`` are ns since the Profiler was created: the creation is
  itself sandwiched (``Run.c0``/``Run.c1``), so stamps translate exactly.

Every check can fail: an attribution to the wrong task, a double count of
nested frames, a suspension left open after a cancellation or a timeout,
would each break an exact bound.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import subprocess
import sys
import threading
from time import perf_counter
from typing import Any, Callable, Dict, List

import pytest

from conftest import EPS_NS, _lineprof, fmt, marker_line, ns, register, spin

try:
    import uvloop
except ImportError:  # pragma: no cover - the venvs have it
    uvloop = None

#: Upper-bound slack for what no stamp can sandwich: the few lines around
#: the busy-waits, and preemption of the thread while they run (6 ms seen).
#: The workloads that must not leak into another count are larger than it.
SLACK = 0.010

TASK_KEYS = {"id", "name", "coro", "time", "await", "first", "last", "folded"}

from conftest import needs_uvloop, require  # noqa: E402


# -- running a profiled program --------------------------------------------

class Run:
    """One profiled run: the snapshot, and the perf_counter() sandwich
    ``[c0, c1]`` around the creation of the Profiler (the zero of
    ``first``/``last``)."""

    def __init__(self, funcs: List[Any]) -> None:
        self.c0 = perf_counter()
        self.prof = _lineprof.Profiler()
        self.c1 = perf_counter()
        register(self.prof, funcs)
        self.snap: Dict[str, Any] = {}
        self.value: Any = None

    def __call__(self, body: Callable[[], Any], enable: bool = True) -> "Run":
        """Run ``body()`` (with the profiler enabled first, unless ``enable``
        is false: then the body enables it), disable, and take the snapshot."""
        if enable:
            self.prof.enable()
        try:
            self.value = body()
        finally:
            self.prof.disable()
        gc.collect()
        self.snap = self.prof.snapshot()
        assert self.prof.error is None, self.prof.error
        return self

    # -- the records

    @property
    def tasks(self) -> List[Dict[str, Any]]:
        return self.snap["tasks"]

    def task(self, name: str) -> Dict[str, Any]:
        """Return the one individual record named ``name``."""
        found = [t for t in self.tasks if t["name"] == name and t["folded"] == 0]
        assert len(found) == 1, f"{len(found)} task records named {name!r} in {self.tasks}"
        return found[0]

    def names(self) -> Dict[str, str]:
        """Return {name: coro} of the individual records."""
        return {t["name"]: t["coro"] for t in self.tasks if t["folded"] == 0}

    def lines(self, func: Any) -> Dict[int, tuple]:
        """Return {lineno: (hits, time, await, max)} of one profiled function."""
        name = func.__qualname__
        return {ln: (h, t, a, m) for fd in self.snap["functions"] if fd["name"] == name
                for ln, h, t, a, m in fd["lines"]}

    def line(self, func: Any, marker: str) -> tuple:
        return self.lines(func).get(marker_line(func, marker), (0, 0, 0, 0))

    # -- stamps against first/last

    def first_before(self, rec: Dict[str, Any], stamp: float, what: str) -> None:
        """The task was first seen no later than ``stamp``."""
        limit = ns(stamp - self.c0) + EPS_NS
        assert rec["first"] <= limit, f"{what}: first {fmt(rec['first'])} > {fmt(limit)}"

    def first_after(self, rec: Dict[str, Any], stamp: float, what: str) -> None:
        limit = ns(stamp - self.c1) - EPS_NS
        assert rec["first"] >= limit, f"{what}: first {fmt(rec['first'])} < {fmt(limit)}"

    def last_after(self, rec: Dict[str, Any], stamp: float, what: str) -> None:
        """The task was last seen no earlier than ``stamp``."""
        limit = ns(stamp - self.c1) - EPS_NS
        assert rec["last"] >= limit, f"{what}: last {fmt(rec['last'])} < {fmt(limit)}"

    def last_before(self, rec: Dict[str, Any], stamp: float, what: str) -> None:
        limit = ns(stamp - self.c0) + EPS_NS
        assert rec["last"] <= limit, f"{what}: last {fmt(rec['last'])} > {fmt(limit)}"


def check_tasks(tasks: List[Dict[str, Any]], across_threads: float = 0.0) -> None:
    """What holds for every task list: the fields, ids in order of first
    sight, folds shaped as documented, and a task never accumulates more
    time + await than the span between its first and last sight.

    ``across_threads`` (seconds): with tasks on several threads, two first
    seen that close together may be numbered either way (docs/asyncio.md).
    """
    ids = []
    for t in tasks:
        assert set(t) == TASK_KEYS, t
        assert min(t["time"], t["await"], t["first"], t["last"], t["folded"]) >= 0, t
        assert t["first"] <= t["last"], t
        if t["folded"]:
            assert t["id"] == 0 and t["name"] == t["coro"], f"a fold must have id 0 and name = coro: {t}"
        else:
            assert t["id"] >= 1, t
            ids.append((t["id"], t["first"]))
        assert t["time"] + t["await"] <= t["last"] - t["first"] + EPS_NS, (
            f"task {t['name']!r} ({t['coro']}): time {fmt(t['time'])} + await {fmt(t['await'])} "
            f"= {fmt(t['time'] + t['await'])} exceeds the {fmt(t['last'] - t['first'])} "
            f"between its first and last sight")
    ids.sort()
    assert len({i for i, _ in ids}) == len(ids), f"duplicate task ids: {ids}"
    slack = ns(across_threads)
    for (_, a), (_, b) in zip(ids, ids[1:]):
        assert b >= a - slack, f"ids are not in order of first sight: {ids}"


def assert_between(got_ns: int, lo_s: float, hi_s: float, what: str) -> None:
    lo, hi = ns(lo_s) - EPS_NS, ns(hi_s) + EPS_NS
    assert lo <= got_ns <= hi, f"{what}: got {fmt(got_ns)}, expected between {fmt(lo)} and {fmt(hi)}"


def slept_floor(seconds: float, n_sleeps: int, active_ns: int, loop: str = "asyncio") -> float:
    """Lower bound of the suspension of a frame that slept ``seconds`` in all
    (``n_sleeps`` calls to asyncio.sleep) with ``active_ns`` of active time on
    those lines: each timer fires no earlier than its delay after it was
    scheduled, and the frame suspends after scheduling it. uvloop's timers
    count in whole milliseconds of a cached loop clock, so they may fire up to
    ~1 ms early: 1.5 ms is allowed per sleep there."""
    early = 0.0015 * n_sleeps if loop == "uvloop" else 0.0
    return seconds - active_ns / 1e9 - early


def run_on(loop: str, coro_fn: Callable[..., Any], *args: Any) -> Callable[[], Any]:
    """Return a body that runs ``coro_fn(*args)`` on a fresh loop of the given kind."""
    if loop == "asyncio":
        return lambda: asyncio.run(coro_fn(*args))
    assert loop == "uvloop"
    require("uvloop")

    def body() -> Any:
        loop = uvloop.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            return loop.run_until_complete(coro_fn(*args))
        finally:
            asyncio.set_event_loop(None)
            loop.close()
    return body


LOOPS = ["asyncio", "uvloop"]


# -- per-task active and await time ------------------------------------------------

#: name -> steps; ("spin", s) busy-waits s seconds, ("sleep", s) awaits asyncio.sleep(s).
PLANS = {
    "alpha": [("spin", 0.005), ("sleep", 0.010), ("spin", 0.010)],
    "beta": [("sleep", 0.005), ("spin", 0.020), ("sleep", 0.015)],
    "gamma": [("spin", 0.015), ("sleep", 0.020), ("spin", 0.005), ("sleep", 0.005)],
}


async def planned(plan, log):
    first = perf_counter()  # P_FIRST
    busy = slept = naps = 0.0
    n = 0
    for kind, d in plan:
        if kind == "spin":
            busy += spin(d)
        else:
            a = perf_counter(); await asyncio.sleep(d); b = perf_counter()  # P_NAP
            slept += d
            naps += b - a
            n += 1
    me = asyncio.current_task()
    log[me.get_name()] = dict(first=first, busy=busy, slept=slept, naps=naps, n=n,
                              loop=type(asyncio.get_running_loop()).__module__,
                              last=perf_counter())  # P_LAST


async def run_plans(plans, log, outer):
    """Not profiled: starts one task per plan, stamping around each task."""
    tasks = []
    for name, plan in plans.items():
        start = perf_counter()
        t = asyncio.create_task(planned(plan, log), name=name)
        t.add_done_callback(lambda _t, name=name, start=start:
                            outer.__setitem__(name, (start, perf_counter())))
        tasks.append(t)
    await asyncio.gather(*tasks)
    await asyncio.sleep(0)  # let the done callbacks run


def run_plans_profiled(loop: str) -> tuple:
    log: Dict[str, Any] = {}
    outer: Dict[str, Any] = {}
    r = Run([planned])(run_on(loop, run_plans, PLANS, log, outer))
    return r, log, outer


def check_plans(r: Run, log: Dict[str, Any], outer: Dict[str, Any], loop: str) -> None:
    # Exactly the three tasks, each named as created; the driver (not
    # profiled, no profiled callee) was never seen.
    assert r.names() == {name: "planned" for name in PLANS}
    assert all(t["folded"] == 0 for t in r.tasks)
    for name, lg in log.items():
        t = r.task(name)
        assert lg["loop"].startswith(loop), lg["loop"]
        # Active: the busy-waits ran in the task's frame; the rest is a few
        # loop lines.
        assert_between(t["time"], lg["busy"], lg["busy"] + SLACK, f"{name}: task time")
        # Await: every suspension is inside one of the naps; together they
        # last at least the sleeps.
        idle_active = t["time"] - ns(lg["busy"])
        assert_between(t["await"], slept_floor(lg["slept"], lg["n"], idle_active, loop),
                       lg["naps"], f"{name}: task await")
        # Wall: the task's frame ran from before its first stamp to after its
        # last, and lies inside its creator's stamps.
        start, done = outer[name]
        life = lg["last"] - lg["first"]
        assert_between(t["time"] + t["await"], life, life + SLACK, f"{name}: time + await vs its lifetime")
        assert_between(t["time"] + t["await"], life, done - start + (r.c1 - r.c0),
                       f"{name}: time + await vs its creator's stamps")
        r.first_before(t, lg["first"], name)
        r.first_after(t, start, name)
        r.last_after(t, lg["last"], name)
        r.last_before(t, done, name)


@pytest.mark.parametrize("loop", LOOPS)
def test_per_task_active_and_await(loop):
    r, log, outer = run_plans_profiled(loop)
    check_plans(r, log, outer, loop)
    # The task totals are those of the one outermost frame per task.
    lines = r.lines(planned)
    assert sum(a for _, _, a, _ in lines.values()) == sum(t["await"] for t in r.tasks)
    assert sum(tm for _, tm, _, _ in lines.values()) <= sum(t["time"] for t in r.tasks)
    check_tasks(r.tasks)


@needs_uvloop
def test_uvloop_matches_asyncio():
    """The same program on asyncio's loop and on uvloop: the same tasks,
    each within its own truth, and totals that agree within the slack."""
    runs = {loop: run_plans_profiled(loop) for loop in ("asyncio", "uvloop")}
    for loop, (r, log, outer) in runs.items():
        check_plans(r, log, outer, loop)
    (ra, la, _), (ru, _, _) = runs["asyncio"], runs["uvloop"]
    assert ra.names() == ru.names() == {name: "planned" for name in PLANS}
    # Totals: the active time is the busy-waits plus a few lines on both
    # loops; the await is the naps (how long each sleep really took, which
    # depends on which other task was busy when its timer fired), minus the
    # few active microseconds of the sleep lines, minus up to 1.5 ms per
    # sleep on uvloop.
    busy = {loop: sum(lg["busy"] for lg in runs[loop][1].values()) for loop in runs}
    naps = {loop: sum(lg["naps"] for lg in runs[loop][1].values()) for loop in runs}
    n = sum(lg["n"] for lg in la.values())
    time_ = {loop: sum(t["time"] for t in runs[loop][0].tasks) for loop in runs}
    await_ = {loop: sum(t["await"] for t in runs[loop][0].tasks) for loop in runs}
    assert abs((time_["asyncio"] - ns(busy["asyncio"])) - (time_["uvloop"] - ns(busy["uvloop"]))) \
        <= ns(SLACK), (time_, busy)
    assert abs((await_["asyncio"] - ns(naps["asyncio"])) - (await_["uvloop"] - ns(naps["uvloop"]))) \
        <= ns(0.0015 * n + SLACK), (await_, naps)
    for r, _, _ in runs.values():
        check_tasks(r.tasks)


# -- gather --------------------------------------------------------------------------

async def gathered(d, busy, log):
    first = perf_counter()  # GC_FIRST
    done = spin(busy)
    await asyncio.sleep(d)  # GC_NAP
    log.append(dict(name=asyncio.current_task().get_name(), first=first, busy=done, d=d,
                    last=perf_counter()))


async def gather_parent(log, st):
    st["first"] = perf_counter()
    a = perf_counter(); await asyncio.gather(gathered(0.03, 0.010, log), gathered(0.01, 0.015, log), gathered(0.02, 0.005, log)); b = perf_counter()  # GATHER
    st["ab"] = (a, b)
    st["name"] = asyncio.current_task().get_name()
    st["last"] = perf_counter()


def test_gather():
    log: List[Dict[str, Any]] = []
    st: Dict[str, Any] = {}
    r = Run([gathered, gather_parent])(run_on("asyncio", gather_parent, log, st))
    a, b = st["ab"]
    kids_first = min(k["first"] for k in log)
    kids_last = max(k["last"] for k in log)
    longest = max(k["last"] - k["first"] for k in log)
    assert {**{k["name"]: "gathered" for k in log}, st["name"]: "gather_parent"} == r.names()

    # The gather line waited for all the children: from before the first one
    # started to after the last one ended, so at least the longest child's
    # lifetime, and within the line's own stamps.
    hits, t_line, aw_line, _ = r.line(gather_parent, "GATHER")
    assert hits == 1
    assert_between(aw_line, kids_last - kids_first, b - a, "await of the gather line")
    assert aw_line >= ns(longest) - EPS_NS
    assert aw_line <= ns(kids_last - kids_first + SLACK), "gather line waited far longer than the children"

    # The parent's task: the same await, and none of the children's busy time.
    p = r.task(st["name"])
    assert_between(p["await"], kids_last - kids_first, b - a, "parent task await")
    assert p["time"] <= ns(SLACK), f"parent task time {fmt(p['time'])}: the children's busy-waits leaked in"
    assert_between(p["time"] + p["await"], st["last"] - st["first"], st["last"] - st["first"] + SLACK,
                   "parent time + await vs its lifetime")

    # Each child is its own task, with its own busy-wait and sleep.
    for k in log:
        c = r.task(k["name"])
        assert_between(c["time"], k["busy"], k["busy"] + SLACK, f"{k['name']}: time")
        assert c["await"] >= ns(slept_floor(k["d"], 1, c["time"] - ns(k["busy"]))) - EPS_NS
        assert_between(c["time"] + c["await"], k["last"] - k["first"], k["last"] - k["first"] + SLACK,
                       f"{k['name']}: time + await vs its lifetime")
        r.first_after(c, a, k["name"])
        r.last_before(c, b, k["name"])
    # Ids in order of first sight: the parent, then the children as they started.
    order = [k["name"] for k in sorted(log, key=lambda k: k["first"])]
    assert [t["name"] for t in sorted(r.tasks, key=lambda t: t["id"])] == [st["name"]] + order
    assert p["id"] == 1
    check_tasks(r.tasks)


# -- create_task and names -------------------------------------------------------------

async def kid(log):
    log["kid_first"] = perf_counter()
    log["kid_busy"] = spin(0.02)
    await asyncio.sleep(0.01)
    # An eager task is named only once create_task() returns, after its first
    # step: its name is the one it has from then on (3.13.0 names it 'None'
    # when no name is given).
    log["kid_name"] = asyncio.current_task().get_name()
    log["kid_last"] = perf_counter()


async def creator(log, name):
    log["cr_first"] = perf_counter()
    log["cr_name"] = asyncio.current_task().get_name()
    t = asyncio.create_task(kid(log), name=name)
    log["cr_busy"] = spin(0.005)
    await asyncio.sleep(0.005)
    log["cr_busy"] += spin(0.005)
    await t
    log["cr_last"] = perf_counter()


async def with_factory(eager, coro_fn, *args):
    """Not profiled: runs ``coro_fn(*args)`` in a task of its own, with
    asyncio's eager task factory (3.12+) if asked."""
    if eager:
        asyncio.get_running_loop().set_task_factory(asyncio.eager_task_factory)
    await asyncio.create_task(coro_fn(*args))


FACTORIES = [
    pytest.param(False, id="default-factory"),
    pytest.param(True, id="eager-factory", marks=pytest.mark.skipif(
        sys.version_info < (3, 12), reason="asyncio.eager_task_factory is new in 3.12")),
]


@pytest.mark.parametrize("eager", FACTORIES)
def test_create_task_is_its_own_task(eager):
    """A task created from a profiled task is its own task: its time is not
    the creator's. With the eager factory (3.12+) the child's first step runs
    synchronously inside create_task(), while the creator's profiled frame is
    below it on the stack, but asyncio.current_task() is the child then."""
    log: Dict[str, Any] = {}
    r = Run([kid, creator])(run_on("asyncio", with_factory, eager, creator, log, None))
    assert r.names() == {log["cr_name"]: "creator", log["kid_name"]: "kid"}, (
        f"expected the creator and the child as two tasks (the truth of asyncio.current_task()), "
        f"got {r.tasks}")
    c, k = r.task(log["cr_name"]), r.task(log["kid_name"])
    assert_between(c["time"], log["cr_busy"], log["cr_busy"] + SLACK, "creator's task time")
    assert_between(k["time"], log["kid_busy"], log["kid_busy"] + SLACK, "child's task time")
    assert_between(k["time"] + k["await"], log["kid_last"] - log["kid_first"],
                   log["kid_last"] - log["kid_first"] + SLACK, "child's time + await")
    assert_between(c["time"] + c["await"], log["cr_last"] - log["cr_first"],
                   log["cr_last"] - log["cr_first"] + SLACK, "creator's time + await")
    assert (c["id"], k["id"]) == (1, 2)
    check_tasks(r.tasks)


@pytest.mark.parametrize("eager", FACTORIES)
def test_create_task_name(eager):
    log: Dict[str, Any] = {}
    r = Run([kid, creator])(run_on("asyncio", with_factory, eager, creator, log, "custom"))
    names = r.names()
    assert names.get("custom") == "kid", (
        f"create_task(kid(), name='custom') (the task's name: {log['kid_name']!r} after its "
        f"first step): got task records {r.tasks}")
    check_tasks(r.tasks)


class Worker:
    async def run(self, log):
        log["first"] = asyncio.current_task().get_name()
        await asyncio.sleep(0)
        asyncio.current_task().set_name("renamed")
        await asyncio.sleep(0)
        log["last"] = asyncio.current_task().get_name()


async def start_worker(log):
    await asyncio.create_task(Worker().run(log), name="custom")


def test_coro_is_the_qualname_and_the_name_is_read_when_first_seen():
    log: Dict[str, Any] = {}
    r = Run([Worker.run])(run_on("asyncio", start_worker, log))
    assert (log["first"], log["last"]) == ("custom", "renamed")
    assert r.names() == {"custom": "Worker.run"}
    check_tasks(r.tasks)


# -- TaskGroup ----------------------------------------------------------------------

async def grouped(i, log):
    first = perf_counter()
    busy = spin(0.005 * (i + 1))
    await asyncio.sleep(0.01 * (i + 1))
    log.append(dict(name=asyncio.current_task().get_name(), first=first, busy=busy,
                    d=0.01 * (i + 1), last=perf_counter()))


async def group_parent(log, st):
    st["name"] = asyncio.current_task().get_name()
    st["a"] = perf_counter()
    async with asyncio.TaskGroup() as tg:  # TG
        for i in range(3):
            tg.create_task(grouped(i, log))
    st["b"] = perf_counter()


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.TaskGroup is new in 3.11")
def test_taskgroup():
    log: List[Dict[str, Any]] = []
    st: Dict[str, Any] = {}
    r = Run([grouped, group_parent])(run_on("asyncio", group_parent, log, st))
    assert r.names() == {**{k["name"]: "grouped" for k in log}, st["name"]: "group_parent"}
    kids_first = min(k["first"] for k in log)
    kids_last = max(k["last"] for k in log)
    # The parent waits at the `async with` line (its __aexit__) for all the
    # children.
    hits, _, aw_line, _ = r.line(group_parent, "TG")
    assert hits >= 1
    assert_between(aw_line, kids_last - kids_first, st["b"] - st["a"], "await of the async with line")
    p = r.task(st["name"])
    assert_between(p["await"], kids_last - kids_first, st["b"] - st["a"], "parent task await")
    assert p["time"] <= ns(SLACK), f"parent task time {fmt(p['time'])}: the children's time leaked in"
    for k in log:
        c = r.task(k["name"])
        assert_between(c["time"], k["busy"], k["busy"] + SLACK, f"{k['name']}: time")
        assert_between(c["time"] + c["await"], k["last"] - k["first"], k["last"] - k["first"] + SLACK,
                       f"{k['name']}: time + await")
    check_tasks(r.tasks)


async def group_failer(log):
    log["fail_name"] = asyncio.current_task().get_name()
    await asyncio.sleep(0.02)
    log["fail_at"] = perf_counter()
    raise ValueError("boom")


async def group_sleeper(log):
    log["sl_name"] = asyncio.current_task().get_name()
    log["sl_first"] = perf_counter()
    try:
        await asyncio.sleep(10)  # GS_LONG
    except asyncio.CancelledError:
        log["sl_cancelled"] = perf_counter()
        raise


async def group_failing_parent(log):
    log["p_name"] = asyncio.current_task().get_name()
    log["p_first"] = perf_counter()
    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(group_failer(log))
            tg.create_task(group_sleeper(log))
    except Exception:  # an ExceptionGroup holding the ValueError
        log["p_caught"] = perf_counter()
    await asyncio.sleep(0.03)  # nothing of the sleeper may grow now
    log["p_last"] = perf_counter()


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.TaskGroup is new in 3.11")
def test_taskgroup_failure_cancels_siblings():
    log: Dict[str, Any] = {}
    r = Run([group_failer, group_sleeper, group_failing_parent])(
        run_on("asyncio", group_failing_parent, log))
    assert r.names() == {log["p_name"]: "group_failing_parent", log["fail_name"]: "group_failer",
                         log["sl_name"]: "group_sleeper"}
    s = r.task(log["sl_name"])
    # The sibling was suspended from after its first stamp until the
    # cancellation was thrown in, after the failure and before its except.
    assert_between(s["await"], log["fail_at"] - log["sl_first"] - s["time"] / 1e9,
                   log["sl_cancelled"] - log["sl_first"], "cancelled sibling's await")
    r.last_before(s, log["p_caught"], "cancelled sibling")
    p = r.task(log["p_name"])
    life = log["p_last"] - log["p_first"]
    assert_between(p["time"] + p["await"], life, life + SLACK, "parent time + await")
    check_tasks(r.tasks)


# -- wait_for and timeouts ------------------------------------------------------------

async def slow_op(log):
    log["slow_name"] = asyncio.current_task().get_name()
    log["slow_first"] = perf_counter()
    try:
        await asyncio.sleep(10)  # SLOW
    except asyncio.CancelledError:
        log["slow_cancelled"] = perf_counter()
        log["slow_cleanup"] = spin(0.015)  # cleanup work on timeout
        raise


async def waiter(log, timeout):
    log["w_name"] = asyncio.current_task().get_name()
    log["w_first"] = perf_counter()
    a = perf_counter()
    try:
        await asyncio.wait_for(slow_op(log), timeout=timeout)  # WAIT_FOR
    except asyncio.TimeoutError:
        log["w_timeout"] = perf_counter()
    log["wait_a"] = a
    await asyncio.sleep(0.03)  # nothing of slow_op may grow now
    log["w_last"] = perf_counter()


def test_wait_for_timeout():
    """wait_for(coro, timeout): on 3.12+ the coroutine runs in the caller's
    task, on 3.11 in a task of its own; either way the attribution follows
    asyncio.current_task(), the timed-out suspension ends at the timeout,
    and the coroutine's cleanup after the timeout is active time, once."""
    log: Dict[str, Any] = {}
    timeout = 0.03
    r = Run([slow_op, waiter])(run_on("asyncio", waiter, log, timeout))
    w = r.task(log["w_name"])
    fired = log["wait_a"] + timeout  # the timeout cannot fire before this
    cleanup = log["slow_cleanup"]
    if log["slow_name"] == log["w_name"]:
        # One task: slow_op is nested in waiter's frame, its cleanup is the
        # waiter task's active time, counted once.
        assert r.names() == {log["w_name"]: "waiter"}
        assert_between(w["time"], cleanup, cleanup + SLACK, "waiter task time (with the cleanup)")
        own = w["time"] - ns(cleanup)
    else:
        assert r.names() == {log["w_name"]: "waiter", log["slow_name"]: "slow_op"}
        s = r.task(log["slow_name"])
        assert_between(s["time"], cleanup, cleanup + SLACK, "timed-out task's time")
        assert_between(s["await"], fired - log["slow_first"] - (s["time"] - ns(cleanup)) / 1e9,
                       log["slow_cancelled"] - log["slow_first"], "timed-out task's await")
        r.last_before(s, log["w_timeout"], "timed-out task")
        assert w["time"] <= ns(SLACK), "the waiter did nothing but wait"
        own = w["time"]
    # The waiter's task: suspended through the timeout and the sleep after it.
    assert_between(w["await"], slept_floor(timeout + 0.03, 2, own),
                   log["w_last"] - log["w_first"], "waiter task await")
    life = log["w_last"] - log["w_first"]
    assert_between(w["time"] + w["await"], life, life + SLACK, "waiter time + await")
    # slow_op's line: suspended until the cancellation, not beyond.
    _, t_slow, aw_slow, _ = r.line(slow_op, "SLOW")
    assert_between(aw_slow, fired - log["slow_first"] - t_slow / 1e9,
                   log["slow_cancelled"] - log["slow_first"], "slow_op's await line")
    check_tasks(r.tasks)


# -- cancellation -------------------------------------------------------------------

async def doomed(log):
    log["d_first"] = perf_counter()
    log["d_busy"] = spin(0.005)
    try:
        await asyncio.sleep(10)  # DOOMED
    except asyncio.CancelledError:
        log["d_cancelled"] = perf_counter()
        raise


async def never_runs(log):
    log["ran"] = True  # NEVER


async def canceller(log):
    """Not profiled."""
    t = asyncio.create_task(doomed(log), name="doomed")
    early = asyncio.create_task(never_runs(log), name="never")
    early.cancel()  # before its first step: no profiled frame ever starts
    await asyncio.sleep(0.02)
    log["cancel_at"] = perf_counter()
    t.cancel()
    for x in (t, early):
        try:
            await x
        except asyncio.CancelledError:
            pass
    await asyncio.sleep(0.03)  # t is still referenced: its await must not grow
    log["end"] = perf_counter()
    return t


def test_cancellation_mid_await():
    log: Dict[str, Any] = {}
    r = Run([doomed, never_runs])(run_on("asyncio", canceller, log))
    assert "ran" not in log
    # A task cancelled before its first step: CancelledError is thrown into
    # the fresh coroutine, whose frame starts and unwinds at once, running
    # none of its lines. If it has a record, it is empty.
    assert all(h == 0 for h, _, _, _ in r.lines(never_runs).values())
    names = r.names()
    if "never" in names:
        never = r.task("never")
        assert never["await"] == 0 and never["time"] <= ns(0.001), never
        del names["never"]
    assert names == {"doomed": "doomed"}
    d = r.task("doomed")
    assert_between(d["time"], log["d_busy"], log["d_busy"] + SLACK, "cancelled task's time")
    # Suspended from after d_first + its active time, at the latest, until
    # the cancellation was thrown in (after cancel_at, before its except).
    assert_between(d["await"], log["cancel_at"] - log["d_first"] - d["time"] / 1e9,
                   log["d_cancelled"] - log["d_first"], "cancelled task's await")
    r.last_after(d, log["d_cancelled"], "cancelled task")
    r.last_before(d, log["end"] - 0.03, "cancelled task")
    check_tasks(r.tasks)


async def cleanup_inner(log):
    try:
        await asyncio.sleep(10)  # CI_LONG
    finally:
        log["cleanup"] = spin(0.02)  # CI_CLEANUP


async def cleanup_outer(log):
    log["first"] = perf_counter()
    try:
        await cleanup_inner(log)  # CO_AWAIT
    finally:
        log["last"] = perf_counter()


async def cancel_nested(log):
    """Not profiled."""
    t = asyncio.create_task(cleanup_outer(log), name="nested")
    await asyncio.sleep(0.02)
    log["cancel_at"] = perf_counter()
    t.cancel()
    try:
        await t
    except asyncio.CancelledError:
        pass


def test_cancellation_of_nested_coroutines():
    """A task cancelled while a profiled coroutine awaits another: CPython
    throws CancelledError into the innermost frame first (the outer frames
    are resumed only when it propagates to them). The task's await ends at
    the cancellation; the inner frame's cleanup is the task's active time,
    counted once."""
    log: Dict[str, Any] = {}
    r = Run([cleanup_inner, cleanup_outer])(run_on("asyncio", cancel_nested, log))
    assert r.names() == {"nested": "cleanup_outer"}
    t = r.task("nested")
    assert_between(t["time"], log["cleanup"], log["cleanup"] + SLACK, "task time (the cleanup)")
    # Suspended from its first stamp (plus some active time) until the throw,
    # which comes after cancel_at; the cleanup (20 ms) comes after that.
    assert_between(t["await"], log["cancel_at"] - log["first"] - (t["time"] - ns(log["cleanup"])) / 1e9,
                   log["last"] - log["first"] - log["cleanup"],
                   "task await: the suspension ends at the cancellation, before the cleanup")
    life = log["last"] - log["first"]
    assert_between(t["time"] + t["await"], life, life + SLACK, "time + await vs its lifetime")
    check_tasks(r.tasks)


# -- nested profiled coroutines and sync callees --------------------------------------

def crunch(d):
    return spin(d)


async def leaf(log):
    log["busy"] += crunch(0.02)
    a = perf_counter(); await asyncio.sleep(0.01); b = perf_counter()
    log["nap"] = (a, b)


async def middle(log):
    log["busy"] += spin(0.005)
    await leaf(log)
    log["busy"] += spin(0.005)


async def top(log):
    log["first"] = perf_counter()
    await middle(log)
    log["last"] = perf_counter()


async def start_top(log):
    log["busy"] = 0.0
    log["name"] = "nest"
    await asyncio.create_task(top(log), name="nest")


@pytest.mark.parametrize("outermost", [top, middle], ids=["task-coro-profiled", "task-coro-not-profiled"])
def test_nested_profiled_frames_are_not_double_counted(outermost):
    """top -> middle -> leaf -> crunch in one task. Task time is the active
    time of the outermost profiled frame (which includes its callees', as
    its lines do), not the sum over the nested frames."""
    funcs = [middle, leaf, crunch] + ([top] if outermost is top else [])
    log: Dict[str, Any] = {}
    r = Run(funcs)(run_on("asyncio", start_top, log))
    assert r.names() == {"nest": "top"}
    t = r.task("nest")
    a, b = log["nap"]
    outer_time = sum(tm for _, tm, _, _ in r.lines(outermost).values())
    outer_await = sum(aw for _, _, aw, _ in r.lines(outermost).values())
    assert_between(t["time"], log["busy"], log["busy"] + SLACK, "task time")
    # The task also counts the outermost frame's start before its first line
    # (the hook's own work, where a garbage collection may run).
    assert abs(t["time"] - outer_time) <= ns(SLACK), (
        f"task time {fmt(t['time'])} vs the outermost frame's {fmt(outer_time)}")
    assert t["await"] == outer_await
    assert_between(t["await"], slept_floor(0.01, 1, t["time"] - ns(log["busy"])), b - a, "task await")
    if outermost is top:
        life = log["last"] - log["first"]
        assert_between(t["time"] + t["await"], life, life + SLACK, "time + await vs lifetime")
    check_tasks(r.tasks)


async def gen_consumer(kind, log):
    """Not profiled: the task holds a profiled generator suspended at its
    yield while it awaits a profiled coroutine."""
    log["first"] = perf_counter()
    if kind == "async-generator":
        async for i in ticker(3):
            await handler(log)
    else:
        for i in numbers(3):
            await handler(log)
    log["last"] = perf_counter()


async def ticker(n):
    for i in range(n):
        await asyncio.sleep(0.01)
        yield i


def numbers(n):
    for i in range(n):
        yield i


async def handler(log):
    log["busy"] = log.get("busy", 0.0) + spin(0.005)
    await asyncio.sleep(0.01)


@pytest.mark.parametrize("kind", ["async-generator", "generator"])
def test_task_wall_never_exceeds_its_lifetime(kind):
    """A task whose coroutine is not profiled, iterating a profiled
    (async) generator and awaiting a profiled coroutine for each item: at
    any moment the task is either running or suspended, once, so its
    time + await cannot exceed the span it was seen in (check_tasks) nor its
    lifetime."""
    log: Dict[str, Any] = {}
    r = Run([ticker, numbers, handler])(
        lambda: asyncio.run(run_named(gen_consumer(kind, log), "consumer")))
    t = r.task("consumer")
    assert t["coro"] == "gen_consumer"
    life = log["last"] - log["first"]
    assert t["time"] >= ns(log["busy"]) - EPS_NS
    assert t["time"] + t["await"] <= ns(life) + EPS_NS, (
        f"time {fmt(t['time'])} + await {fmt(t['await'])} = {fmt(t['time'] + t['await'])} "
        f"exceeds the task's lifetime {fmt(ns(life))}")
    check_tasks(r.tasks)


async def run_named(coro, name):
    return await asyncio.create_task(coro, name=name)


# -- sync functions, and code outside any task ---------------------------------------

async def sync_user(log):
    """Not profiled; calls the profiled sync function twice."""
    log["name"] = asyncio.current_task().get_name()
    log["busy"] = crunch(0.01)
    a = perf_counter(); await asyncio.sleep(0.02); b = perf_counter()
    log["gap"] = (a, b)
    log["busy"] += crunch(0.005)


def test_sync_function_called_from_a_task():
    log: Dict[str, Any] = {}
    r = Run([crunch])(run_on("asyncio", sync_user, log))
    assert r.names() == {log["name"]: "sync_user"}
    t = r.task(log["name"])
    assert_between(t["time"], log["busy"], log["busy"] + SLACK, "task time of its sync calls")
    assert t["await"] == 0, "sync frames never suspend"
    a, b = log["gap"]
    r.first_before(t, a, "first call")
    r.last_after(t, b, "second call")
    check_tasks(r.tasks)


async def outside_tasks(log):
    """Not profiled: a loop callback and an executor thread are no task."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    loop.call_soon(lambda: (crunch(0.002), done.set_result(None)))
    await done
    await loop.run_in_executor(None, crunch, 0.002)


def test_no_task_outside_any_loop_or_task():
    log: Dict[str, Any] = {}
    r = Run([crunch])(lambda: (crunch(0.002), asyncio.run(outside_tasks(log))))
    calls = max(h for h, _, _, _ in r.lines(crunch).values())
    assert calls == 3, "crunch ran outside a loop, in a loop callback and in an executor thread"
    assert r.tasks == []
    check_tasks(r.tasks)


# -- enabling while a task is suspended ----------------------------------------------------

async def late(log):
    await asyncio.sleep(0.03)  # enabled during this sleep
    log["busy"] = spin(0.01)
    a = perf_counter(); await asyncio.sleep(0.01); b = perf_counter()
    log["nap"] = (a, b)


async def enable_midway(prof, log):
    t = asyncio.create_task(late(log), name="late")
    await asyncio.sleep(0.01)
    log["enabled_at"] = perf_counter()
    prof.enable()
    await t


def test_adopted_frame_is_attributed():
    """A frame adopted at its resumption (profiling was enabled while it was
    suspended) is looked up then: it belongs to its task, from that moment."""
    log: Dict[str, Any] = {}
    r = Run([late])
    r(lambda: asyncio.run(enable_midway(r.prof, log)), enable=False)
    assert r.names() == {"late": "late"}
    t = r.task("late")
    a, b = log["nap"]
    assert_between(t["time"], log["busy"], log["busy"] + SLACK, "adopted task time")
    # Only the second sleep: the first suspension started before enable().
    assert_between(t["await"], slept_floor(0.01, 1, t["time"] - ns(log["busy"])), b - a,
                   "adopted task await")
    r.first_after(t, log["enabled_at"], "adopted task")
    check_tasks(r.tasks)


# -- writing a profile while tasks run ---------------------------------------------------

async def watched(log):
    log["first"] = perf_counter()
    log["busy"] = spin(0.01)
    a = perf_counter(); await asyncio.sleep(0.04); b = perf_counter()
    log["nap"] = (a, b)
    log["last"] = perf_counter()


async def snapshot_midway(prof, log):
    """Not profiled: takes a snapshot while the watched task is suspended."""
    log["created"] = perf_counter()
    t = asyncio.create_task(watched(log), name="watched")
    await asyncio.sleep(0.02)
    log["s0"] = perf_counter()
    log["mid"] = prof.snapshot()["tasks"]
    log["s1"] = perf_counter()
    await t


def test_snapshot_while_a_task_is_suspended():
    """A snapshot counts the open suspension up to its moment, and the later
    accounting adds only the rest (the final await is still within the nap)."""
    log: Dict[str, Any] = {}
    r = Run([watched])
    r(lambda: asyncio.run(snapshot_midway(r.prof, log)))
    [mid] = log["mid"]
    assert (mid["name"], mid["coro"]) == ("watched", "watched")
    assert_between(mid["time"], log["busy"], log["busy"] + SLACK, "time at the snapshot")
    assert_between(mid["time"] + mid["await"], log["s0"] - log["first"], log["s1"] - log["created"],
                   "time + await at the snapshot")
    r.last_after(mid, log["s0"], "snapshot")
    t = r.task("watched")
    a, b = log["nap"]
    assert t["time"] >= mid["time"] and t["await"] >= mid["await"]
    assert_between(t["await"], slept_floor(0.04, 1, t["time"] - ns(log["busy"])), b - a, "final await")
    life = log["last"] - log["first"]
    assert_between(t["time"] + t["await"], life, life + SLACK, "final time + await")
    check_tasks(r.tasks)


# -- threads ---------------------------------------------------------------------------

def thread_loop(prefix, log):
    async def main():
        ts = [asyncio.create_task(threaded_task(log), name=f"{prefix}-{i}") for i in range(2)]
        await asyncio.gather(*ts)
    asyncio.run(main())


async def threaded_task(log):
    first = perf_counter()
    busy = spin(0.005)
    await asyncio.sleep(0.01)
    busy += spin(0.005)
    log[asyncio.current_task().get_name()] = dict(
        first=first, busy=busy, thread=threading.get_ident(), last=perf_counter())


def test_threads_with_and_without_loops():
    log: Dict[str, Any] = {}

    def body():
        threads = [threading.Thread(target=crunch, args=(0.01,)),  # no loop
                   threading.Thread(target=thread_loop, args=("B", log))]
        for th in threads:
            th.start()
        thread_loop("M", log)
        for th in threads:
            th.join()

    r = Run([threaded_task, crunch])(body)
    assert r.names() == {f"{p}-{i}": "threaded_task" for p in "BM" for i in range(2)}
    assert len({lg["thread"] for lg in log.values()}) == 2
    assert max(h for h, _, _, _ in r.lines(crunch).values()) == 1
    for name, lg in log.items():
        t = r.task(name)
        # Under the GIL another thread may hold the interpreter in the middle
        # of a line: that counts as active time too, so the exact bounds only.
        assert t["time"] >= ns(lg["busy"]) - EPS_NS, name
        life = lg["last"] - lg["first"]
        assert_between(t["time"] + t["await"], life, life + 0.05, f"{name}: time + await")
        r.first_before(t, lg["first"], name)
        r.last_after(t, lg["last"], name)
    check_tasks(r.tasks, across_threads=0.05)


# -- JSON ----------------------------------------------------------------------------------

def test_json_has_the_tasks(tmp_path):
    log: Dict[str, Any] = {}
    outer: Dict[str, Any] = {}
    r = Run([planned])(run_on("asyncio", run_plans, PLANS, log, outer))
    path = tmp_path / "tasks.lprof"
    r.prof.dump(str(path))
    out = subprocess.run([sys.executable, "-m", "lineprof", "--json", str(path)],
                         capture_output=True, text=True, timeout=60,
                         cwd=os.path.dirname(os.path.abspath(__file__)))
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["unit"] == 1e-9
    got = sorted(doc["tasks"], key=lambda t: t["id"])
    want = sorted(r.prof.snapshot()["tasks"], key=lambda t: t["id"])
    assert [t["name"] for t in got] == [t["name"] for t in want] and len(got) == len(PLANS)
    for g, w in zip(got, want):
        for key in ("id", "name", "coro", "time", "await"):
            assert g[key] == w[key], (key, g, w)
        for key in ("first", "last", "folded"):
            if key in g:
                assert g[key] == w[key], (key, g, w)
    check_tasks(got)
