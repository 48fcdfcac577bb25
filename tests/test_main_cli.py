"""``python -m lineprof``: reports, merging, --json and one-line errors.

Profiles are made by a real ``LineProfiler`` (so the extension is needed);
most checks call ``lineprof.cli.main`` in-process, a few run the module in
a subprocess to see exit codes and stderr as a user would.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap

import pytest

from lineprof import load_stats
from lineprof.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytest.importorskip("lineprof._lineprof", reason="the C extension is not built")

WORK_SRC = textwrap.dedent('''\
    def work(n):
        total = 0
        for i in range(n):
            total += i
        return total


    async def waiter(q):
        item = await q.get()
        return item


    def never():
        return 0
''')


@pytest.fixture(scope="module")
def workmod(tmp_path_factory):
    folder = tmp_path_factory.mktemp("src")
    path = folder / "workmod.py"
    path.write_text(WORK_SRC)
    namespace = {"__name__": "workmod"}
    exec(compile(WORK_SRC, str(path), "exec"), namespace)
    return str(path), namespace


def make_profile(workmod, path, calls=1):
    import asyncio

    import lineprof

    src, ns = workmod
    prof = lineprof.LineProfiler(ns["work"], ns["waiter"], ns["never"])

    async def feed():
        q = asyncio.Queue()
        task = asyncio.ensure_future(prof(ns["waiter"])(q))
        await asyncio.sleep(0.002)
        q.put_nowait("x")
        return await task

    try:
        for _ in range(calls):
            prof.runcall(ns["work"], 10)
            asyncio.run(feed())
    finally:
        prof.disable()
    prof.dump_stats(path)
    return str(path)


@pytest.fixture(scope="module")
def profiles(workmod, tmp_path_factory):
    folder = tmp_path_factory.mktemp("profiles")
    one = make_profile(workmod, folder / "one.lprof", calls=1)
    two = make_profile(workmod, folder / "two.lprof", calls=2)
    return one, two


def run_cli(*args, cwd=None):
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "lineprof", *args], capture_output=True,
                          text=True, cwd=cwd or ROOT, env=env, timeout=60)


def assert_one_line_error(proc, code, *fragments):
    assert proc.returncode == code, proc
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("lineprof: ")
    for fragment in fragments:
        assert fragment in lines[0]
    assert proc.stdout == ""


# -- reports -----------------------------------------------------------------------------

def test_report_of_one_file(profiles, workmod, capsys):
    assert main([profiles[0]]) == 0
    out = capsys.readouterr().out
    src = workmod[0]
    assert out.startswith("Timer unit: 1e-06 s\n\n")
    assert f"File: {src}\nFunction: work at line 1\n" in out
    assert "Line #      Hits         Time  Per Hit   % Time  Line Contents\n" in out
    assert "Total await: " in out and "Function: waiter at line 8" in out
    assert ("Line #      Hits         Time  Per Hit   % Time        Await          Max"
            "  Line Contents") in out
    rows = {line.split()[0]: line.split() for line in out.splitlines()
            if line[:6].strip().isdigit() and len(line.split()) > 2}
    assert rows["3"][1] == "11"  # `for` ran 11 times
    assert "Function: never at line 13" in out


def test_subprocess_report_and_options(profiles):
    proc = run_cli("-u", "1", "-z", "--summarize", "-s", "--max", "--tasks", profiles[0])
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith("Timer unit: 1 s\n")
    assert "Function: never" not in out  # -z
    assert " seconds - " in out and "- waiter (await " in out
    assert out.rstrip().endswith("No task data.") or "\nTasks:\n" in out  # -t
    assert "% Time          Max  Line Contents" in out  # -m on a plain function
    assert proc.stderr == ""


def test_several_files_are_merged(profiles, capsys):
    assert main(["--json", *profiles]) == 0
    merged = json.loads(capsys.readouterr().out)
    single = [load_stats(p).to_dict() for p in profiles]

    def hits(doc, name, lineno):
        fn = next(f for f in doc["functions"] if f["name"] == name)
        return next(line["hits"] for line in fn["lines"] if line["lineno"] == lineno)

    assert hits(single[0], "work", 3) == 11 and hits(single[1], "work", 3) == 22
    assert hits(merged, "work", 3) == 33
    assert len(merged["functions"]) == 3


def test_json_output_is_schema_v1(profiles, capsys):
    assert main(["--json", profiles[0]]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc == load_stats(profiles[0]).to_dict()  # validated in test_stats.py
    assert doc["format"] == "lineprof" and doc["version"] == 1 and doc["unit"] == 1e-9
    kinds = {f["name"]: f["kind"] for f in doc["functions"]}
    assert kinds == {"work": "function", "waiter": "coroutine", "never": "function"}
    waiter = next(f for f in doc["functions"] if f["name"] == "waiter")
    assert sum(line["await"] for line in waiter["lines"]) > 0
    try:
        import jsonschema
    except ImportError:
        return
    with open(os.path.join(ROOT, "docs", "lineprof.schema.json")) as f:
        jsonschema.validate(doc, json.load(f))


# -- errors -------------------------------------------------------------------------------

def test_missing_file(tmp_path):
    assert_one_line_error(run_cli(str(tmp_path / "nope.lprof")), 1, "nope.lprof", "no such file")


def test_directory(tmp_path):
    assert_one_line_error(run_cli(str(tmp_path)), 1, "is a directory")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.lprof"
    path.write_bytes(b"")
    assert_one_line_error(run_cli(str(path)), 1, "empty.lprof", "empty file")


@pytest.mark.parametrize("damage", ["garbage", "truncated", "bitflip"])
def test_damaged_file(profiles, tmp_path, damage):
    data = open(profiles[0], "rb").read()
    if damage == "garbage":
        data = b"hello, not a profile\n" * 10
    elif damage == "truncated":
        data = data[: len(data) // 2]
    else:
        mid = len(data) // 2
        data = data[:mid] + bytes([data[mid] ^ 0xFF]) + data[mid + 1:]
    path = tmp_path / f"{damage}.lprof"
    path.write_bytes(data)
    proc = run_cli(str(path))
    assert_one_line_error(proc, 1, f"{damage}.lprof")


def test_line_profiler_pickle(tmp_path):
    path = tmp_path / "app.py.lprof"
    path.write_bytes(pickle.dumps({"timings": {}, "unit": 1e-9}, protocol=5))
    proc = run_cli(str(path))
    assert_one_line_error(proc, 1, "is a line_profiler pickle",
                          f"python -m line_profiler {path}")


def test_one_bad_file_among_good_ones(profiles, tmp_path):
    proc = run_cli(profiles[0], str(tmp_path / "missing.lprof"))
    assert_one_line_error(proc, 1, "missing.lprof")


@pytest.mark.parametrize("unit", ["0", "-1", "abc", "nan", "inf"])
def test_bad_unit_is_a_usage_error(profiles, unit):
    proc = run_cli("-u", unit, profiles[0])
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "lineprof: error: argument -u/--unit: must be a positive number" in proc.stderr


def test_no_file_is_a_usage_error():
    proc = run_cli()
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_rich_missing_is_exit_2(profiles, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "rich", None)
    assert main(["-r", profiles[0]]) == 2
    err = capsys.readouterr().err
    assert err == ("lineprof: rich output needs the 'rich' package; "
                   "install it with: pip install rich\n")


def test_main_returns_int_for_errors(tmp_path, capsys):
    assert main([str(tmp_path / "x.lprof")]) == 1
    assert capsys.readouterr().err == f"lineprof: {tmp_path / 'x.lprof'}: no such file\n"
