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
import io
import itertools
import linecache
import os
import re
import stat
import sys
import tempfile
import tokenize
from collections import OrderedDict
from typing import IO, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

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
    "source_line",
    "printable",
    "MAX_SOURCE_BYTES",
    "MAX_SOURCE_LINES",
    "MAX_BLOCK_LINES",
    "MAX_BLOCK_BYTES",
    "MAX_GAP",
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


# -- what a profile may make the report read and show ----------------------------
#
# A profile names its source files and line numbers, and a crafted one can
# name anything: /dev/zero, a FIFO, a huge file, a line 10**8 lines after
# its function's first line, names full of terminal escape sequences.  The
# report reads sources only from regular files, up to a size, shows a
# bounded number of rows per function, and escapes control characters.

#: Source files larger than this (bytes), or with more lines, are not
#: shown: the report says so and shows the line numbers without their
#: contents.  (A line costs some 60 bytes of memory once read.)
MAX_SOURCE_BYTES = 16 << 20
MAX_SOURCE_LINES = 1_000_000

#: At most this many lines, and characters, of a function's source are
#: shown (and tokenized to find where the function ends); a longer function
#: ends with a marker row.
MAX_BLOCK_LINES = 10_000
MAX_BLOCK_BYTES = 512 << 10

#: Without the source, a run of more than this many line numbers with no
#: data between the shown ones becomes one marker row.
MAX_GAP = 100

_NO_FILE = "no such file"
_NOT_REGULAR = "not a regular file"
_TOO_BIG = "over %d MiB" % (MAX_SOURCE_BYTES >> 20)
_TOO_LONG = "over {:,} lines".format(MAX_SOURCE_LINES)

# C0 but tab, DEL and C1: what could move the cursor, clear the screen or
# retitle the terminal.  ESC (and the 8-bit CSI) escaped, a sequence prints
# as plain text.
_CONTROL = re.compile("[\\x00-\\x08\\x0a-\\x1f\\x7f-\\x9f]")
_NAMED_CONTROLS = {"\n": "\\n", "\r": "\\r"}


def printable(text: str) -> str:
    """Return ``text`` with its control characters escaped: ``\\n``, ``\\r``, ``\\x1b``...

    Tabs stay; other C0 characters, DEL and C1 become escapes, so a name or
    source line from a profile cannot drive the reader's terminal.  Text
    without them is returned as is.
    """
    if _CONTROL.search(text) is None:
        return text
    return _CONTROL.sub(
        lambda m: _NAMED_CONTROLS.get(m.group(), "\\x%02x" % ord(m.group())), text)


#: Code run from a string (``kernprof -c``, ``kernprof -``): its source is
#: shown while the run's linecache holds it, as for a notebook cell.
_IN_MEMORY = ("<string>", "<stdin>")


class _NoSource(Exception):
    """A source file that is not shown; ``str()`` says why ("no such file", ...)."""


# The sources read last, by name, the newest last: (stat key, characters
# held, the lines or why they are not shown).  At most _SOURCES_KEPT
# characters besides the newest.
_SOURCES: "OrderedDict[str, Tuple[Tuple[int, ...], int, Union[List[str], str]]]" = OrderedDict()
_SOURCES_KEPT = 32 << 20


