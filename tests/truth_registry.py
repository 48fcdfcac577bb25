"""The registry of hit-count truth cases: ``CASES`` and the ``@case`` decorator.

tests/truth_cases.py registers its cases here, and tests/truth_cases_310.py
(3.10+ syntax) its own; tests read :data:`CASES` through truth_cases.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Tuple

CASES: Dict[str, Tuple[List[Any], Callable[[], Any]]] = {}


def case(*funcs: Any) -> Callable[[Callable[[], Any]], Callable[[], Any]]:
    """Register the decorated workload as a case profiling ``funcs``."""

    def deco(body: Callable[[], Any]) -> Callable[[], Any]:
        name = body.__name__
        assert name not in CASES, name
        CASES[name] = (list(funcs), body)
        return body

    return deco
