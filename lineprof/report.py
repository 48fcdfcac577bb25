"""Text reports of :class:`~lineprof.stats.LineStats`.

For plain functions the output is line_profiler 5's ``show_text`` layout,
byte for byte.  Coroutines, generators and async generators get a
``Total await:`` header line and two more columns, ``Await`` (time
suspended at the line) and ``Max`` (longest single active stretch).

Two optional sections follow the function tables: the slow lines (every
line whose Max exceeded a threshold: lines that held the thread, and so an
event loop, that long) and the tasks (the asyncio tasks with the most wall,
active and await time).

``rich`` is optional: it is imported only when rich output is asked for.
"""

from __future__ import annotations

import inspect
import linecache
import os
import sys
import tempfile
from typing import IO, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from .errors import LineprofError
from .stats import FunctionStats, LineRecord, LineStats, TaskRecord

__all__ = [
    "COLUMN_WIDTHS",
    "RICH_MISSING",
    "show_text",
    "show_func",
    "show_summary",
    "show_slow_lines",
    "show_tasks",
    "slow_lines",
    "DEFAULT_SLOW",
    "DEFAULT_TOP",
    "rich_available",
    "require_rich",
    "get_code_block",
]

#: Minimum column widths; line_profiler's defaults plus ours.
COLUMN_WIDTHS: Dict[str, int] = {
    "line": 6, "hits": 9, "time": 12, "perhit": 8, "percent": 8,
    "await": 12, "max": 12,
}

_HEADERS = {
    "line": "Line #", "hits": "Hits", "time": "Time", "perhit": "Per Hit",
    "percent": "% Time", "await": "Await", "max": "Max",
}

RICH_MISSING = "rich output needs the 'rich' package; install it with: pip install rich"

SUMMARY_TEMPLATE = "%6.2f seconds - %s:%s - %s"

#: Default threshold of the slow-lines section, in seconds: asyncio's own
#: slow-callback threshold (``loop.slow_callback_duration``).
DEFAULT_SLOW = 0.1

#: Default number of rows in each table of the Tasks section.
DEFAULT_TOP = 10


def rich_available() -> bool:
    """Return True if the optional ``rich`` package can be imported."""
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True


def require_rich() -> None:
    """Return None if ``rich`` is importable; raise :class:`LineprofError` otherwise."""
    if not rich_available():
        raise LineprofError(RICH_MISSING)


def is_generated_code(filename: str) -> bool:
    """Return True for names of code with no file of its own (notebook cells)."""
    filename = os.path.normcase(filename)
    tmp = os.path.normcase(tempfile.gettempdir())
    return (filename.startswith("<generated")
            or filename.startswith("<ipython-input-")
            or filename.startswith(os.path.join(tmp, "ipykernel_"))
            or filename.startswith(os.path.join(tmp, "xpython_")))


def get_code_block(filename: str, lineno: int) -> List[str]:
    """Return the source lines of the block (def, class, ...) that starts at ``lineno``.

    Reads through :mod:`linecache`; returns ``[]`` if there is no such line.
    """
    lines = linecache.getlines(filename)[lineno - 1:]
    try:
        return inspect.getblock(lines)
    except Exception:  # the tokenizer gave up: show to the end of the file
        return lines


def _fmt_time(value: float, width: int) -> str:
    text = "%5.1f" % value
    if len(text) > width:
        text = "%5.3g" % value
    return text


def _display_rows(
    fs: FunctionStats, scalar: float, widths: Dict[str, int], async_cols: Sequence[str],
) -> Dict[int, Tuple[str, ...]]:
    """Format every recorded line's cells, as line_profiler does."""
    total_time = fs.total_time
    display: Dict[int, Tuple[str, ...]] = {}
    for lineno, rec in sorted(fs.lines.items()):
        percent = "" if total_time == 0 else "%5.1f" % (100 * rec.time / total_time)
        time_disp = _fmt_time(rec.time * scalar, widths["time"])
        if rec.hits:
            perhit_disp = _fmt_time(float(rec.time) * scalar / rec.hits, widths["perhit"])
        else:  # await-only line: no per-hit figure
            perhit_disp = ""
        hits_disp = "%d" % rec.hits
        if len(hits_disp) > widths["hits"]:
            hits_disp = "%g" % rec.hits
        row: Tuple[str, ...] = (hits_disp, time_disp, perhit_disp, percent)
        for col in async_cols:
            value = rec.await_ if col == "await" else rec.max_
            row += (_fmt_time(value * scalar, widths[col]) if value else "",)
        display[lineno] = row
    return display


