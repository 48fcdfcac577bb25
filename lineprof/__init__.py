"""lineprof: an asyncio-aware line profiler with a C core.

The front end mirrors line_profiler: :class:`LineProfiler`, the global
:data:`profile` decorator, ``kernprof -l`` and ``python -m lineprof``.
Coroutines, generators and async generators are reported with the time
they spend suspended at each line.

Importing this package does not import the C extension; creating a
:class:`LineProfiler` or reading a profile does.
"""

from __future__ import annotations

from ._version import __version__
from .api import LineProfiler
from .errors import LineprofError
from .explicit import GlobalProfiler, profile
from .report import show_text
from .stats import FunctionStats, LineRecord, LineStats, load_stats, merge_stats

__all__ = [
    "FunctionStats",
    "GlobalProfiler",
    "LineProfiler",
    "LineRecord",
    "LineStats",
    "LineprofError",
    "load_stats",
    "merge_stats",
    "profile",
    "show_text",
    "__version__",
]

