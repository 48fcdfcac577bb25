"""Plain stats objects: what the reporters read and ``.lprof`` files hold.

Nothing here needs the C extension except :func:`load_stats`, which imports
it only when called.  The reporters work on :class:`LineStats` alone, so
they can be tested on hand-made data.
"""

from __future__ import annotations

import json
import os
import pickletools
import shlex
from dataclasses import dataclass, field
from typing import IO, Any, Dict, Iterable, List, Mapping, NamedTuple, Optional, Tuple, Union

from .errors import LineprofError

__all__ = [
    "KINDS",
    "SCHEMA_VERSION",
    "LineRecord",
    "TaskRecord",
    "FunctionStats",
    "LineStats",
    "merge_stats",
    "load_stats",
]

#: The function kinds, as stored in profiles and in the JSON output.
KINDS = ("function", "generator", "coroutine", "async_generator")

#: Version of the public JSON format (``docs/lineprof.schema.json``).
SCHEMA_VERSION = 1

DEFAULT_UNIT = 1e-9

# line_profiler's key: (filename, firstlineno, funcname).
TimingsKey = Tuple[str, int, str]


class LineRecord(NamedTuple):
    """Counters for one source line; times are integers in the stats' unit."""

    hits: int
    time: int
    await_: int = 0
    max_: int = 0


class TaskRecord(NamedTuple):
    """Totals of one asyncio task, or of a fold of finished tasks; times in the stats' unit.

    ``time`` and ``await_`` are the active and suspended time of the task's
    outermost profiled frames; ``first``/``last`` are when it was first and
    last seen, counted from the creation of the recording profiler.  A fold
    (``folded > 0``) sums ``folded`` finished tasks of one coroutine: its
    ``id`` is 0 and its ``name`` is ``coro``.  See docs/binding.md.
    """

    id: int
    name: str
    coro: str
    time: int
    await_: int
    first: int = 0
    last: int = 0
    folded: int = 0

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TaskRecord":
        """Return the record for a task dict of the extension or of JSON v1.

        ``id``, ``name``, ``coro``, ``time`` and ``await`` are required,
        ``first``, ``last`` and ``folded`` default to 0, other keys are
        ignored.  Raises KeyError, TypeError or ValueError (a negative or
        non-integer count) for anything else.
        """
        counts = [_count(data[k]) for k in ("id", "time", "await")]
        extra = [_count(data.get(k, 0)) for k in ("first", "last", "folded")]
        name, coro = data["name"], data["coro"]
        if not isinstance(name, str) or not isinstance(coro, str):
            raise TypeError("task name and coro must be strings")
        return cls(counts[0], name, coro, counts[1], counts[2], *extra)

    def to_dict(self) -> Dict[str, Any]:
        """Return the JSON v1 object of this record (key ``await``, not ``await_``)."""
        return {"id": self.id, "name": self.name, "coro": self.coro, "time": self.time,
                "await": self.await_, "first": self.first, "last": self.last,
                "folded": self.folded}

    @property
    def wall(self) -> int:
        """Return ``time + await_``."""
        return self.time + self.await_

    @property
    def is_fold(self) -> bool:
        """Return True for a fold of several finished tasks."""
        return self.folded > 0

    @property
    def count(self) -> int:
        """Return how many tasks this record stands for: ``folded`` for a fold, else 1."""
        return self.folded if self.folded > 0 else 1


def _count(value: Any) -> int:
    """Return ``value`` as a non-negative int; raise TypeError/ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {value!r}")
    if value < 0:
        raise ValueError(f"expected a non-negative integer, got {value}")
    return value


def _task_record(task: Union[TaskRecord, Mapping[str, Any]]) -> TaskRecord:
    if isinstance(task, TaskRecord):
        return task
    if isinstance(task, Mapping):
        return TaskRecord.from_dict(task)
    raise TypeError(f"a task must be a TaskRecord or a dict, not {type(task).__name__}")


@dataclass
class FunctionStats:
    """The per-line counters of one profiled function.

    ``lines`` maps a line number to its :class:`LineRecord`; lines that never
    ran may be absent.
    """

    file: str
    name: str
    firstlineno: int
    kind: str = "function"
    lines: Dict[int, LineRecord] = field(default_factory=dict)

    @property
    def key(self) -> TimingsKey:
        """Return line_profiler's key for this function: (file, firstlineno, name)."""
        return (self.file, self.firstlineno, self.name)

    @property
    def total_time(self) -> int:
        """Return the active time summed over all lines."""
        return sum(r.time for r in self.lines.values())

    @property
    def total_await(self) -> int:
        """Return the suspended time summed over all lines."""
        return sum(r.await_ for r in self.lines.values())

    @property
    def total_hits(self) -> int:
        """Return the hits summed over all lines."""
        return sum(r.hits for r in self.lines.values())

    @property
    def is_async(self) -> bool:
        """Return True for kinds that can suspend (coroutines and generators)."""
        return self.kind != "function"

    def timings(self) -> List[Tuple[int, int, int]]:
        """Return ``[(lineno, hits, time), ...]`` sorted by line, as line_profiler has it."""
        return [(ln, r.hits, r.time) for ln, r in sorted(self.lines.items())]