def show_func(
    fs: FunctionStats,
    unit: float,
    output_unit: Optional[float] = None,
    stream: Optional[IO[str]] = None,
    stripzeros: bool = False,
    rich: bool = False,
    *,
    show_max: bool = False,
) -> None:
    """Write the table for one function to ``stream`` (default stdout); returns None.

    With ``stripzeros``, writes nothing for a function that was never hit.
    """
    if stream is None:
        stream = sys.stdout
    if stripzeros and fs.total_hits == 0:
        return
    if rich and not rich_available():
        rich = False
    if output_unit is None:
        output_unit = unit
    scalar = unit / output_unit

    if fs.is_async:
        async_cols: Tuple[str, ...] = ("await", "max")
    elif show_max:
        async_cols = ("max",)
    else:
        async_cols = ()

    filename = fs.file
    start_lineno = fs.firstlineno
    linenos = sorted(fs.lines)
    stream.write("Total time: %g s\n" % (fs.total_time * unit))
    if fs.is_async:
        stream.write("Total await: %g s\n" % (fs.total_await * unit))
    if os.path.exists(filename) or is_generated_code(filename):
        stream.write(f"File: {filename}\n")
        stream.write(f"Function: {fs.name} at line {start_lineno}\n")
        if os.path.exists(filename):
            linecache.checkcache(filename)
        sublines = get_code_block(filename, start_lineno)
    else:
        stream.write("\n")
        stream.write(f"Could not find file {filename}\n")
        stream.write("Are you sure you are running this program from the same directory\n")
        stream.write("that you ran the profiler from?\n")
        stream.write("Continuing without the function's contents.\n")
        # Blank source lines, so the numbers still show.
        nlines = 1 if not linenos else max(linenos) - min(min(linenos), start_lineno) + 1
        sublines = [""] * nlines

    widths = dict(COLUMN_WIDTHS)
    display = _display_rows(fs, scalar, widths, async_cols)
    # Widen columns to fit big numbers.
    cols = ("line", "hits", "time", "perhit", "percent") + async_cols
    for i, col in enumerate(cols[1:]):
        if col != "percent" and display:
            widths[col] = max(widths[col], max(len(row[i]) for row in display.values()))

    lhs_template = " ".join("%" + str(widths[c]) + "s" for c in cols)
    template = lhs_template + "  %-s"
    header_line = template % (tuple(_HEADERS[c] for c in cols) + ("Line Contents",))
    stream.write("\n")
    stream.write(header_line)
    stream.write("\n")
    stream.write("=" * len(header_line))
    stream.write("\n")

    empty = ("",) * (len(cols) - 1)
    rows = list(zip(range(start_lineno, start_lineno + len(sublines)), sublines))
    if rich:
        _write_rich_rows(stream, lhs_template, rows, display, empty)
    else:
        for lineno, line in rows:
            cells = display.get(lineno, empty)
            code = line.rstrip("\n").rstrip("\r")
            try:
                stream.write(template % ((lineno,) + cells + (code,)))
            except UnicodeEncodeError:
                encoding = getattr(stream, "encoding", None) or "ascii"
                code = code.encode(encoding, errors="backslashreplace").decode(encoding)
                stream.write(template % ((lineno,) + cells + (code,)))
            stream.write("\n")
    stream.write("\n")


def _write_rich_rows(stream, lhs_template, rows, display, empty) -> None:
    """Write the table body with rich: numbers highlighted, code syntax-coloured."""
    from rich.console import Console
    from rich.highlighter import ReprHighlighter
    from rich.syntax import Syntax
    from rich.table import Table
    from rich.text import Text

    lhs_lines = [lhs_template % ((lineno,) + display.get(lineno, empty)) for lineno, _ in rows]
    code_lines = [line.rstrip("\n").rstrip("\r") for _, line in rows]
    lhs = Text("\n".join(lhs_lines))
    ReprHighlighter().highlight(lhs)
    rhs = Syntax("\n".join(code_lines), "python", background_color="default")
    table = Table(box=None, padding=0, collapse_padding=True, show_header=False,
                  show_footer=False, show_edge=False, pad_edge=False, expand=False)
    table.add_row(lhs, "  ", rhs)
    console = Console(file=stream, soft_wrap=True, color_system="standard")
    # Never wrap a row: widen the console to the table if need be.
    needed = max(map(len, lhs_lines), default=0) + 2 + max(map(len, code_lines), default=0)
    if console.width < needed:
        console = Console(file=stream, soft_wrap=True, color_system="standard", width=needed)
    console.print(table)
    stream.write("\n")


