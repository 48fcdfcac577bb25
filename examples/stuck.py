"""An asyncio service with a bug that blocks its event loop: a report is
rendered with a synchronous call (``time.sleep`` stands in for a blocking
database driver) right on the loop. Watch it live while it is stuck::

    kernprof -l --live unix:/tmp/stuck.sock examples/stuck.py &
    python -m lineprof top unix:/tmp/stuck.sock

``top`` answers even while the loop is blocked (lineprof's worker is a
native thread that does not need the GIL) and shows the stuck line under
"Running now", with how long it has been stuck. It prints "blocking" when
the report starts, and runs for SECONDS (default 6) in all.
"""

import asyncio
import random
import sys
import time

try:
    profile  # noqa: B018 - injected into builtins by kernprof -l
except NameError:
    def profile(func):
        return func


@profile
async def handle(request_id):
    """A well-behaved request handler: it awaits its I/O."""
    await asyncio.sleep(random.uniform(0.005, 0.02))  # the database, async
    body = f"request {request_id}: " + ",".join(str(i) for i in range(50))
    await asyncio.sleep(0.001)  # the socket
    return len(body)


@profile
def render_report(rows):
    """The bug: a synchronous call on the event loop."""
    time.sleep(3.0)  # a blocking driver call
    return sum(rows)


@profile
async def reporter():
    while True:
        await asyncio.sleep(0.5)
        print("blocking", flush=True)
        render_report(range(1000))


async def server(seconds):
    random.seed(1)
    task = asyncio.create_task(reporter(), name="reporter")
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        await asyncio.gather(*(handle(n + i) for i in range(20)))
        n += 20
    task.cancel()
    print(f"served {n} requests", flush=True)


if __name__ == "__main__":
    asyncio.run(server(float(sys.argv[1]) if len(sys.argv) > 1 else 6.0))