class LineStats:
    """A whole profile: functions, their line counters, tasks and metadata.

    ``timings`` and ``unit`` read like line_profiler's ``LineStats``, so code
    written for line_profiler's stats keeps working; ``functions`` holds the
    richer data (await time, longest stretch, function kind) and ``tasks``
    the asyncio tasks, as :class:`TaskRecord`.  Task dicts given to the
    constructor or assigned to ``tasks`` are converted with
    :meth:`TaskRecord.from_dict` (which raises KeyError, TypeError or
    ValueError for a malformed one).
    """

    def __init__(
        self,
        functions: Iterable[FunctionStats] = (),
        unit: float = DEFAULT_UNIT,
        tasks: Iterable[Union[TaskRecord, Mapping[str, Any]]] = (),
        meta: Optional[Mapping[str, Any]] = None,
    ) -> None:
        self.functions: List[FunctionStats] = list(functions)
        self.unit = float(unit)
        self.tasks = tasks  # the setter converts dicts to TaskRecord
        self.meta: Dict[str, Any] = dict(meta or {})
        #: In a snapshot written by the worker (``kernprof -i``, the live
        #: view): the line each thread was running, see :func:`now_entries`.
        #: A merge of several profiles has none.
        self.now: List[Dict[str, Any]] = []

    @property
    def tasks(self) -> List[TaskRecord]:
        """The task records; assigning an iterable of records or dicts converts it to a list."""
        return self._tasks

    @tasks.setter
    def tasks(self, tasks: Iterable[Union[TaskRecord, Mapping[str, Any]]]) -> None:
        self._tasks: List[TaskRecord] = [_task_record(t) for t in tasks]

    # -- construction -------------------------------------------------

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "LineStats":
        """Build stats from the extension's dict or from parsed JSON v1.

        Lines may be ``(lineno, hits, time[, await, max])`` sequences or
        dicts with those keys; tasks are dicts (see :meth:`TaskRecord.from_dict`).
        Raises :class:`LineprofError` if the data does not have that shape.
        """
        try:
            functions = []
            for fd in data["functions"]:
                lines = {}
                for item in fd["lines"]:
                    if isinstance(item, Mapping):
                        rec = (item["lineno"], item["hits"], item["time"],
                               item.get("await", 0), item.get("max", 0))
                    else:
                        rec = tuple(item) + (0, 0)
                    lineno = int(rec[0])
                    lines[lineno] = LineRecord(*(int(v) for v in rec[1:5]))
                kind = fd.get("kind", "function")
                if kind not in KINDS:
                    raise ValueError(f"unknown function kind {kind!r}")
                functions.append(FunctionStats(
                    str(fd["file"]), str(fd["name"]), int(fd["firstlineno"]),
                    kind, lines))
            stats = cls(functions, data.get("unit", DEFAULT_UNIT),
                        data.get("tasks") or (), data.get("meta") or {})
        except (KeyError, TypeError, ValueError) as exc:
            raise LineprofError(f"malformed stats: {exc}") from None
        if len({fs.key for fs in stats.functions}) < len(stats.functions):
            stats = cls.merge(stats)  # one entry per (file, firstlineno, name)
        return stats

    @classmethod
    def from_timings(
        cls, timings: Mapping[TimingsKey, Iterable[Tuple[int, int, int]]],
        unit: float = DEFAULT_UNIT,
    ) -> "LineStats":
        """Build stats from line_profiler-style ``timings``; every function is plain."""
        functions = []
        for (file, firstlineno, name), entries in timings.items():
            lines = {ln: LineRecord(hits, time) for ln, hits, time in entries}
            functions.append(FunctionStats(file, name, firstlineno, "function", lines))
        return cls(functions, unit)

    @classmethod
    def merge(cls, *stats: "LineStats") -> "LineStats":
        """Return new stats summing hits, time and await per line, with the max of ``max_``.

        Functions match on (file, firstlineno, name); their order is that of
        first appearance.  Stats in different units are converted to the
        finest one.  With no argument, returns empty stats.

        Task records are concatenated in argument order, never combined.
        Task ids are per profile, so they are renumbered to stay unique:
        the ids of each argument are shifted by the largest id of the
        arguments before it (the first argument's ids are kept, and a single
        argument is returned with its own ids).  Folds keep id 0.
        """
        if not stats:
            return cls()
        unit = min(s.unit for s in stats)
        merged: Dict[TimingsKey, FunctionStats] = {}
        tasks: List[TaskRecord] = []
        meta: Dict[str, Any] = {}
        id_offset = 0
        for s in stats:
            scale = s.unit / unit
            for fs in s.functions:
                target = merged.get(fs.key)
                if target is None:
                    target = merged[fs.key] = FunctionStats(
                        fs.file, fs.name, fs.firstlineno, fs.kind, {})
                for lineno, r in fs.lines.items():
                    old = target.lines.get(lineno, LineRecord(0, 0, 0, 0))
                    target.lines[lineno] = LineRecord(
                        old.hits + r.hits,
                        old.time + _scaled(r.time, scale),
                        old.await_ + _scaled(r.await_, scale),
                        max(old.max_, _scaled(r.max_, scale)),
                    )
            for t in s.tasks:
                tasks.append(t._replace(
                    id=t.id + id_offset if t.id else 0,
                    time=_scaled(t.time, scale), await_=_scaled(t.await_, scale),
                    first=_scaled(t.first, scale), last=_scaled(t.last, scale)))
            id_offset += max((t.id for t in s.tasks), default=0)
            for k, v in s.meta.items():
                meta.setdefault(k, v)
        return cls(merged.values(), unit, tasks, meta)

    # -- line_profiler compatibility -------------------------------------

    @property
    def timings(self) -> Dict[TimingsKey, List[Tuple[int, int, int]]]:
        """Return ``{(file, firstlineno, name): [(lineno, hits, time), ...]}`` like line_profiler."""
        out: Dict[TimingsKey, List[Tuple[int, int, int]]] = {}
        for fs in self.functions:
            out.setdefault(fs.key, []).extend(fs.timings())
        return out

    def __add__(self, other: "LineStats") -> "LineStats":
        return type(self).merge(self, other)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LineStats):
            return NotImplemented
        return (self.unit == other.unit and self.functions == other.functions
                and self.tasks == other.tasks)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({len(self.functions)} functions, "
                f"unit={self.unit:g})")

    # -- output --------------------------------------------------------

    def to_dict(self) -> Dict[str, Any]:
        """Return the public JSON v1 object (see ``docs/lineprof.schema.json``)."""
        return {
            "format": "lineprof",
            "version": SCHEMA_VERSION,
            "unit": self.unit,
            "functions": [
                {
                    "file": fs.file,
                    "name": fs.name,
                    "firstlineno": fs.firstlineno,
                    "kind": fs.kind,
                    "lines": [
                        {"lineno": ln, "hits": r.hits, "time": r.time,
                         "await": r.await_, "max": r.max_}
                        for ln, r in sorted(fs.lines.items())
                    ],
                }
                for fs in self.functions
            ],
            "tasks": [t.to_dict() for t in self.tasks],
            **({"now": list(self.now)} if self.now else {}),
        }

    def to_json(self, indent: Optional[int] = None) -> str:
        """Return :meth:`to_dict` serialised as a JSON string."""
        return json.dumps(self.to_dict(), indent=indent)

    def print(
        self,
        stream: Optional[IO[str]] = None,
        output_unit: Optional[float] = None,
        stripzeros: bool = False,
        details: bool = True,
        summarize: bool = False,
        sort: bool = False,
        rich: bool = False,
        *,
        show_max: bool = False,
        tasks: bool = False,
        top: int = 10,
        slow: Optional[float] = None,
    ) -> None:
        """Write the text report (see :func:`lineprof.report.show_text`); returns None."""
        from .report import show_text

        show_text(self, output_unit=output_unit, stream=stream,
                  stripzeros=stripzeros, details=details, summarize=summarize,
                  sort=sort, rich=rich, show_max=show_max, tasks=tasks, top=top,
                  slow=slow)