def show_summary(
    stats: LineStats,
    functions: Sequence[FunctionStats],
    stream: Optional[IO[str]] = None,
    stripzeros: bool = False,
    rich: bool = False,
) -> None:
    """Write one line of total time per function, as line_profiler's ``--summarize``; returns None.

    Functions that can suspend get `` (await X s)`` appended when they awaited.
    """
    if stream is None:
        stream = sys.stdout
    console = None
    if rich and rich_available():
        from rich.console import Console
        from rich.markup import escape

        console = Console(file=stream, soft_wrap=True, color_system="standard")
    for fs in functions:
        total_time = fs.total_time * stats.unit
        if stripzeros and not total_time:
            continue
        suffix = ""
        if fs.is_async and fs.total_await:
            suffix = " (await %.2f s)" % (fs.total_await * stats.unit)
        if console is not None:
            link = f"[link={fs.file}]{escape(fs.file)}[/link]"
            console.print(SUMMARY_TEMPLATE % (total_time, link, fs.firstlineno,
                                              escape(fs.name)) + escape(suffix))
        else:
            stream.write(SUMMARY_TEMPLATE % (total_time, fs.file, fs.firstlineno,
                                             fs.name) + suffix + "\n")


def _write_line(stream: IO[str], text: str) -> None:
    """Write ``text`` and a newline, escaping what the stream cannot encode."""
    try:
        stream.write(text)
    except UnicodeEncodeError:
        encoding = getattr(stream, "encoding", None) or "ascii"
        stream.write(text.encode(encoding, errors="backslashreplace").decode(encoding))
    stream.write("\n")


def _can_encode(stream: IO[str], text: str) -> bool:
    encoding = getattr(stream, "encoding", None)
    if not encoding:
        return True  # StringIO and the like take any str
    try:
        text.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def _write_table(
    stream: IO[str], headers: Sequence[str], rows: Sequence[Sequence[str]],
    widths: Sequence[int], left: Sequence[bool],
) -> None:
    """Write a header, its ``=`` underline and the rows, as the line tables do.

    Number columns are right-aligned and joined by one space; text columns
    (``left``) are left-aligned and set off by two spaces.  Every column is
    at least as wide as ``widths`` and widened to fit its cells.  Trailing
    spaces are cut.
    """
    widths = [max([w, len(h)] + [len(r[i]) for r in rows])
              for i, (w, h) in enumerate(zip(widths, headers))]

    def fmt(cells: Sequence[str]) -> str:
        out = ""
        for i, cell in enumerate(cells):
            if i:
                out += "  " if left[i] or left[i - 1] else " "
            out += cell.ljust(widths[i]) if left[i] else cell.rjust(widths[i])
        return out.rstrip()

    header = fmt(headers)
    _write_line(stream, header)
    _write_line(stream, "=" * len(header))
    for row in rows:
        _write_line(stream, fmt(row))


def _threshold_count(threshold: float, unit: float) -> float:
    """Return ``threshold`` seconds in counts of ``unit``, snapped to an integer
    when it is one but for float rounding (so 0.1 s is exactly 10**8 ns)."""
    count = threshold / unit
    nearest = round(count)
    if abs(count - nearest) <= 1e-9 * max(1.0, abs(count)):
        return float(nearest)
    return count


def slow_lines(
    stats: LineStats, threshold: float = DEFAULT_SLOW,
) -> List[Tuple[FunctionStats, int, LineRecord]]:
    """Return ``(function, lineno, record)`` for every line whose Max exceeds ``threshold``.

    ``threshold`` is in seconds; a line exactly at it is not listed.  With
    ``threshold`` 0 every recorded line is listed, even one with Max 0
    (await-only lines).  Sorted by Max descending, then by file, line and
    function.  Raises ValueError for a negative or NaN threshold.
    """
    if not threshold >= 0:
        raise ValueError(f"the slow-line threshold must be >= 0 seconds, got {threshold!r}")
    limit = _threshold_count(threshold, stats.unit)
    found = [(fs, lineno, rec) for fs in stats.functions
             for lineno, rec in fs.lines.items()
             if threshold == 0 or rec.max_ > limit]
    found.sort(key=lambda item: (-item[2].max_, item[0].file, item[1], item[0].name))
    return found


