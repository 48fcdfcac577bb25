"""A small synchronous program to line-profile: word statistics and primes.

Run it under the line profiler (``profile`` is then put into builtins)::

    kernprof -l -v examples/sync_example.py

or plainly, with ``python examples/sync_example.py``: ``profile`` is then a
no-op decorator defined below. It finishes in well under a second.
"""

import re
import time
from collections import Counter

try:
    profile  # noqa: B018 - injected into builtins by kernprof -l
except NameError:
    def profile(func):
        return func

TEXT = """
It was the best of times, it was the worst of times, it was the age of
wisdom, it was the age of foolishness, it was the epoch of belief, it was
the epoch of incredulity, it was the season of Light, it was the season of
Darkness, it was the spring of hope, it was the winter of despair.
""" * 200

STOP_WORDS = frozenset({"it", "was", "the", "of"})


@profile
def tokenize(text):
    """Yield the lower-cased words of ``text``, one at a time."""
    for match in re.finditer(r"[A-Za-z']+", text):
        word = match.group().lower()
        if word in STOP_WORDS:
            continue
        yield word


class WordStats:
    def __init__(self):
        self.counts = Counter()
        self.longest = ""

    @profile
    def add(self, word):
        self.counts[word] += 1
        if len(word) > len(self.longest):
            self.longest = word

    def top(self, n):
        return self.counts.most_common(n)


@profile
def primes_up_to(limit):
    """Sieve of Eratosthenes: return the primes <= limit."""
    sieve = bytearray([1]) * (limit + 1)
    sieve[0:2] = b"\x00\x00"
    for n in range(2, int(limit ** 0.5) + 1):
        if sieve[n]:
            sieve[n * n::n] = bytes(len(range(n * n, limit + 1, n)))
    return [n for n, is_prime in enumerate(sieve) if is_prime]


@profile
def main():
    stats = WordStats()
    for word in tokenize(TEXT):
        stats.add(word)
    time.sleep(0.01)  # stands in for I/O: time, but no work
    primes = primes_up_to(200_000)
    print("top words:", stats.top(3))
    print("longest word:", stats.longest)
    print(f"{len(primes)} primes below 200000, the last is {primes[-1]}")
    return stats, primes


if __name__ == "__main__":
    main()
