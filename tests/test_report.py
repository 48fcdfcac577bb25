"""Reporters on synthetic stats (tier c): no extension, no live hook.

Plain functions must print exactly what line_profiler 5's ``show_text``
prints for the same timings.  The golden strings below were produced once
by line_profiler 5.1.0; when line_profiler is importable the comparison is
also made live, over more cases.
"""

from __future__ import annotations

import io
import sys
import textwrap

import pytest

from lineprof.errors import LineprofError
from lineprof.report import (
    RICH_MISSING,
    get_code_block,
    require_rich,
    rich_available,
    show_func,
    show_summary,
    show_tasks,
    show_text,
)
from lineprof.stats import FunctionStats, LineRecord, LineStats

SOURCE = '''\
import time


def plain(n):
    total = 0
    for i in range(n):
        total += i * i
    if total > 10:
        time.sleep(0)
    return total


async def coro(q):
    item = await q.get()
    return item


def big():
    x = 1
    return x
'''


@pytest.fixture
def src(tmp_path):
    path = tmp_path / "src.py"
    path.write_text(SOURCE)
    return str(path)


def plain_timings(f):
    return {
        (f, 4, "plain"): [(5, 1, 1500), (6, 1001, 250000), (7, 1000, 400000),
                          (8, 1, 900), (9, 1, 12000), (10, 1, 300)],
        (f, 18, "big"): [(19, 123456789012, 10**15), (20, 3, 7 * 10**13)],
        (f, 13, "never"): [],
    }


# Verified against line_profiler 5.1.0:
# show_text(plain_timings(f), 1e-9, output_unit=1e-6, summarize=True, config=False)
GOLDEN_PLAIN = '''\
Timer unit: 1e-06 s

Total time: 0.0006647 s
File: {f}
Function: plain at line 4

Line #      Hits         Time  Per Hit   % Time  Line Contents
==============================================================
     4                                           def plain(n):
     5         1          1.5      1.5      0.2      total = 0
     6      1001        250.0      0.2     37.6      for i in range(n):
     7      1000        400.0      0.4     60.2          total += i * i
     8         1          0.9      0.9      0.1      if total > 10:
     9         1         12.0     12.0      1.8          time.sleep(0)
    10         1          0.3      0.3      0.0      return total

Total time: 1.07e+06 s
File: {f}
Function: big at line 18

Line #        Hits         Time  Per Hit   % Time  Line Contents
================================================================
    18                                             def big():
    19 1.23457e+11        1e+12      8.1     93.5      x = 1
    20           3        7e+10 2.33e+10      6.5      return x

Total time: 0 s
File: {f}
Function: never at line 13

Line #      Hits         Time  Per Hit   % Time  Line Contents
==============================================================
    13                                           async def coro(q):
    14                                               item = await q.get()
    15                                               return item

  0.00 seconds - {f}:4 - plain
1070000.00 seconds - {f}:18 - big
  0.00 seconds - {f}:13 - never
'''


def render(stats, **kwargs):
    buf = io.StringIO()
    show_text(stats, stream=buf, **kwargs)
    return buf.getvalue()


def test_plain_functions_match_line_profiler_golden(src):
    stats = LineStats.from_timings(plain_timings(src), 1e-9)
    out = render(stats, output_unit=1e-6, summarize=True)
    assert out == GOLDEN_PLAIN.format(f=src)


def test_line_profiler_call_signature(src):
    buf = io.StringIO()
    show_text(plain_timings(src), 1e-9, 1e-6, buf, False, True, True)
    assert buf.getvalue() == GOLDEN_PLAIN.format(f=src)


def test_print_method_and_default_unit(src):
    stats = LineStats.from_timings(plain_timings(src), 1e-9)
    buf = io.StringIO()
    stats.print(stream=buf)
    out = buf.getvalue()
    assert out.startswith("Timer unit: 1e-09 s\n\nTotal time: 0.0006647 s\n")
    assert "     5         1       1500.0   1500.0      0.2      total = 0\n" in out


# -- live comparison with line_profiler -----------------------------------------

def _line_profiler_show_text():
    from conftest import import_line_profiler

    return import_line_profiler().show_text