def show_slow_lines(
    stats: LineStats,
    threshold: float = DEFAULT_SLOW,
    stream: Optional[IO[str]] = None,
    output_unit: Optional[float] = None,
) -> None:
    """Write the slow-lines section for ``threshold`` seconds (see :func:`slow_lines`); returns None.

    Writes nothing when no line qualifies.  Max is shown in ``output_unit``
    (default: the stats' unit), with the line's source text from
    :mod:`linecache` (blank if the file cannot be read).  Raises ValueError
    for a negative threshold.
    """
    if stream is None:
        stream = sys.stdout
    found = slow_lines(stats, threshold)
    if not found:
        return
    scalar = stats.unit / (output_unit if output_unit is not None else stats.unit)
    if threshold == 0:
        stream.write("Lines by longest single stretch (Max):\n\n")
    else:
        stream.write("Lines that held the thread longer than %g ms (Max):\n\n"
                     % (threshold * 1000))
    checked = set()
    rows = []
    for fs, lineno, rec in found:
        if fs.file not in checked:
            checked.add(fs.file)
            if os.path.exists(fs.file):
                linecache.checkcache(fs.file)
        hits = "%d" % rec.hits
        if len(hits) > COLUMN_WIDTHS["hits"]:
            hits = "%g" % rec.hits
        rows.append((_fmt_time(rec.max_ * scalar, COLUMN_WIDTHS["max"]), hits,
                     f"{fs.file}:{lineno}", fs.name,
                     linecache.getline(fs.file, lineno).strip()))
    _write_table(stream, ("Max", "Hits", "File:Line", "Function", "Line Contents"), rows,
                 (COLUMN_WIDTHS["max"], COLUMN_WIDTHS["hits"], 0, 0, 0),
                 (False, False, True, True, True))
    stream.write("\n")


_TASK_TABLES = (
    ("Wall (Time + Await)", lambda t: t.wall),
    ("Time (active)", lambda t: t.time),
    ("Await", lambda t: t.await_),
)


def show_tasks(
    stats: LineStats,
    stream: Optional[IO[str]] = None,
    output_unit: Optional[float] = None,
    top: int = DEFAULT_TOP,
) -> None:
    """Write the Tasks section, or ``No task data.`` when there is none; returns None.

    Says how many tasks there were in all (a fold counts as the tasks it
    sums), then three tables of at most ``top`` rows: the records with the
    most wall time (Time + Await), active time and await time.  Ties keep
    the order of ``stats.tasks``.  Times are in ``output_unit`` (default:
    the stats' unit).  Raises ValueError if ``top`` is below 1.
    """
    if stream is None:
        stream = sys.stdout
    if top < 1:
        raise ValueError(f"top must be at least 1, got {top!r}")
    tasks: List[TaskRecord] = list(stats.tasks)
    if not tasks:
        stream.write("No task data.\n")
        return
    scalar = stats.unit / (output_unit if output_unit is not None else stats.unit)
    total = sum(t.count for t in tasks)
    folds = [t for t in tasks if t.is_fold]
    if folds:
        n_folded = sum(t.folded for t in folds)
        stream.write("Tasks:\nTotal tasks: %d (%d listed one by one, %d folded into %d record%s)\n\n"
                     % (total, total - n_folded, n_folded, len(folds),
                        "" if len(folds) == 1 else "s"))
    else:
        stream.write("Tasks:\nTotal tasks: %d\n\n" % total)
    times = "\u00d7" if _can_encode(stream, "\u00d7") else "x"
    headers = ("Id", "Task", "Coroutine", "Time", "Await", "Wall", "Active %")
    widths = (COLUMN_WIDTHS["line"], 0, 0, COLUMN_WIDTHS["time"], COLUMN_WIDTHS["await"],
              COLUMN_WIDTHS["time"], COLUMN_WIDTHS["percent"] + 1)
    left = (False, True, True, False, False, False, False)
    for title, key in _TASK_TABLES:
        chosen = sorted(tasks, key=key, reverse=True)[:top]  # stable: ties keep order
        stream.write("Top %d tasks by %s:\n\n" % (len(chosen), title))
        rows = []
        for t in chosen:
            name = f"{t.name} {times}{t.folded} (folded)" if t.is_fold else t.name
            active = "" if t.wall == 0 else "%5.1f" % (100.0 * t.time / t.wall)
            rows.append(("-" if t.is_fold else "%d" % t.id, name, t.coro,
                         _fmt_time(t.time * scalar, COLUMN_WIDTHS["time"]),
                         _fmt_time(t.await_ * scalar, COLUMN_WIDTHS["await"]),
                         _fmt_time(t.wall * scalar, COLUMN_WIDTHS["time"]),
                         active))
        _write_table(stream, headers, rows, widths, left)
        stream.write("\n")


