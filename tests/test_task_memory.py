"""Task records with bounded memory: retired tasks are kept whole (the
1000 heaviest by wall) or folded, one record per coroutine name.

A task is retired when its object has died and no profiled frame refers to
it any more. The registry's memory is then O(live tasks + 1000 + coroutine
names), whatever the number of tasks a program creates: checked on the
resident set size of fresh interpreters running 20 000 and 200 000 tasks,
and on the records themselves (counts, totals, which tasks are kept whole).
"""

from __future__ import annotations

import asyncio
import gc
import json
import subprocess
import sys
import textwrap
from typing import Any, Dict, List

from conftest import _lineprof, register, spin

KEEP = 1000  # LP_TASKS_KEEP

#: Runs N short tasks (each a profiled coroutine that awaits asyncio.sleep(0)
#: once), 1000 at a time, then prints what the test checks as JSON. RSS is
#: read from /proc/self/statm after a collection, and the peak from getrusage.
SCRIPT = textwrap.dedent("""
    import asyncio, gc, json, resource, sys, time
    from lineprof import _lineprof

    async def tick():
        await asyncio.sleep(0)

    async def main(n, wave):
        for start in range(0, n, wave):
            await asyncio.gather(*[tick() for _ in range(min(wave, n - start))])

    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize()

    n = int(sys.argv[1])
    prof = _lineprof.Profiler()
    code = tick.__code__
    prof.add_code(code, _lineprof.KIND_COROUTINE, code.co_filename, tick.__qualname__,
                  code.co_firstlineno, code.co_firstlineno + 1)
    rss0 = rss()
    t0 = time.perf_counter()
    prof.enable()
    asyncio.run(main(n, 1000))
    prof.disable()
    secs = time.perf_counter() - t0
    gc.collect()
    snap = prof.snapshot()
    lines = [ln for fd in snap["functions"] for ln in fd["lines"]]
    print(json.dumps(dict(
        n=n, secs=secs, rss0=rss0, rss=rss(),
        maxrss=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        error=prof.error, tasks=[t for t in snap["tasks"] if t["folded"]],
        individual=sum(1 for t in snap["tasks"] if not t["folded"]),
        individual_coros=sorted({t["coro"] for t in snap["tasks"] if not t["folded"]}),
        task_await=sum(t["await"] for t in snap["tasks"]),
        line_await=sum(ln[3] for ln in lines),
        task_time=sum(t["time"] for t in snap["tasks"]),
        line_time=sum(ln[2] for ln in lines))))
""")

#: The growth of RSS allowed from 20 000 to 200 000 tasks. A registry that
#: kept every task would hold at least its record (~100 bytes with the two
#: names) per task: 18 MB for the 180 000 more.
MAX_GROWTH = 10 * 1024 * 1024


def run_many(n: int) -> Dict[str, Any]:
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(n)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_memory_is_bounded_for_many_tasks():
    small, big = run_many(20_000), run_many(200_000)
    for r in (small, big):
        n = r["n"]
        assert r["error"] is None, r["error"]
        # 1000 tasks kept whole, the rest in one fold for the one coroutine.
        assert r["individual"] == KEEP, r
        assert r["individual_coros"] == ["tick"]
        assert len(r["tasks"]) == 1, r["tasks"]
        fold = r["tasks"][0]
        assert (fold["id"], fold["name"], fold["coro"]) == (0, "tick", "tick"), fold
        assert fold["folded"] + r["individual"] == n, "every task is counted once"
        # Folding keeps the totals: the tasks' await is their frames' await.
        assert r["task_await"] == r["line_await"], r
        assert r["task_time"] >= r["line_time"], r
    growth = {k: big[k] - small[k] for k in ("rss", "maxrss")}
    mb = {k: round(v / 2**20, 2) for k, v in growth.items()}
    assert growth["rss"] < MAX_GROWTH and growth["maxrss"] < MAX_GROWTH, (
        f"RSS grew by {mb} MB from 20k to 200k tasks (runs took "
        f"{small['secs']:.1f} s and {big['secs']:.1f} s)")


# -- which tasks are kept whole ----------------------------------------------------

async def light_a():
    await asyncio.sleep(0)


async def light_b():
    await asyncio.sleep(0)


async def heavy():
    spin(0.001)
    await asyncio.sleep(0.005)


