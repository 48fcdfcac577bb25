"""The asyncio sections of the reports, on synthetic stats (tier c).

The Tasks section (``-t``: the tasks with the most wall, active and await
time), the slow lines (lines whose longest single stretch, Max, exceeded a
threshold: they blocked the event loop that long) and the ``--top``,
``--slow``, ``--no-slow`` and ``--json`` options of ``python -m lineprof``.
Everything runs on hand-made :class:`LineStats` (the command line gets them
through a stand-in for ``load_stats``), except the last test, which checks
that the command line shows both sections for a real profile.
"""

from __future__ import annotations

import asyncio
import io
import json
import linecache
import os
import subprocess
import sys
import textwrap

import pytest

import lineprof.cli
from lineprof.cli import main
from lineprof.report import (
    DEFAULT_SLOW,
    DEFAULT_TOP,
    show_slow_lines,
    show_tasks,
    show_text,
    slow_lines,
)
from lineprof.stats import FunctionStats, LineRecord, LineStats, TaskRecord
from test_stats import validate  # the small JSON-schema checker

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCHEMA_PATH = os.path.join(ROOT, "docs", "lineprof.schema.json")
MS = 1_000_000  # ns

SOURCE = '''\
import asyncio
import time


async def handler(req):
    data = await req.read()
    time.sleep(0.25)
    return data


async def worker(q):
    item = await q.get()
    return item
'''


