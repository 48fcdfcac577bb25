"""CPython 3.11: the trace function is installed on a thread only while a
profiled frame runs there (csrc/ext/lp_evalframe.h), so code that is not
profiled runs at full speed. sys.gettrace() shows it: it returns the
profiler while our C trace function is installed, None otherwise.
3.12+ has no trace function at all (sys.monitoring); 3.8-3.10 keep it
installed while recording."""

import asyncio
import sys
import threading

import pytest

from conftest import hits_only, register, settrace_hits, table

pytestmark = pytest.mark.skipif(
    sys.version_info[:2] != (3, 11),
    reason="lazy tracing is the 3.11 backend's (3.8-3.10 trace globally, 3.12+ use sys.monitoring)")


def seen_inside():
    return sys.gettrace()


def profiled(n):
    total = 0
    for i in range(n):
        total += i
    return seen_inside(), total


def profiled_gen(n):
    for i in range(n):
        yield sys.gettrace()


async def profiled_coro():
    await asyncio.sleep(0)
    return sys.gettrace()


def test_traced_only_inside_profiled_frames(prof):
    register(prof, [profiled])
    assert sys.gettrace() is None
    prof.enable()
    try:
        assert sys.gettrace() is None  # nothing profiled runs yet
        inside, _ = profiled(10)
        after = sys.gettrace()
    finally:
        prof.disable()
    assert inside is prof
    assert after is None
    assert hits_only(table(prof)) == settrace_hits([profiled], lambda: profiled(10))


def test_generator_armed_at_each_resumption(prof):
    register(prof, [profiled_gen])
    prof.enable()
    try:
        gen = profiled_gen(3)
        assert sys.gettrace() is None  # creating it is not an entry
        inside = []
        for seen in gen:
            inside.append(seen)
            inside.append(sys.gettrace())  # suspended: not traced
    finally:
        prof.disable()
    assert inside == [prof, None] * 3
    assert hits_only(table(prof)) == settrace_hits([profiled_gen], lambda: list(profiled_gen(3)))


def test_event_loop_runs_untraced_between_steps(prof):
    register(prof, [profiled_coro])
    seen = []

    async def main():
        for _ in range(3):
            seen.append(await profiled_coro())
            seen.append(sys.gettrace())

    prof.enable()
    try:
        asyncio.run(main())
    finally:
        prof.disable()
    assert seen == [prof, None] * 3
    assert hits_only(table(prof))[("profiled_coro", profiled_coro.__code__.co_firstlineno + 1)] == 3


def test_thread_started_before_enable_is_armed(prof):
    register(prof, [profiled])
    go = threading.Event()
    box = []
    t = threading.Thread(target=lambda: (go.wait(), box.append(profiled(5)[0]),
                                         box.append(sys.gettrace())))
    t.start()
    prof.enable()
    try:
        go.set()
        t.join()
    finally:
        prof.disable()
    assert box == [prof, None]


def test_foreign_trace_function_is_left_alone(prof):
    """A debugger or coverage tool's trace function stays; lineprof does not
    replace it at a profiled frame's entry (it records nothing there)."""
    events = []

    def tracer(frame, event, arg):
        if frame.f_code is profiled.__code__:
            events.append(event)
        return None

    register(prof, [profiled])
    prof.enable()
    sys.settrace(tracer)
    try:
        profiled(3)
        still = sys.gettrace()
    finally:
        sys.settrace(None)
        prof.disable()
    assert still is tracer
    assert events == ["call"]
    assert prof.error is None
