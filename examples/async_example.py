"""A small asyncio program to line-profile: fake fetches, a gather, an async
generator and a CPU-bound step.

Run it under the line profiler (``profile`` is then put into builtins)::

    kernprof -l -v examples/async_example.py

or plainly with ``python examples/async_example.py``. The report shows, per
line, the time spent running and the time spent suspended at an ``await``.
It finishes in well under a second.
"""

import asyncio
import hashlib
import json

try:
    profile  # noqa: B018 - injected into builtins by kernprof -l
except NameError:
    def profile(func):
        return func

LATENCY = {"users": 0.05, "orders": 0.08, "stock": 0.03}


@profile
async def fetch(resource, page=0):
    """Pretend to fetch one page of a resource over the network."""
    await asyncio.sleep(LATENCY[resource])
    rows = [{"id": page * 10 + i, "kind": resource} for i in range(10)]
    return json.dumps(rows)


@profile
async def pages(resource, count):
    """Yield the parsed pages of a resource, fetching them one by one."""
    for page in range(count):
        body = await fetch(resource, page)
        yield json.loads(body)


def checksum(rows, rounds=2000):
    digest = b""
    for row in rows:
        data = json.dumps(row).encode()
        for _ in range(rounds // len(rows)):
            digest = hashlib.sha256(digest + data).digest()
    return digest.hex()[:16]


@profile
async def main():
    bodies = await asyncio.gather(*(fetch(name) for name in LATENCY))
    rows = [row for body in bodies for row in json.loads(body)]
    async for page in pages("orders", 3):
        rows.extend(page)
    digest = checksum(rows)  # CPU-bound: active time, no await
    print(f"{len(rows)} rows, checksum {digest}")
    return digest


if __name__ == "__main__":
    asyncio.run(main())