def _scaled(value: int, scale: float) -> int:
    return value if scale == 1.0 else int(round(value * scale))


def merge_stats(stats: Iterable[LineStats]) -> LineStats:
    """Return the sum of ``stats`` (see :meth:`LineStats.merge`)."""
    return LineStats.merge(*stats)


# -- reading files ------------------------------------------------------

def load_stats(path: "os.PathLike[str] | str") -> LineStats:
    """Read a ``.lprof`` file written by lineprof and return its stats.

    Raises :class:`LineprofError` with the file name in the message for a
    missing file, a directory, an empty or damaged file, or a
    line_profiler pickle.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise LineprofError(f"{path}: is a directory, not a profile file")
    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        raise LineprofError(f"{path}: no such file") from None
    except OSError as exc:
        raise LineprofError(f"{path}: {exc.strerror or exc}") from None
    if size == 0:
        raise LineprofError(f"{path}: empty file, not a lineprof profile")
    try:
        from . import _lineprof
    except ImportError as exc:
        _raise_if_pickle(path)
        raise LineprofError(
            f"cannot read {path}: the lineprof C extension is not available ({exc})"
        ) from None
    try:
        data = _lineprof.read_file(path)
    except _lineprof.FormatError as exc:
        _raise_if_pickle(path)
        if path.endswith((".py", ".pyw")) and "bad magic" in str(exc):
            cmd = "kernprof -l " + shlex.quote(path)
            raise LineprofError(f"{path} is a Python script, not a profile: profile it with "
                                f"{cmd}, then view {shlex.quote(path + '.lprof')}") from None
        raise LineprofError(f"{path}: {exc}") from None
    except OSError as exc:
        raise LineprofError(f"{path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:  # a name in the file is not UTF-8
        raise LineprofError(f"{path}: profile is malformed (a name is not valid UTF-8)") from None
    stats = LineStats.from_dict(data)
    stats.now = now_entries(data)
    return stats


def now_entries(raw: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """Return the running lines of a snapshot's raw dict, names resolved, longest first.

    Each is ``{"thread", "task" (its name or None), "function", "file",
    "lineno", "elapsed"}``, elapsed in the snapshot's unit.  Empty for a
    profile that is not a snapshot.
    """
    funcs = raw["functions"]
    names = {t["id"]: t["name"] for t in raw.get("tasks", ()) if t.get("id")}
    out = []
    for n in raw.get("now", ()):
        f = funcs[n["func"]]
        out.append({"thread": n["thread"],
                    "task": names.get(n["task"]) if n["task"] is not None else None,
                    "function": f["name"], "file": f["file"],
                    "lineno": n["lineno"], "elapsed": n["elapsed"]})
    out.sort(key=lambda e: -e["elapsed"])
    return out


_LINE_PROFILER_MARKS = ("line_profiler", "LineStats", "timings")


def _raise_if_pickle(path: str) -> None:
    """Raise LineprofError if ``path`` holds a pickle; never unpickles it."""
    try:
        with open(path, "rb") as f:
            head = f.read(2)
            f.seek(0)
            kind = _sniff_pickle(f)
    except OSError:
        return
    looks_pickled = len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5
    if kind == "line_profiler" or (looks_pickled and kind != "pickle"):
        cmd = "python -m line_profiler " + shlex.quote(path)
        raise LineprofError(
            f"{path} is a line_profiler pickle, not a lineprof profile; "
            f"view it with: {cmd}")
    if kind == "pickle":
        raise LineprofError(f"{path} is a Python pickle, not a lineprof profile")


def _sniff_pickle(f: IO[bytes], max_ops: int = 10000) -> Optional[str]:
    """Return "line_profiler", "pickle" or None by reading opcodes only (no code runs)."""
    try:
        for n, (op, arg, _pos) in enumerate(pickletools.genops(f)):
            if isinstance(arg, str) and any(m in arg for m in _LINE_PROFILER_MARKS):
                return "line_profiler"
            if n == 0 and op.name != "PROTO" or n >= max_ops:
                return None
            if op.name == "STOP":
                return "pickle"
    except Exception:  # not a pickle, or a truncated one
        return None
    return None