def _cases(f):
    yield plain_timings(f)
    yield {(f, 4, "plain"): [(5, 10**12, 10**15), (6, 1, 3 * 10**13), (7, 123456789012, 5)]}
    yield {(f, 4, "plain"): [(5, 1, 0)], (f, 18, "big"): [(19, 7, 7)]}
    yield {(f, 18, "big"): [(19, 2, 10), (22, 1, 5)]}  # a line past the block
    yield {("/nonexistent/gone.py", 3, "gone"): [(4, 2, 10), (6, 1, 5)],
           ("/nonexistent/none.py", 9, "none"): []}


def test_identical_to_line_profiler_show_text(src):
    lp_show_text = _line_profiler_show_text()
    n = 0
    for timings in _cases(src):
        for unit in (1e-9, 1e-6):
            for output_unit in (None, 1e-6, 1e-3, 1.0):
                for stripzeros in (False, True):
                    for summarize in (False, True):
                        for sort in (False, True):
                            want = io.StringIO()
                            lp_show_text(timings, unit, output_unit=output_unit, stream=want,
                                         stripzeros=stripzeros, summarize=summarize,
                                         sort=sort, config=False)
                            got = render(LineStats.from_timings(timings, unit),
                                         output_unit=output_unit, stripzeros=stripzeros,
                                         summarize=summarize, sort=sort)
                            assert got == want.getvalue(), (timings, unit, output_unit,
                                                            stripzeros, summarize, sort)
                            n += 1
    assert n == 5 * 2 * 4 * 8


# -- await columns ------------------------------------------------------------------

def coro_stats(f):
    return LineStats([FunctionStats(f, "coro", 13, "coroutine", {
        14: LineRecord(20, 200113000, 5000000000, 10402000),
        15: LineRecord(1, 300, 0, 300),
    })])


GOLDEN_CORO = '''\
Timer unit: 1e-06 s

Total time: 0.200113 s
Total await: 5 s
File: {f}
Function: coro at line 13

Line #      Hits         Time  Per Hit   % Time        Await          Max  Line Contents
========================================================================================
    13                                                                     async def coro(q):
    14        20     200113.0  10005.6    100.0    5000000.0      10402.0      item = await q.get()
    15         1          0.3      0.3      0.0                       0.3      return item

'''


def test_coroutine_table_has_await_and_max(src):
    assert render(coro_stats(src), output_unit=1e-6) == GOLDEN_CORO.format(f=src)


def test_await_header_underline_is_header_length(src):
    lines = render(coro_stats(src), output_unit=1e-6).splitlines()
    i = next(i for i, line in enumerate(lines) if line.startswith("Line #"))
    assert lines[i] == ("Line #      Hits         Time  Per Hit   % Time        Await"
                        "          Max  Line Contents")
    assert lines[i + 1] == "=" * len(lines[i])


@pytest.mark.parametrize("kind", ["generator", "async_generator", "coroutine"])
def test_every_suspendable_kind_gets_await_columns(src, kind):
    stats = LineStats([FunctionStats(src, "g", 13, kind, {14: LineRecord(1, 5, 0, 5)})])
    out = render(stats)
    assert "Total await: 0 s\n" in out
    assert "       Await          Max  Line Contents" in out


def test_await_only_line_has_blank_per_hit(src):
    stats = LineStats([FunctionStats(src, "coro", 13, "coroutine",
                                     {14: LineRecord(0, 0, 3000, 0)})])
    row = [line for line in render(stats, output_unit=1e-6).splitlines()
           if line.startswith("    14")][0]
    assert row == ("    14         0          0.0                            3.0"
                   "                   item = await q.get()")


def test_big_await_values_widen_their_column(src):
    stats = LineStats([FunctionStats(src, "coro", 13, "coroutine",
                                     {14: LineRecord(1, 1, 10**22, 0)})])
    out = render(stats, output_unit=1e-9)
    header = next(line for line in out.splitlines() if line.startswith("Line #"))
    assert "Await" in header
    assert "1e+22" in out


def test_max_column_for_plain_functions_on_request(src):
    stats = LineStats([FunctionStats(src, "plain", 4, "function",
                                     {5: LineRecord(2, 3000, 0, 2000)})])
    plain = render(stats, output_unit=1e-6)
    assert "Max" not in plain and "Await" not in plain and "Total await" not in plain
    with_max = render(stats, output_unit=1e-6, show_max=True)
    assert "   % Time          Max  Line Contents\n" in with_max
    assert "     5         2          3.0      1.5    100.0          2.0      total = 0\n" in with_max
    assert "Await" not in with_max


def test_summary_mentions_await_for_suspendable_functions(src):
    buf = io.StringIO()
    stats = coro_stats(src)
    show_summary(stats, stats.functions, stream=buf)
    assert buf.getvalue() == f"  0.20 seconds - {src}:13 - coro (await 5.00 s)\n"


