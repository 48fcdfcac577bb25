"""Hit-count truth cases in 3.10+ syntax: ``match``, parenthesized context managers.

tests/truth_cases.py imports it on 3.10 and newer only; see there.
"""

from truth_registry import case


def matching(value):
    """A docstring is not a line event."""
    match value:
        case 0:
            kind = "zero"
        case [x, y]:
            kind = f"pair {x} {y}"
        case {"k": v}:
            kind = f"map {v}"
        case str() as s if len(s) > 2:
            kind = "long str"
        case _:
            kind = "other"
    return kind


@case(matching)
def match_workload():
    return [matching(v) for v in (0, [1, 2], {"k": 3}, "abcd", "a", 5.0)]


class Flagged:
    def __init__(self, flag):
        self.flag = flag

    def __enter__(self):
        return self

    def __exit__(self, et, ev, tb):
        return None


def parenthesized_withs(flag):
    log = []
    with (
        Flagged(flag) as m1,
        Flagged(not flag) as m2,
    ):
        log.append((m1.flag, m2.flag))
    return log


@case(parenthesized_withs, Flagged.__enter__, Flagged.__exit__)
def parenthesized_with_workload():
    return [parenthesized_withs(f) for f in (True, False)]