async def mixed(n_a: int, n_b: int, n_heavy: int) -> List[str]:
    """Not profiled: light tasks ten at a time (so each lasts a fraction of a
    ms), and a heavy one (at least 6 ms) every so often."""
    heavy_names = []
    plan = ["a"] * n_a + ["b"] * n_b
    step = len(plan) // n_heavy
    for i in range(0, len(plan), 10):
        if (i // 10) % (step // 10) == 0 and len(heavy_names) < n_heavy:
            name = f"heavy-{len(heavy_names)}"
            heavy_names.append(name)
            await asyncio.create_task(heavy(), name=name)
        await asyncio.gather(*[light_a() if k == "a" else light_b() for k in plan[i:i + 10]])
    return heavy_names


def profile(funcs, body):
    prof = _lineprof.Profiler()
    register(prof, funcs)
    prof.enable()
    try:
        value = body()
    finally:
        prof.disable()
    gc.collect()
    assert prof.error is None, prof.error
    return prof, value


def line_sums(snap) -> tuple:
    lines = [ln for fd in snap["functions"] for ln in fd["lines"]]
    return sum(ln[2] for ln in lines), sum(ln[3] for ln in lines)


def test_heaviest_tasks_are_kept_whole_and_the_rest_folded_per_coroutine():
    n_a, n_b, n_heavy = 900, 600, 40
    prof, heavy_names = profile([light_a, light_b, heavy],
                                lambda: asyncio.run(mixed(n_a, n_b, n_heavy)))
    assert len(heavy_names) == n_heavy
    tasks = prof.snapshot()["tasks"]
    whole = [t for t in tasks if not t["folded"]]
    folds = {t["coro"]: t for t in tasks if t["folded"]}
    assert len(whole) == KEEP
    # One fold per coroutine name, shaped as documented.
    assert set(folds) <= {"light_a", "light_b"} and folds, folds
    for coro, f in folds.items():
        assert (f["id"], f["name"]) == (0, coro), f
        assert f["first"] <= f["last"]
    # Every task counted once, per coroutine.
    for coro, n in (("light_a", n_a), ("light_b", n_b), ("heavy", n_heavy)):
        kept = sum(1 for t in whole if t["coro"] == coro)
        assert kept + folds.get(coro, {"folded": 0})["folded"] == n, coro
    # The heavy tasks (>= 6 ms each) are among the kept ones, and every folded
    # task was at most as heavy as the lightest kept one: its average too.
    kept_names = {t["name"] for t in whole}
    assert set(heavy_names) <= kept_names, sorted(set(heavy_names) - kept_names)
    lightest_kept = min(t["time"] + t["await"] for t in whole)
    for f in folds.values():
        assert (f["time"] + f["await"]) / f["folded"] <= lightest_kept + 1, (f, lightest_kept)
    # Folding keeps the totals: the tasks' await is their frames' await.
    line_time, line_await = line_sums(prof.snapshot())
    assert sum(t["await"] for t in tasks) == line_await
    assert sum(t["time"] for t in tasks) >= line_time


# -- a task is retired only when its object and its frames are gone ------------------

async def short():
    await asyncio.sleep(0)


async def hold_tasks(n: int, probe) -> None:
    """Not profiled: finishes n tasks while holding them, probes, then lets them go."""
    held = [asyncio.create_task(short()) for _ in range(n)]
    for t in held:  # not gather(): its future keeps the tasks alive for a while
        await t
    del t
    probe("held")
    del held
    await asyncio.sleep(0)  # the loop's handle that woke us up holds the last task
    gc.collect()
    probe("released")


def test_finished_tasks_still_referenced_are_not_folded():
    n = KEEP + 500
    seen: Dict[str, List[Dict[str, Any]]] = {}
    prof = _lineprof.Profiler()
    register(prof, [short])
    prof.enable()
    try:
        asyncio.run(hold_tasks(n, lambda when: seen.__setitem__(when, prof.snapshot()["tasks"])))
    finally:
        prof.disable()
    held, released = seen["held"], seen["released"]
    assert len(held) == n and all(t["folded"] == 0 for t in held), "finished tasks still alive are kept whole"
    whole = [t for t in released if not t["folded"]]
    folds = [t for t in released if t["folded"]]
    assert len(whole) == KEEP and len(folds) == 1, released[-3:]
    assert folds[0]["folded"] == n - KEEP
    assert sum(t["await"] for t in released) == sum(t["await"] for t in held)


async def held_gen():
    yield 1
    yield 2


async def owner(keep: list) -> None:
    g = held_gen()
    await g.__anext__()
    keep.append(g)  # the generator outlives its task, suspended


async def frames_outlive_tasks(n: int, probe) -> None:
    """Not profiled: n tasks each leave a profiled async generator suspended."""
    gens: list = []
    tasks = [asyncio.create_task(owner(gens)) for _ in range(n)]
    for t in tasks:
        await t
    del t, tasks
    await asyncio.sleep(0)  # the loop's handle that woke us up holds the last task
    gc.collect()  # the task objects are gone now
    probe("frames alive")
    for g in gens:
        await g.aclose()
    del gens, g
    gc.collect()
    probe("frames gone")


def test_a_task_whose_frames_live_on_is_not_folded():
    n = KEEP + 200
    seen: Dict[str, List[Dict[str, Any]]] = {}
    prof = _lineprof.Profiler()
    register(prof, [owner, held_gen])
    prof.enable()
    try:
        asyncio.run(frames_outlive_tasks(n, lambda when: seen.__setitem__(when, prof.snapshot()["tasks"])))
    finally:
        prof.disable()
    alive, gone = seen["frames alive"], seen["frames gone"]
    assert len(alive) == n and all(t["folded"] == 0 for t in alive), (
        "a task whose frames are still alive is not retired")
    whole = [t for t in gone if not t["folded"]]
    folds = [t for t in gone if t["folded"]]
    assert len(whole) == KEEP and [f["coro"] for f in folds] == ["owner"], folds
    assert folds[0]["folded"] == n - KEEP