# -- options --------------------------------------------------------------------------

def test_stripzeros_skips_functions_never_hit(src):
    timings = plain_timings(src)
    out = render(LineStats.from_timings(timings), stripzeros=True, summarize=True)
    assert "Function: never" not in out
    assert "- never" not in out
    assert "Function: plain" in out


def test_sort_orders_by_ascending_total_time(src):
    out = render(LineStats.from_timings(plain_timings(src)), sort=True)
    order = [line.split()[1] for line in out.splitlines() if line.startswith("Function:")]
    assert order == ["never", "plain", "big"]


def test_details_false_prints_only_summary(src):
    out = render(LineStats.from_timings(plain_timings(src)), details=False, summarize=True)
    assert "Line #" not in out
    assert out.count(" seconds - ") == 3


def test_missing_source_file_message():
    stats = LineStats.from_timings({("/nonexistent/x.py", 3, "gone"): [(4, 2, 10)]})
    out = render(stats)
    assert textwrap.dedent('''\
        Total time: 1e-08 s

        Could not find file /nonexistent/x.py
        Are you sure you are running this program from the same directory
        that you ran the profiler from?
        Continuing without the function's contents.
        ''') in out
    assert "     4         2         10.0      5.0    100.0  \n" in out


def test_tasks_section(src):
    buf = io.StringIO()
    show_tasks(LineStats(), stream=buf)
    assert buf.getvalue() == "No task data.\n"
    out = render(coro_stats(src), tasks=True)
    assert out.endswith("No task data.\n")
    assert "No task data." not in render(coro_stats(src))
    stats = coro_stats(src)
    stats.tasks = [{"id": 1, "name": "Task-1", "coro": "coro", "time": 5, "await": 0}]
    out = render(stats, tasks=True)
    assert "\nTasks:\nTotal tasks: 1\n" in out
    assert ("     1  Task-1  coro                5.0          0.0          5.0     100.0\n"
            in out)


def test_show_func_alone_defaults_to_stdout(src, capsys):
    fs = coro_stats(src).functions[0]
    show_func(fs, 1e-9, output_unit=1e-6)
    assert capsys.readouterr().out == GOLDEN_CORO.format(f=src).split("\n", 2)[2]


def test_get_code_block_stops_at_end_of_function(src):
    block = get_code_block(src, 4)
    assert block[0] == "def plain(n):\n"
    assert block[-1] == "    return total\n"
    assert get_code_block(src, 999) == []


def test_unencodable_source_is_escaped(tmp_path):
    path = tmp_path / "uni.py"
    path.write_text("def f():\n    return 'caf\u00e9'\n", encoding="utf-8")
    stats = LineStats.from_timings({(str(path), 1, "f"): [(2, 1, 10)]})
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="ascii")
    show_text(stats, stream=stream)
    stream.flush()
    assert b"return 'caf\\xe9'" in raw.getvalue()


# -- rich (optional) ---------------------------------------------------------------------

def test_require_rich_without_rich(monkeypatch):
    monkeypatch.setitem(sys.modules, "rich", None)  # makes `import rich` fail
    assert not rich_available()
    with pytest.raises(LineprofError) as info:
        require_rich()
    assert str(info.value) == RICH_MISSING
    assert "pip install rich" in RICH_MISSING


def test_rich_request_falls_back_to_plain_text_when_missing(monkeypatch, src):
    monkeypatch.setitem(sys.modules, "rich", None)
    stats = LineStats.from_timings(plain_timings(src), 1e-9)
    assert render(stats, output_unit=1e-6, summarize=True, rich=True) == GOLDEN_PLAIN.format(f=src)


def test_rich_output_when_installed(src):
    from conftest import require

    require("rich")
    import re

    out = render(coro_stats(src), output_unit=1e-6, rich=True)
    assert "\x1b[" in out  # coloured
    plain = re.sub(r"\x1b\[[0-9;]*m", "", out)
    assert "Total await: 5 s" in plain
    # Same cells as the plain table, one row per line (no wrapping).
    assert ("    14        20     200113.0  10005.6    100.0    5000000.0      10402.0"
            "      item = await q.get()") in plain


def test_reporters_do_not_import_rich():
    import os
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = "import sys, lineprof, lineprof.report, lineprof.cli; print('rich' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=root)
    assert out.stdout.strip() == "False"