def _source(filename: str) -> List[str]:
    """Return the lines of ``filename`` as :mod:`linecache` has them (newlines kept).

    Only a regular file of at most :data:`MAX_SOURCE_BYTES` is read, opened
    without blocking: a FIFO, a device or a huge file named by a profile
    can neither hang the report nor fill its memory.  Code that has no file
    of its own (notebook cells) comes from linecache's cache.  Returns
    ``[]`` for a file that cannot be opened or decoded.  Raises
    :class:`_NoSource` for no such file, not a regular file, or too large
    (:data:`MAX_SOURCE_BYTES`, :data:`MAX_SOURCE_LINES`).
    """
    try:
        st = os.stat(filename)
    except (OSError, ValueError):  # ValueError: a NUL in the name
        entry = linecache.cache.get(filename)
        if entry is not None and len(entry) > 2 and (
                is_generated_code(filename) or filename in _IN_MEMORY):
            return entry[2]
        if is_generated_code(filename):
            return []
        raise _NoSource(_NO_FILE) from None
    if not stat.S_ISREG(st.st_mode):
        raise _NoSource(_NOT_REGULAR)
    if st.st_size > MAX_SOURCE_BYTES:
        raise _NoSource(_TOO_BIG)
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    cached = _SOURCES.pop(filename, None)
    if cached is None or cached[0] != key:
        try:
            lines: Union[List[str], str] = _read_source(filename)
        except _NoSource as exc:  # kept too, so that it is not read again
            lines = str(exc)
        cached = (key, sum(map(len, lines)) if isinstance(lines, list) else 0, lines)
    _SOURCES[filename] = cached
    kept = sum(size for _, size, _ in _SOURCES.values())
    while kept > _SOURCES_KEPT and len(_SOURCES) > 1:
        kept -= _SOURCES.popitem(last=False)[1][1]
    if isinstance(cached[2], str):
        raise _NoSource(cached[2])
    return cached[2]


