"""Target functions for the hit-count tests, each with a deterministic driver.

Every case is ``(funcs, body)``: the functions whose lines are counted and a
zero-argument workload that calls them. tests/test_hits.py runs each
workload twice, once under ``sys.settrace`` (the truth) and once under
lineprof, and compares the per-line hit counts of every function exactly.

This module is not a test module, so pytest does not rewrite it: the code
objects here are exactly what the source says. Keep the workloads free of
randomness, wall-clock dependence and hash-order dependence.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sys
from typing import Any, List

from truth_registry import CASES, case


# -- branches ------------------------------------------------------------

def branches(x):
    if x < 0:
        sign = -1
    elif x == 0:
        sign = 0
    elif x < 10:
        sign = 1
    else:
        sign = 2
    big = (x > 100
           and x % 2 == 0
           or x == -5)
    label = "neg" if sign < 0 else (
        "zero" if sign == 0 else "pos")
    if big: label += "!"
    if x == 3:
        pass
    else:
        label = label.upper()
    return sign, label, big


@case(branches)
def branch_workload():
    return [branches(x) for x in (-5, -1, 0, 3, 7, 10, 102, 103, 1000)]


# -- loops ----------------------------------------------------------------

def loops(n):
    total = 0
    for i in range(n):
        if i % 3 == 0:
            continue
        if i > 7:
            break
        total += i
    else:
        total = -total
    j = 0
    while j < n:
        j += 2
        if j == 6:
            continue
        total += j
    else:
        total += 100
    while True:
        j -= 1
        if j <= 0:
            break
    for a in range(2):
        for b in range(3):
            if a == b:
                break
            total += a * b
    for _ in []:
        total = 0
    return total


@case(loops)
def loop_workload():
    return [loops(n) for n in (0, 1, 4, 9, 12)]


def one_line_loops(n):
    total = 0
    for i in range(n): total += i
    while total < 3 * n: total += 1
    for i in range(n): pass
    return total


@case(one_line_loops)
def one_line_loop_workload():
    """A loop whose body is on the header's line: settrace reports a 'line'
    event each time the loop goes back to that line."""
    return [one_line_loops(n) for n in (0, 1, 4)]


# -- try / except / finally --------------------------------------------------

class Oops(Exception):
    pass


def trying(x):
    log = []
    try:
        log.append("try")
        if x == 1:
            raise ValueError(x)
        if x == 2:
            raise Oops(x)
        if x == 3:
            return "early"
    except ValueError as e:
        log.append(str(e))
    except (KeyError, Oops):
        log.append("oops")
        try:
            {}["missing"]
        except KeyError:
            log.append("nested")
        finally:
            log.append("inner finally")
    else:
        log.append("else")
    finally:
        log.append("finally")
    try:
        if x == 4:
            raise RuntimeError("out")
    finally:
        log.append("last")
    return log


def reraise(x):
    try:
        trying(x)
    except RuntimeError:
        if x == 4:
            raise
    return x


@case(trying, reraise)
def try_workload():
    out = []
    for x in range(6):
        try:
            out.append(reraise(x))
        except RuntimeError as e:
            out.append(repr(e))
    return out


# -- with -------------------------------------------------------------------

class Managed:
    def __init__(self, suppress):
        self.suppress = suppress
        self.log = []

    def __enter__(self):
        self.log.append("enter")
        return self

    def __exit__(self, et, ev, tb):
        self.log.append(("exit", et is not None))
        if et is not None and self.suppress:
            return True
        return False


@contextlib.contextmanager
def cm_gen(tag, log):
    log.append(("open", tag))
    try:
        yield tag
    except KeyError:
        log.append("swallowed")
    finally:
        log.append(("close", tag))


def withs(x):
    log = []
    with Managed(False) as m:
        log.append(m.suppress)
    with Managed(True) as m:
        if x:
            raise KeyError(x)
        log.append("not raised")
    with cm_gen("a", log) as a, \
            cm_gen("b", log) as b:
        log.append(a + b)
    with cm_gen("c", log):
        if x > 1:
            raise KeyError("c")
    with contextlib.suppress(ZeroDivisionError):
        1 / (x - 1)
        log.append("divided")
    with Managed(True) as m1, Managed(False) as m2:
        log.append((m1.suppress, m2.suppress))
    return log


@case(withs, Managed.__enter__, Managed.__exit__, cm_gen.__wrapped__)
def with_workload():
    return [withs(x) for x in (0, 1, 2)]


# -- comprehensions -----------------------------------------------------------

def comprehensions(n):
    squares = [i * i for i in range(n)]
    evens = {i: i // 2
             for i in range(n)
             if i % 2 == 0}
    letters = {c for c in "abracadabra"}
    gen = sum(x for x in squares if x > 3)
    nested = [[a * b for b in range(3)] for a in range(n)]
    multi = [
        (a, b)
        for a in range(n)
        for b in range(a)
        if (a + b) % 2
    ]
    first = next((x for x in squares if x > 10), None)
    return squares, evens, sorted(letters), gen, nested, multi, first


@case(comprehensions)
def comprehension_workload():
    return [comprehensions(n) for n in (0, 3, 6)]


# -- multi-line statements ------------------------------------------------------

def fmt3(a, b, c=0, *, d=1):
    return f"{a}-{b}-{c}-{d}"


def multiline(n):
    s = fmt3(
        n,
        n + 1,
        c=n
        * 2,
        d=3,
    )
    table = {
        "a": n,
        "b": [n, n + 1,
              n + 2],
        "c": fmt3(1,
                  2),
    }
    words = ("  Hello World  "
             .strip()
             .lower()
             .replace("world", str(n))
             .split())
    total = n + \
        n * 2 + \
        n * 3
    if (n > 1
            and total > 3
            and len(words) == 2):
        total += 1
    text = f"""{s}
{table['a']}
{total}"""
    return (s,
            table,
            words,
            total,
            text)


@case(multiline, fmt3)
def multiline_workload():
    return [multiline(n) for n in (0, 1, 5)]


# -- recursion --------------------------------------------------------------

def fib(n):
    if n < 2:
        return n
    return (fib(n - 1)
            + fib(n - 2))


def is_even(n):
    if n == 0:
        return True
    return is_odd(n - 1)


def is_odd(n):
    if n == 0:
        return False
    return is_even(n - 1)


@case(fib, is_even, is_odd)
def recursion_workload():
    return fib(9), is_even(11), is_odd(7)


# -- early return -------------------------------------------------------------

def find(items, target):
    if not items:
        return -1
    for i, item in enumerate(items):
        if item == target:
            return i
        if item > target:
            return -2
    return -3


@case(find)
def early_return_workload():
    return [find(xs, t) for xs, t in (([], 1), ([1, 2, 3], 2), ([1, 5], 3), ([1, 2], 9))]


# -- exceptions propagating out ------------------------------------------------

def level3(x):
    if x:
        raise ValueError("deep")
    return 3


def level2(x):
    r = level3(x)
    return r + 1


def level1(x):
    try:
        return level2(x)
    finally:
        x = None


@case(level1, level2, level3)
def propagate_workload():
    out = []
    for x in (0, 1, 0, 1):
        try:
            out.append(level1(x))
        except ValueError as e:
            out.append(str(e))
    return out


# -- generators -------------------------------------------------------------

def countdown(n):
    while n > 0:
        received = yield n
        if received:
            n -= received
        n -= 1
    return "done"


def delegate(n):
    got = yield from countdown(n)
    yield got
    yield from (i for i in range(2))


def guarded(n):
    try:
        for i in range(n):
            yield i
    finally:
        n = -1


def consume_gens():
    out = list(countdown(3))
    g = countdown(10)
    out.append(next(g))
    out.append(g.send(3))
    out.append(g.send(0))
    out.extend(delegate(2))
    g2 = guarded(5)
    out.append(next(g2))
    out.append(next(g2))
    g2.close()
    for v in guarded(4):
        if v == 2:
            break
    g3 = guarded(3)
    next(g3)
    try:
        g3.throw(KeyError("t"))
    except KeyError:
        out.append("thrown")
    return out


@case(countdown, delegate, guarded, consume_gens)
def generator_workload():
    return consume_gens()


# -- lambdas -------------------------------------------------------------------

by_second = lambda pair: pair[1]  # noqa: E731

multi_lambda = (lambda a,  # noqa: E731
                b:
                a * 10
                + b)


def uses_lambdas(items):
    ordered = sorted(items, key=by_second)
    combined = []
    for a, b in ordered:
        combined.append(multi_lambda(a, b))
    return ordered, combined


@case(("by_second", by_second), ("multi_lambda", multi_lambda), uses_lambdas)
def lambda_workload():
    return uses_lambdas([(1, 3), (2, 1), (3, 2)])


# -- decorators -----------------------------------------------------------------

def logged(func):
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        result = func(*args, **kwargs)
        return result
    return wrapper


def repeat(n):
    def deco(func):
        return func
    return deco


@logged
@repeat(
    2)
def decorated(x):
    return x * 2


def defines_decorated(x):
    @logged
    @repeat(3)
    def inner(y):
        return y + x

    @staticmethod
    def s():
        return 1

    class K:
        @property
        def p(self):
            return x

    return inner(1), K().p


@case(decorated.__code__, decorated.__wrapped__, defines_decorated, logged, repeat)
def decorator_workload():
    return [decorated(i) for i in range(3)], defines_decorated(4)


# -- classes and methods ---------------------------------------------------------

class Account:
    rate = 2

    def __init__(self, balance):
        self.balance = balance

    def deposit(self, amount):
        if amount <= 0:
            raise ValueError("amount")
        self.balance += amount
        return self

    @classmethod
    def empty(cls):
        return cls(0)

    @staticmethod
    def check(amount):
        return amount > 0

    @property
    def doubled(self):
        return (self.balance
                * self.rate)


@case(Account.__init__, Account.deposit, Account.empty, Account.check, Account.doubled.fget)
def method_workload():
    a = Account.empty()
    a.deposit(3).deposit(4)
    try:
        a.deposit(-1)
    except ValueError:
        pass
    return a.doubled, Account.check(2), Account.check(-1)


# -- match, assert, del, misc statements ---------------------------------------------

def statements(value):
    """A docstring is not a line event."""
    kind = "other" if value is None else type(value).__name__
    assert kind, "never empty"
    tmp = [1, 2]
    del tmp[0]
    del tmp
    global _GLOBAL_COUNTER
    _GLOBAL_COUNTER += 1
    ...
    return kind


_GLOBAL_COUNTER = 0


@case(statements)
def statement_workload():
    return [statements(v) for v in (0, [1, 2], {"k": 3}, "abcd", "a", 5.0)]


# -- coroutines ------------------------------------------------------------------

class AsyncCM:
    async def __aenter__(self):
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, *exc):
        await asyncio.sleep(0)
        return False


async def leaf(i):
    await asyncio.sleep(0)
    if i % 2:
        await asyncio.sleep(0)
    return i


async def middle(n):
    total = 0
    for i in range(n):
        total += await leaf(i)
    async with AsyncCM():
        total += 1
    try:
        await failing()
    except ValueError:
        total += 10
    results = await asyncio.gather(leaf(1), leaf(2),
                                   leaf(3))
    return total + sum(results)


async def failing():
    await asyncio.sleep(0)
    raise ValueError("x")


def run_coroutines():
    return asyncio.run(middle(4))


@case(leaf, middle, failing, AsyncCM.__aenter__, AsyncCM.__aexit__)
def coroutine_workload():
    return run_coroutines()


# -- async generators ---------------------------------------------------------------

async def ticker(n):
    for i in range(n):
        await asyncio.sleep(0)
        yield i
        await asyncio.sleep(0)
    yield -1


async def agen_guarded():
    try:
        yield 1
        yield 2
    finally:
        await asyncio.sleep(0)


async def agen_consumer():
    out = []
    async for v in ticker(3):
        out.append(v)
    g = agen_guarded()
    out.append(await g.__anext__())
    await g.aclose()
    return out


@case(ticker, agen_guarded, agen_consumer)
def async_generator_workload():
    return asyncio.run(agen_consumer())


async def async_comprehension():
    out = [v async for v in ticker(2)]
    out.append([v async for v in ticker(3)
                if v >= 0])
    out.append([await leaf(i) for i in range(3)])
    return out


@case(ticker, leaf, async_comprehension)
def async_comprehension_workload():
    return asyncio.run(async_comprehension())


if sys.version_info >= (3, 10):  # match, parenthesized with: 3.10+ syntax
    import truth_cases_310  # noqa: E402,F401  (registers its cases)


def all_case_names() -> List[str]:
    """Return the case names in definition order."""
    return list(CASES)

