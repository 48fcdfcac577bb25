"""The four workloads of lineprof's bench, and nothing else.

This file is what the profilers profile, so it is kept short and stable:
every function sits below line 256. (On 3.12+ a sys.monitoring LINE callback
receives the line number as an int, and ints above 256 are not cached: a
function further down a file costs every hook one allocation per event.)

PROFILED maps each workload to the functions a line profiler is pointed at.
Function profilers (yappi, pyinstrument, cProfile) see everything anyway.

asyncio is imported by the asyncio workloads when they first run: importing
it costs about 170 million instructions, which the callgrind runs of the
other workloads should not pay at start-up.
"""
asyncio = None


def _load_asyncio():
    global asyncio
    import asyncio


# (1) Line-dense: one profiled function, five line events per iteration
# (the `for` line and the four lines of its body).
def dense(n):
    a = 0
    b = 1
    for i in range(n):
        a += i
        b ^= a
        a &= 0xFFFF
        b += 1
    return a + b


# (2) Call-heavy: many small calls, a generator, methods, and an exception
# that crosses a frame every 8th iteration. Only rare() is profiled, and it
# runs once per call_heavy(): this measures the cost to code NOT profiled.
class Vec:
    __slots__ = ("x", "y")

    def __init__(self, x, y):
        self.x = x
        self.y = y

    def add(self, other):
        return Vec(self.x + other.x, self.y + other.y)

    def norm1(self):
        return abs(self.x) + abs(self.y)


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def squares(n):
    for i in range(n):
        yield i * i


def get(d, k):
    return d[k]


def rare(n):
    half = n // 2
    return half + 1


def call_heavy(n):
    total = rare(n)
    d = {i: i for i in range(64)}
    v = Vec(0, 0)
    step = Vec(1, -1)
    for i in range(n):
        v = v.add(step)
        total += fib(7)
        total += sum(squares(4))
        if i & 7 == 0:
            try:
                total += get(d, -1)
            except KeyError:
                total += 1
        else:
            total += get(d, i & 63)
    return total + v.norm1()


# (3) asyncio: n tasks alive at once, each awaiting a profiled coroutine
# that suspends once.
async def leaf(i):
    x = i * 2
    await asyncio.sleep(0)
    return x


async def task_body(i):
    s = await leaf(i)
    s += 1
    return s


async def many_tasks(n):
    tasks = [asyncio.ensure_future(task_body(i)) for i in range(n)]
    results = await asyncio.gather(*tasks)
    return sum(results)


# (4) Memory: n short tasks, 1,000 alive at a time. A profiler whose memory
# is flat in the number of tasks ends with the same peak for any n.
async def short(i):
    await asyncio.sleep(0)
    return i


async def churn(n):
    total = 0
    for start in range(0, n, 1000):
        batch = [short(i) for i in range(start, min(n, start + 1000))]
        total += sum(await asyncio.gather(*batch))
    return total


def run_dense(n):
    return dense(n)


def run_call_heavy(n):
    return call_heavy(n)


def run_many_tasks(n):
    _load_asyncio()
    return asyncio.run(many_tasks(n))


def run_churn(n):
    _load_asyncio()
    return asyncio.run(churn(n))


WORKLOADS = {
    "line": run_dense,
    "calls": run_call_heavy,
    "asyncio": run_many_tasks,
    "memory": run_churn,
}

PROFILED = {
    "line": [dense],
    "calls": [rare],
    "asyncio": [leaf, task_body],
    "memory": [short, churn],
}