def _read_source(filename: str) -> List[str]:
    """Return the decoded lines of regular file ``filename``, or ``[]`` if it cannot be read.

    Raises :class:`_NoSource` if it is no longer a regular file once
    opened, or holds more than :data:`MAX_SOURCE_BYTES` (a file in /proc
    says size 0) or :data:`MAX_SOURCE_LINES`.
    """
    flags = (os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
             | getattr(os, "O_CLOEXEC", 0))
    try:
        fd = os.open(filename, flags)
    except OSError:
        return []
    chunks: List[bytes] = []
    size = 0
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped since the stat
            raise _NoSource(_NOT_REGULAR)
        while size <= MAX_SOURCE_BYTES:
            chunk = os.read(fd, min(1 << 20, MAX_SOURCE_BYTES + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError:
        return []
    finally:
        os.close(fd)
    if size > MAX_SOURCE_BYTES:
        raise _NoSource(_TOO_BIG)
    data = b"".join(chunks)
    if data.count(b"\n") + data.count(b"\r") - data.count(b"\r\n") > MAX_SOURCE_LINES:
        raise _NoSource(_TOO_LONG)
    try:  # as linecache does, through tokenize.open: coding cookie, BOM, universal newlines
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        lines = io.TextIOWrapper(io.BytesIO(data), encoding).readlines()
    except (SyntaxError, UnicodeDecodeError, LookupError):
        return []
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    return lines


def source_line(filename: str, lineno: int) -> str:
    """Return line ``lineno`` of ``filename`` with its newline, or ``""`` if it cannot be shown.

    Like :func:`linecache.getline`, but reads only what :func:`get_code_block` would.
    """
    try:
        lines = _source(filename)
    except _NoSource:
        return ""
    return lines[lineno - 1] if 1 <= lineno <= len(lines) else ""


def _block(lines: Sequence[str], lineno: int) -> Tuple[List[str], bool]:
    """Return the block of ``lines`` that starts at line ``lineno``, and whether it was cut.

    The block is :func:`inspect.getblock`'s, over at most
    :data:`MAX_BLOCK_LINES` lines and :data:`MAX_BLOCK_BYTES` characters from
    ``lineno`` on; it is cut if it fills them and the file goes on.
    ``([], False)`` if there is no line ``lineno``.
    """
    if not 1 <= lineno <= len(lines):
        return [], False
    head: List[str] = []
    size = 0
    for line in lines[lineno - 1:lineno - 1 + MAX_BLOCK_LINES]:
        size += len(line)
        if size > MAX_BLOCK_BYTES:
            break
        head.append(line)
    try:
        block = inspect.getblock(head)
    except Exception:  # the tokenizer gave up: show all we took
        block = head
    return block, len(block) == len(head) and lineno - 1 + len(head) < len(lines)


def get_code_block(filename: str, lineno: int) -> List[str]:
    """Return the source lines of the block (def, class, ...) that starts at ``lineno``.

    At most :data:`MAX_BLOCK_LINES` lines.  Returns ``[]`` if there is no
    such line, or the file is not shown (not a regular file, over
    :data:`MAX_SOURCE_BYTES`, unreadable).
    """
    try:
        lines = _source(filename)
    except _NoSource:
        return []
    return _block(lines, lineno)[0]


#: The line-number cell of a row that stands for lines not shown.
ELIDED = "..."


def _blank_rows(start: int, linenos: Sequence[int]) -> Iterator[Tuple[Union[int, str], str]]:
    """Yield the rows of a function whose source is not shown: ``(lineno, "")``.

    The lines are line_profiler's, ``start`` on, as many as from the lowest
    line (or ``start``) to the highest recorded one; but each run of more
    than :data:`MAX_GAP` lines without data is one row ``(ELIDED, "(lines A
    to B not shown)")``.  So the rows are bounded by the recorded lines,
    whatever their numbers.  ``linenos`` is sorted.
    """
    nlines = 1 if not linenos else max(linenos) - min(min(linenos), start) + 1
    end = start + nlines - 1
    yield start, ""
    prev = start
    for ln in itertools.chain((ln for ln in linenos if start < ln <= end), (end + 1,)):
        if ln - prev - 1 > MAX_GAP:
            yield ELIDED, f"(lines {prev + 1} to {ln - 1} not shown)"
        else:
            for k in range(prev + 1, ln):
                yield k, ""
        if ln <= end:
            yield ln, ""
        prev = ln


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
    The rows are line_profiler's: the function's block in its source, or,
    without the source, blank lines numbered up to the last recorded one;
    but the block is at most :data:`MAX_BLOCK_LINES` lines and, without
    source, a run of over :data:`MAX_GAP` lines without data is one row.
    Control characters in names and source are escaped (:func:`printable`).
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
    rows: Iterator[Tuple[Union[int, str], str]]
    try:
        source = _source(filename)
    except _NoSource as exc:
        stream.write("\n")
        if str(exc) == _NO_FILE:
            stream.write(f"Could not find file {printable(filename)}\n")
            stream.write("Are you sure you are running this program from the same directory\n")
            stream.write("that you ran the profiler from?\n")
        else:
            stream.write(f"Not reading file {printable(filename)}: {exc}\n")
        stream.write("Continuing without the function's contents.\n")
        # Blank source lines, so the numbers still show.
        rows = _blank_rows(start_lineno, linenos)
    else:
        stream.write(f"File: {printable(filename)}\n")
        stream.write(f"Function: {printable(fs.name)} at line {start_lineno}\n")
        block, cut = _block(source, start_lineno)
        rows = zip(itertools.count(start_lineno), block)
        if cut:
            rows = itertools.chain(rows, [(ELIDED, "(lines from %d on not shown)"
                                           % (start_lineno + len(block)))])

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
    if rich:
        _write_rich_rows(stream, lhs_template, list(rows), display, empty)
    else:
        for lineno, line in rows:
            cells = display.get(lineno, empty)
            code = printable(line.rstrip("\n").rstrip("\r"))
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
    code_lines = [printable(line.rstrip("\n").rstrip("\r")) for _, line in rows]
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
        from rich.style import Style
        from rich.text import Text

        console = Console(file=stream, soft_wrap=True, color_system="standard")
    for fs in functions:
        total_time = fs.total_time * stats.unit
        if stripzeros and not total_time:
            continue
        suffix = ""
        if fs.is_async and fs.total_await:
            suffix = " (await %.2f s)" % (fs.total_await * stats.unit)
        file, name = printable(fs.file), printable(fs.name)
        if console is not None:
            # Text, not markup: a name with "[" in it is not read as a tag.
            head, tail = SUMMARY_TEMPLATE.split("%s:", 1)
            text = Text(head % total_time)
            text.append(file, Style(link=fs.file) if file == fs.file else None)
            text.append(":" + tail % (fs.firstlineno, name) + suffix)
            console.print(console.highlighter(text))
        else:
            stream.write(SUMMARY_TEMPLATE % (total_time, file, fs.firstlineno,
                                             name) + suffix + "\n")


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

    When no line qualifies, one line says so and names the line with the
    longest Max, so that a threshold never hides silently what is there
    (nothing at all for a profile without any timed line); when lines are
    left out under the threshold, a last line counts them.  Max is shown in
    ``output_unit`` (default: the stats' unit), with the line's source text
    (blank if the file cannot be shown, see :func:`source_line`).  Raises
    ValueError for a negative threshold.
    """
    if stream is None:
        stream = sys.stdout
    found = slow_lines(stats, threshold)
    recorded = [(fs, lineno, rec) for fs in stats.functions
                for lineno, rec in fs.lines.items() if rec.max_ > 0]
    if not found:
        if recorded:
            fs, lineno, rec = max(recorded, key=lambda item: item[2].max_)
            stream.write("No line held its thread longer than %g ms; the longest Max was "
                         "%s, %s:%d in %s (--slow MS lowers the threshold).\n\n"
                         % (threshold * 1000, _seconds_text(rec.max_ * stats.unit),
                            printable(fs.file), lineno, printable(fs.name)))
        return
    scalar = stats.unit / (output_unit if output_unit is not None else stats.unit)
    if threshold == 0:
        stream.write("Lines by longest single stretch (Max):\n\n")
    else:
        stream.write("Lines that held the thread longer than %g ms (Max):\n\n"
                     % (threshold * 1000))
    rows = []
    for fs, lineno, rec in found:
        hits = "%d" % rec.hits
        if len(hits) > COLUMN_WIDTHS["hits"]:
            hits = "%g" % rec.hits
        rows.append((_fmt_time(rec.max_ * scalar, COLUMN_WIDTHS["max"]), hits,
                     f"{printable(fs.file)}:{lineno}", printable(fs.name),
                     printable(source_line(fs.file, lineno).strip())))
    _write_table(stream, ("Max", "Hits", "File:Line", "Function", "Line Contents"), rows,
                 (COLUMN_WIDTHS["max"], COLUMN_WIDTHS["hits"], 0, 0, 0),
                 (False, False, True, True, True))
    below = len(recorded) - len(found)
    if threshold > 0 and below > 0:
        stream.write("(%d more line%s under %g ms; --slow 0 lists every line)\n"
                     % (below, "" if below == 1 else "s", threshold * 1000))
    stream.write("\n")


def _seconds_text(seconds: float) -> str:
    """Return a duration the way people read it: ``850 us``, ``50.2 ms``, ``1.25 s``."""
    if seconds >= 1:
        return "%.3g s" % seconds
    if seconds >= 1e-3:
        return "%.3g ms" % (seconds * 1e3)
    return "%.3g us" % (seconds * 1e6)


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
            name = printable(t.name)
            if t.is_fold:
                name = f"{name} {times}{t.folded} (folded)"
            active = "" if t.wall == 0 else "%5.1f" % (100.0 * t.time / t.wall)
            rows.append(("-" if t.is_fold else "%d" % t.id, name, printable(t.coro),
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
        task = f"  task {printable(n['task'])}" if n["task"] else ""
        stream.write(f"{n['elapsed'] * scale:>12.1f}  thread {n['thread']:#x}{task}  "
                     f"{printable(n['function'])} ({printable(n['file'])}:{n['lineno']})\n")
        code = printable(source_line(n["file"], n["lineno"]).strip())
        if code:
            stream.write(f"{'':>12}      {code}\n")