def show_text(
    stats: Union[LineStats, Mapping[Tuple[str, int, str], Sequence[Tuple[int, int, int]]]],
    unit: Optional[float] = None,
    output_unit: Optional[float] = None,
    stream: Optional[IO[str]] = None,
    stripzeros: bool = False,
    details: bool = True,
    summarize: bool = False,
    sort: bool = False,
    rich: bool = False,
    *,
    show_max: bool = False,
    tasks: bool = False,
    top: int = DEFAULT_TOP,
    slow: Optional[float] = None,
) -> None:
    """Write the whole report for ``stats`` to ``stream`` (default stdout); returns None.

    ``stats`` is a :class:`LineStats`, or line_profiler-style ``timings``
    with their ``unit`` (so ``show_text(timings, unit, ...)`` works as in
    line_profiler).  ``sort`` orders functions by ascending total time.
    ``rich`` falls back to plain text if ``rich`` is not installed (the
    command-line tools refuse instead, see :func:`require_rich`).

    ``slow`` (seconds, or None for none) adds the slow-lines section after
    the function tables; ``tasks`` adds the Tasks section at the end, with
    ``top`` rows per table.  Both are off by default, so the report of plain
    functions stays line_profiler's; ``python -m lineprof`` turns the
    slow lines on (:data:`DEFAULT_SLOW`).  Raises ValueError for a negative
    ``slow`` or a ``top`` below 1.
    """
    if stream is None:
        stream = sys.stdout
    if not isinstance(stats, LineStats):
        stats = LineStats.from_timings(stats, unit if unit is not None else 1e-9)
    shown_unit = output_unit if output_unit is not None else stats.unit
    if slow is not None and not slow >= 0:
        raise ValueError(f"the slow-line threshold must be >= 0 seconds, got {slow!r}")
    if tasks and top < 1:
        raise ValueError(f"top must be at least 1, got {top!r}")
    stream.write("Timer unit: %g s\n\n" % shown_unit)
    functions = list(stats.functions)
    if sort:
        functions.sort(key=lambda fs: fs.total_time)
    if details:
        for fs in functions:
            show_func(fs, stats.unit, output_unit=output_unit, stream=stream,
                      stripzeros=stripzeros, rich=rich, show_max=show_max)
    if slow is not None:
        show_slow_lines(stats, slow, stream=stream, output_unit=output_unit)
    if summarize:
        show_summary(stats, functions, stream=stream, stripzeros=stripzeros, rich=rich)
    if tasks:
        show_tasks(stats, stream=stream, output_unit=output_unit, top=top)
    if getattr(stats, "now", None):
        show_now(stats, stream=stream, output_unit=output_unit)


def show_now(stats: LineStats, stream: Optional[IO[str]] = None,
             output_unit: Optional[float] = None) -> None:
    """Write the lines each thread was running when a worker snapshot was taken; returns None.

    Only snapshots written by the worker (``kernprof -i``) have them: after
    a ``kill -9`` they show where a stuck program was.
    """
    if stream is None:
        stream = sys.stdout
    unit = output_unit if output_unit is not None else stats.unit
    scale = stats.unit / unit
    stream.write("\nRunning when this snapshot was taken (time on the line so far, "
                 "in timer units):\n\n")
    for n in stats.now:
        task = f"  task {n['task']}" if n["task"] else ""
        stream.write(f"{n['elapsed'] * scale:>12.1f}  thread {n['thread']:#x}{task}  "
                     f"{n['function']} ({n['file']}:{n['lineno']})\n")
        code = linecache.getline(n["file"], n["lineno"]).strip()
        if code:
            stream.write(f"{'':>12}      {code}\n")