@pytest.fixture
def src(tmp_path, monkeypatch):
    """The source file, as the relative name ``app.py`` (so golden text has no tmp path)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "app.py").write_text(SOURCE)
    linecache.checkcache("app.py")
    return "app.py"


def make_stats(f, scale=1):
    """Two coroutines and four task records (one a fold of 5120 tasks).

    Line 7 held the thread for 250 ms, line 12 for exactly 100 ms (the
    default threshold: not slow), line 13 for 120 ms.  The three task
    tables order the records differently:
    wall: fold, Task-1, handler-b, handler-a;
    time: handler-a, fold, Task-1, handler-b;
    await: fold, Task-1, handler-b, handler-a.
    """
    return LineStats([
        FunctionStats(f, "handler", 5, "coroutine", {
            6: LineRecord(3 * scale, 300_000, 2_000 * MS, 150_000),
            7: LineRecord(3 * scale, 750 * MS, 0, 250 * MS),
            8: LineRecord(3 * scale, 3_000, 0, 1_000),
        }),
        FunctionStats(f, "worker", 11, "coroutine", {
            12: LineRecord(5120 * scale, 180 * MS, 9_000 * MS, 100 * MS),
            13: LineRecord(5120 * scale, 200 * MS, 0, 120 * MS),
        }),
    ], tasks=[
        TaskRecord(1, "Task-1", "main", 2 * MS, 3_000 * MS, 0, 3_002 * MS),
        TaskRecord(2, "handler-a", "handler", 760 * MS, 500 * MS, 1 * MS, 1_261 * MS),
        TaskRecord(3, "handler-b", "handler", 1 * MS, 1_500 * MS, 2 * MS, 1_503 * MS),
        TaskRecord(0, "worker", "worker", 380 * MS, 9_000 * MS, 5 * MS, 3_000 * MS, 5120),
    ])


# Checked by hand: handler's lines sum to 750.303 ms; Active % is
# 100 * Time / Wall (380 / 9380 = 4.05 %, 760 / 1260 = 60.3 %); 3 tasks
# one by one + 5120 folded = 5123; line 12 (Max exactly 100 ms) is not slow.
GOLDEN = '''\
Timer unit: 0.001 s

Total time: 0.750303 s
Total await: 2 s
File: {f}
Function: handler at line 5

Line #      Hits         Time  Per Hit   % Time        Await          Max  Line Contents
========================================================================================
     5                                                                     async def handler(req):
     6         3          0.3      0.1      0.0       2000.0          0.1      data = await req.read()
     7         3        750.0    250.0    100.0                     250.0      time.sleep(0.25)
     8         3          0.0      0.0      0.0                       0.0      return data

Total time: 0.38 s
Total await: 9 s
File: {f}
Function: worker at line 11

Line #      Hits         Time  Per Hit   % Time        Await          Max  Line Contents
========================================================================================
    11                                                                     async def worker(q):
    12      5120        180.0      0.0     47.4       9000.0        100.0      item = await q.get()
    13      5120        200.0      0.0     52.6                     120.0      return item

Lines that held the thread longer than 100 ms (Max):

         Max      Hits  File:Line  Function  Line Contents
==========================================================
       250.0         3  app.py:7   handler   time.sleep(0.25)
       120.0      5120  app.py:13  worker    return item
(3 more lines under 100 ms; --slow 0 lists every line)

Tasks:
Total tasks: 5123 (3 listed one by one, 5120 folded into 1 record)

Top 3 tasks by Wall (Time + Await):

    Id  Task                   Coroutine          Time        Await         Wall  Active %
==========================================================================================
     -  worker \u00d75120 (folded)  worker            380.0       9000.0       9380.0       4.1
     1  Task-1                 main                2.0       3000.0       3002.0       0.1
     3  handler-b              handler             1.0       1500.0       1501.0       0.1

Top 3 tasks by Time (active):

    Id  Task                   Coroutine          Time        Await         Wall  Active %
==========================================================================================
     2  handler-a              handler           760.0        500.0       1260.0      60.3
     -  worker \u00d75120 (folded)  worker            380.0       9000.0       9380.0       4.1
     1  Task-1                 main                2.0       3000.0       3002.0       0.1

Top 3 tasks by Await:

    Id  Task                   Coroutine          Time        Await         Wall  Active %
==========================================================================================
     -  worker \u00d75120 (folded)  worker            380.0       9000.0       9380.0       4.1
     1  Task-1                 main                2.0       3000.0       3002.0       0.1
     3  handler-b              handler             1.0       1500.0       1501.0       0.1

'''


def render(stats, **kwargs):
    buf = io.StringIO()
    show_text(stats, stream=buf, **kwargs)
    return buf.getvalue()


def section(out, title):
    """Return the data rows of the table under the line ``title`` (not its closing count line)."""
    lines = out.splitlines()
    i = lines.index(title)
    assert lines[i + 1] == "" and lines[i + 3] == "=" * len(lines[i + 2])
    rows = []
    for line in lines[i + 4:]:
        if not line or line.startswith("("):
            break
        rows.append(line)
    return rows


def task_ids(rows):
    return [row.split()[0] for row in rows]


WALL = "Top {n} tasks by Wall (Time + Await):"
TIME = "Top {n} tasks by Time (active):"
AWAIT = "Top {n} tasks by Await:"
SLOW = "Lines that held the thread longer than 100 ms (Max):"


# -- the whole report -------------------------------------------------------------

def test_golden_report_with_tasks_folds_and_slow_lines(src):
    out = render(make_stats(src), output_unit=1e-3, slow=0.1, tasks=True, top=3)
    assert out == GOLDEN.format(f=src)


def test_default_text_report_has_neither_section(src):
    # show_text and LineStats.print keep line_profiler's report unless asked.
    out = render(make_stats(src), output_unit=1e-3)
    assert "Lines that held" not in out and "Tasks:" not in out
    assert out.endswith("    13      5120        200.0      0.0     52.6                     "
                        "120.0      return item\n\n")


def test_print_method_takes_the_new_options(src):
    buf = io.StringIO()
    make_stats(src).print(stream=buf, output_unit=1e-3, slow=0.1, tasks=True, top=3)
    assert buf.getvalue() == GOLDEN.format(f=src)


# -- the Tasks section --------------------------------------------------------------

@pytest.mark.parametrize("title, order", [
    (WALL, ["-", "1", "3", "2"]),
    (TIME, ["2", "-", "1", "3"]),
    (AWAIT, ["-", "1", "3", "2"]),
])
def test_each_task_table_is_ordered_by_its_column(src, title, order):
    out = render(make_stats(src), tasks=True)
    assert task_ids(section(out, title.format(n=4))) == order


def test_await_and_wall_orders_can_differ():
    stats = LineStats(tasks=[
        TaskRecord(1, "a", "c", 900, 100),   # wall 1000, await 100
        TaskRecord(2, "b", "c", 0, 500),     # wall 500, await 500
    ])
    buf = io.StringIO()
    show_tasks(stats, stream=buf)
    out = buf.getvalue()
    assert task_ids(section(out, WALL.format(n=2))) == ["1", "2"]
    assert task_ids(section(out, TIME.format(n=2))) == ["1", "2"]
    assert task_ids(section(out, AWAIT.format(n=2))) == ["2", "1"]


def test_ties_keep_the_order_of_the_records():
    stats = LineStats(tasks=[TaskRecord(i, f"T{i}", "c", 5, 5) for i in (3, 1, 2)])
    buf = io.StringIO()
    show_tasks(stats, stream=buf)
    for title in (WALL, TIME, AWAIT):
        assert task_ids(section(buf.getvalue(), title.format(n=3))) == ["3", "1", "2"]


@pytest.mark.parametrize("top", [1, 2, 4, 50])
def test_top_limits_every_table(src, top):
    out = render(make_stats(src), tasks=True, top=top)
    n = min(top, 4)
    for title in (WALL, TIME, AWAIT):
        assert len(section(out, title.format(n=n))) == n
    assert "Total tasks: 5123 " in out  # the count is of all tasks, not of the rows


def test_default_top_is_ten():
    assert DEFAULT_TOP == 10
    stats = LineStats(tasks=[TaskRecord(i, f"Task-{i}", "c", i, 0) for i in range(1, 13)])
    buf = io.StringIO()
    show_tasks(stats, stream=buf)
    rows = section(buf.getvalue(), TIME.format(n=10))
    assert task_ids(rows) == [str(i) for i in range(12, 2, -1)]


def test_top_below_one_is_refused(src):
    with pytest.raises(ValueError):
        show_tasks(make_stats(src), stream=io.StringIO(), top=0)
    with pytest.raises(ValueError):
        render(make_stats(src), tasks=True, top=0)


def test_fold_row():
    stats = LineStats(tasks=[TaskRecord(0, "worker", "worker", 3000, 1000, 0, 0, 5120)])
    buf = io.StringIO()
    show_tasks(stats, stream=buf, output_unit=1e-6)
    out = buf.getvalue()
    assert out.startswith("Tasks:\nTotal tasks: 5120 (0 listed one by one, "
                          "5120 folded into 1 record)\n\n")
    assert section(out, WALL.format(n=1)) == [
        "     -  worker \u00d75120 (folded)  worker              3.0          1.0"
        "          4.0      75.0"]


def test_fold_row_on_a_stream_without_the_times_sign():
    stats = LineStats(tasks=[TaskRecord(0, "w", "w", 1, 1, 0, 0, 2),
                             TaskRecord(0, "v", "v", 1, 1, 0, 0, 3)])
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="ascii")
    show_tasks(stats, stream=stream)
    stream.flush()
    out = raw.getvalue().decode("ascii")
    assert "  w x2 (folded)  " in out and "  v x3 (folded)  " in out
    assert "Total tasks: 5 (0 listed one by one, 5 folded into 2 records)" in out


def test_no_task_data():
    buf = io.StringIO()
    show_tasks(LineStats(), stream=buf)
    assert buf.getvalue() == "No task data.\n"


def test_task_with_no_time_has_blank_active_percent():
    stats = LineStats(tasks=[TaskRecord(7, "idle", "c", 0, 0)])
    buf = io.StringIO()
    show_tasks(stats, stream=buf)
    row = section(buf.getvalue(), WALL.format(n=1))[0]
    # Id, Task, Coroutine (as wide as its header), Time, Await, Wall; no Active %.
    assert row == ("     7  idle  c" + " " * 8 + "  " + " ".join(["0.0".rjust(12)] * 3))


def test_long_names_widen_their_columns():
    stats = LineStats(tasks=[TaskRecord(1, "n" * 40, "Service.handle_connection", 1, 1)])
    buf = io.StringIO()
    show_tasks(stats, stream=buf)
    lines = buf.getvalue().splitlines()
    i = lines.index(WALL.format(n=1))
    assert lines[i + 2] == ("    Id  " + "Task".ljust(40) + "  Coroutine" + " " * 16
                            + "  " + "Time".rjust(12) + " " + "Await".rjust(12) + " "
                            + "Wall".rjust(12) + " " + "Active %".rjust(9))
    assert lines[i + 4].startswith("     1  " + "n" * 40 + "  Service.handle_connection  ")


# -- slow lines ----------------------------------------------------------------------

def test_default_threshold_is_asyncios_slow_callback_duration():
    loop = asyncio.new_event_loop()
    try:
        assert DEFAULT_SLOW == loop.slow_callback_duration == 0.1
    finally:
        loop.close()


def one_line(max_ns, unit=1e-9, f="/nonexistent/app.py"):
    return LineStats([FunctionStats(f, "Svc.handle", 1, "coroutine",
                                    {2: LineRecord(1, max_ns, 0, max_ns)})], unit)


@pytest.mark.parametrize("ms", [100, 0.3, 0.7, 1.1, 2.675, 50, 1000, 0.001])
def test_threshold_boundary(ms):
    threshold = lineprof.cli.milliseconds(str(ms))  # what --slow MS passes on
    at = round(ms * MS)
    assert slow_lines(one_line(at), threshold) == []  # exactly at: not slow
    assert [ln for _, ln, _ in slow_lines(one_line(at + 1), threshold)] == [2]


def test_threshold_boundary_in_a_coarser_unit():
    # unit 1e-6: 100 ms is 100000 counts.
    assert slow_lines(one_line(100_000, unit=1e-6), 0.1) == []
    assert len(slow_lines(one_line(100_001, unit=1e-6), 0.1)) == 1


def test_slow_lines_sorted_by_max_descending(src):
    stats = make_stats(src)
    found = slow_lines(stats, 0.0001)  # 0.1 ms: all but line 8 (Max 1 us)
    assert [(fs.name, ln) for fs, ln, _ in found] == [
        ("handler", 7), ("worker", 13), ("worker", 12), ("handler", 6)]


def test_slow_zero_lists_every_line_with_data(src):
    stats = make_stats(src)
    stats.functions[1].lines[14] = LineRecord(0, 0, 5, 0)  # await only: Max 0
    found = slow_lines(stats, 0)
    assert len(found) == 6
    assert (found[-1][1], found[-1][2].max_) == (14, 0)
    buf = io.StringIO()
    show_slow_lines(stats, 0, stream=buf)
    assert buf.getvalue().startswith("Lines by longest single stretch (Max):\n\n")
    assert len(buf.getvalue().splitlines()) == 2 + 2 + 6 + 1


def test_negative_threshold_is_refused(src):
    with pytest.raises(ValueError):
        slow_lines(make_stats(src), -0.001)
    with pytest.raises(ValueError):
        render(make_stats(src), slow=-1)


def test_no_slow_line_says_so_and_names_the_longest(src):
    buf = io.StringIO()
    show_slow_lines(make_stats(src), 0.3, stream=buf)
    assert buf.getvalue() == (
        f"No line held its thread longer than 300 ms; the longest Max was 250 ms, "
        f"{src}:7 in handler (--slow MS lowers the threshold).\n\n")


def test_nothing_written_without_a_timed_line():
    buf = io.StringIO()
    show_slow_lines(LineStats([], 1e-9), 0.3, stream=buf)
    assert buf.getvalue() == ""


def test_slow_line_of_a_missing_file_has_blank_source():
    buf = io.StringIO()
    show_slow_lines(one_line(200 * MS), stream=buf, output_unit=1e-3)
    assert buf.getvalue().splitlines()[-2] == (
        "       200.0         1  /nonexistent/app.py:2  Svc.handle")


# -- python -m lineprof, on synthetic profiles ----------------------------------------------

@pytest.fixture
def fake_files(monkeypatch):
    """Make ``main`` read ``{path: LineStats}`` instead of .lprof files."""
    files = {}

    def load(path):
        return files[path]

    monkeypatch.setattr(lineprof.cli, "load_stats", load)
    return files


def test_cli_shows_slow_lines_by_default(src, fake_files, capsys):
    fake_files["a.lprof"] = make_stats(src)
    assert main(["a.lprof"]) == 0
    out = capsys.readouterr().out
    rows = section(out, SLOW)
    assert [r.split()[2] for r in rows] == [f"{src}:7", f"{src}:13"]
    assert "Tasks:" not in out and "No task data." not in out
    # After the function tables, before nothing else.
    assert out.index(SLOW) > out.index("Function: worker")
    assert out.endswith("(3 more lines under 100 ms; --slow 0 lists every line)\n\n")


def test_cli_slow_threshold_and_no_slow(src, fake_files, capsys):
    fake_files["a.lprof"] = make_stats(src)
    assert main(["--slow", "150", "a.lprof"]) == 0
    out = capsys.readouterr().out
    assert len(section(out, "Lines that held the thread longer than 150 ms (Max):")) == 1
    assert "(4 more lines under 150 ms; --slow 0 lists every line)" in out
    assert main(["--slow", "0", "a.lprof"]) == 0
    assert len(section(capsys.readouterr().out,
                       "Lines by longest single stretch (Max):")) == 5
    assert main(["--no-slow", "a.lprof"]) == 0
    out = capsys.readouterr().out
    assert "Lines that held" not in out and "longest single stretch" not in out
    assert main(["--slow", "300", "a.lprof"]) == 0  # none that slow: no section
    assert "Lines that held" not in capsys.readouterr().out


def test_cli_slow_lines_with_summary_and_tasks(src, fake_files, capsys):
    fake_files["a.lprof"] = make_stats(src)
    assert main(["-u", "0.001", "--summarize", "--tasks", "--top", "2", "a.lprof"]) == 0
    out = capsys.readouterr().out
    assert out.index(SLOW) < out.index(" seconds - ") < out.index("\nTasks:\n")
    assert len(section(out, WALL.format(n=2))) == 2
    assert "       250.0         3  " in out  # Max in the output unit (ms)


def test_cli_tasks_of_two_merged_files(src, fake_files, capsys):
    fake_files["a.lprof"] = make_stats(src)
    second = make_stats(src, scale=2)
    second.functions[0].lines[7] = LineRecord(6, 800 * MS, 0, 400 * MS)
    second.tasks = second.tasks[:2]  # Task-1 and handler-a, ids 1 and 2
    fake_files["b.lprof"] = second
    assert main(["--tasks", "--top", "6", "a.lprof", "b.lprof"]) == 0
    out = capsys.readouterr().out
    assert "Total tasks: 5125 (5 listed one by one, 5120 folded into 1 record)" in out
    # b's ids follow a's largest id, 3.
    assert sorted(task_ids(section(out, WALL.format(n=6)))) == ["-", "1", "2", "3", "4", "5"]
    # Max is the max over the files, hits the sum.
    rows = section(out, SLOW)
    assert rows[0].split()[:3] == ["400000.0", "9", f"{src}:7"]


def test_cli_json_keeps_task_fields(src, fake_files, capsys):
    fake_files["a.lprof"] = make_stats(src)
    assert main(["--json", "--tasks", "--slow", "0", "a.lprof"]) == 0
    doc = json.loads(capsys.readouterr().out)
    with open(SCHEMA_PATH) as f:
        validate(doc, json.load(f))
    assert list(doc) == ["format", "version", "unit", "functions", "tasks"]  # no slow_lines
    assert doc["tasks"][3] == {"id": 0, "name": "worker", "coro": "worker",
                               "time": 380 * MS, "await": 9000 * MS, "first": 5 * MS,
                               "last": 3000 * MS, "folded": 5120}
    again = LineStats.from_dict(doc)
    assert again.tasks == make_stats(src).tasks
    assert again == make_stats(src)


def test_cli_json_of_merged_files_is_schema_v1(src, fake_files, capsys):
    fake_files["a.lprof"] = make_stats(src)
    fake_files["b.lprof"] = make_stats(src)
    assert main(["--json", "a.lprof", "b.lprof"]) == 0
    doc = json.loads(capsys.readouterr().out)
    with open(SCHEMA_PATH) as f:
        validate(doc, json.load(f))
    assert [t["id"] for t in doc["tasks"]] == [1, 2, 3, 0, 4, 5, 6, 0]


def run_cli(*args):
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "lineprof", *args], capture_output=True,
                          text=True, cwd=ROOT, env=env, timeout=60)


@pytest.mark.parametrize("args, fragment", [
    (["--slow", "-1"], "argument --slow: must be a number of milliseconds"),
    (["--slow", "abc"], "argument --slow: must be a number of milliseconds"),
    (["--slow", "nan"], "argument --slow"),
    (["--slow", "inf"], "argument --slow"),
    (["--slow"], "argument --slow: expected one argument"),
    (["--top", "0"], "argument --top: must be a whole number of at least 1"),
    (["--top", "-3"], "argument --top: must be a whole number of at least 1"),
    (["--top", "2.5"], "argument --top"),
    (["--top", "many"], "argument --top"),
    (["--slow", "5", "--no-slow"], "not allowed with argument"),
])
def test_bad_option_values_are_one_line_usage_errors(args, fragment):
    proc = run_cli("whatever.lprof", *args)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("lineprof: error: ") and fragment in lines[0]


def test_help_mentions_the_new_options():
    proc = run_cli("--help")
    assert proc.returncode == 0
    for option in ("--top N", "--slow MS", "--no-slow"):
        assert option in proc.stdout


# -- end to end: a real profile of a tiny asyncio program -------------------------------------

E2E_SRC = textwrap.dedent('''\
    import asyncio


    async def worker(i):
        await asyncio.sleep(0.001)
        return i


    async def main():
        return await asyncio.gather(*(worker(i) for i in range(3)))
''')


def test_cli_on_a_real_asyncio_profile(tmp_path):
    ext = pytest.importorskip("lineprof._lineprof", reason="the C extension is not built")
    from conftest import register

    path = tmp_path / "e2e_app.py"
    path.write_text(E2E_SRC)
    ns = {"__name__": "e2e_app"}
    exec(compile(E2E_SRC, str(path), "exec"), ns)
    prof = ext.Profiler()
    register(prof, [ns["worker"], ns["main"]])
    prof.enable()
    try:
        asyncio.run(ns["main"]())
    finally:
        prof.disable()
    out_file = tmp_path / "e2e.lprof"
    prof.dump(str(out_file))

    proc = run_cli("--tasks", "--slow", "0", str(out_file))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    out = proc.stdout
    assert "Function: worker at line 4" in out
    assert "\nLines by longest single stretch (Max):\n" in out
    assert f"{path}:5" in out and "await asyncio.sleep(0.001)" in out
    assert "\nTasks:\nTotal tasks: " in out
    for title in ("Wall (Time + Await)", "Time (active)", "Await"):
        assert f" tasks by {title}:\n" in out
    assert "  worker  " in out and "  main  " in out

    proc = run_cli("--json", str(out_file))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    with open(SCHEMA_PATH) as f:
        validate(doc, json.load(f))
    assert {t["coro"] for t in doc["tasks"]} >= {"main", "worker"}
