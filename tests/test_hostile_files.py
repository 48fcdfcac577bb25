"""Profiles made to hurt whoever views them (issue 16, item 5).

Every file here is well formed: a valid CRC, sections that add up, so the
reader accepts it.  What it says is hostile: a recorded line a hundred
million lines after its function's first line, an absurd ``firstlineno``,
a ``file`` that is ``/dev/zero``, a FIFO or a huge file, names full of
terminal escape sequences.  Each test runs the real command
(``python -m lineprof FILE``, ``python -m lineprof top``) in a subprocess
under a 1 GiB address-space limit and a timeout, and checks that it exits 0
quickly, with little memory, and that no control character from the file
reaches the terminal (the escaped form, e.g. ``\\x1b``, shows instead).
The rows are in docs/bad-input.md.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import shutil
import signal
import socket
import struct
import tempfile
import threading
import zlib

import pytest

from conftest import run_lineprof_limited

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("lineprof._lineprof") is None,
                       reason="the C extension is not built"),
    pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX only"),
]

#: The child's address space: far below what the unfixed viewer wanted.
#: Peak resident memory allowed to the child, in MiB (a bare run takes ~30).
MAX_RSS_MB = 150
#: The child is killed after this long; it must finish well before.
TIMEOUT = 30.0
FAST = 10.0

has_rich = importlib.util.find_spec("rich") is not None


# -- writing .lprof files (docs/format.md) --------------------------------------------------------

MAGIC = b"\x89LPROF\r\n"


def _str(text):
    data = text.encode()
    return struct.pack("<I", len(data)) + data


def section(tag, body):
    return tag + struct.pack("<Q", len(body)) + body


def func(file, name, firstlineno, lines, kind=0):
    """A FUNC section; ``lines`` holds ``(lineno, hits, time[, await, max])``."""
    lines = sorted(tuple(rec) + (0,) * (5 - len(rec)) for rec in lines)
    base = lines[0][0] if lines else max(firstlineno, 1)
    nlines = lines[-1][0] - base + 1 if lines else 1
    body = _str(file) + _str(name) + struct.pack(
        "<iIiII", firstlineno, kind, base, nlines, len(lines))
    for rec in lines:
        body += struct.pack("<iQQQQ", *rec)
    return section(b"FUNC", body)


def meta(**pairs):
    body = struct.pack("<I", len(pairs))
    for key, value in pairs.items():
        body += _str(key) + _str(value)
    return section(b"META", body)


def tasks(*records):
    """A TASK section; each record is ``(id, name, coro, time, await)``."""
    body = b""
    for tid, name, coro, time_, await_ in records:
        body += (struct.pack("<Q", tid) + _str(name) + _str(coro)
                 + struct.pack("<QQQQQ", time_, await_, 0, time_ + await_, 0))
    return section(b"TASK", body)


def now(*records):
    """A NOW section; each record is ``(thread, task, elapsed, func index, lineno)``."""
    return section(b"NOW ", b"".join(struct.pack("<QQQIi", *r) for r in records))


def profile(*sections):
    """Return a whole file: the header (length and CRC-32 right) and the sections."""
    payload = b"".join(sections)
    return MAGIC + struct.pack("<IIQII", 1, 32, len(payload), zlib.crc32(payload), 0) + payload


# -- running the commands under limits ------------------------------------------------------------

class Result:
    def __init__(self, status, stdout, stderr, seconds, rss_mb):
        self.returncode, self.stdout, self.stderr = status, stdout, stderr
        self.seconds, self.rss_mb = seconds, rss_mb

    @property
    def text(self):
        return self.stdout.decode("utf-8", "backslashreplace")

    def __repr__(self):
        return (f"<exit {self.returncode} in {self.seconds:.1f} s, {self.rss_mb:.0f} MiB; "
                f"stderr {self.stderr[-2000:]!r}>")


def lineprof_limited(*args, cwd, timeout=TIMEOUT):
    """Run ``python -m lineprof ARGS`` under the memory limit; return its Result.

    The child is killed at ``timeout``; its peak RSS is NaN then (or where
    there is no /proc).
    """
    code, stdout, stderr, seconds, rss = run_lineprof_limited(args, cwd=cwd, timeout=timeout,
                                                              COLUMNS="100")
    return Result(code, stdout, stderr, seconds, math.nan if rss is None else rss)


def assert_quick_and_small(res):
    assert res.returncode != -signal.SIGKILL, f"killed after {TIMEOUT:g} s: {res!r}"
    assert "Traceback" not in res.stderr, res
    assert res.seconds < FAST, res
    if os.path.exists("/proc/self/status"):
        assert res.rss_mb < MAX_RSS_MB, res


def assert_ok(res):
    assert_quick_and_small(res)
    assert res.returncode == 0, res
    assert res.stderr == "", res


# What the terminal must never get from a file: C0 but tab and newline, DEL, C1 (UTF-8).
CONTROL = re.compile(rb"[\x00-\x08\x0b-\x1f\x7f]|\xc2[\x80-\x9f]")
# What rich writes itself with -r: colours (SGR) and hyperlinks (OSC 8).
RICH_OWN = re.compile(rb"\x1b\[[0-9;]*m|\x1b\]8;[^\x1b\x07]*\x1b\\")


def assert_no_control(stdout, rich=False):
    if rich:
        stdout = RICH_OWN.sub(b"", stdout)
    found = CONTROL.findall(stdout)
    assert not found, (found[:10], stdout[:3000])


# -- a recorded line far from its function --------------------------------------------------------

@pytest.mark.parametrize("source", [False, True], ids=["no-source", "source"])
def test_line_far_after_firstlineno(tmp_path, source):
    """A 100-byte file whose one record lies 10**8 lines after firstlineno."""
    if source:
        (tmp_path / "far.py").write_text("def f():\n    return 1\n")
    (tmp_path / "far.lprof").write_bytes(profile(func("far.py", "f", 1, [(100_000_001, 1, 10)])))
    res = lineprof_limited("far.lprof", cwd=tmp_path)
    assert_ok(res)
    lines = res.text.splitlines()
    assert len(lines) < 40, res.text
    if source:  # line_profiler shows the function's block; the far line is not in it
        assert "     1                                           def f():" in lines
        assert "100000001" not in res.text
    else:
        assert "   ...                                           (lines 2 to 100000000 not shown)" \
            in lines
        assert "100000001         1          0.0      0.0    100.0  " in lines


def test_rows_are_bounded_by_the_recorded_lines(tmp_path):
    """2000 records 500 lines apart: a row or two per record, not 10**6 rows.

    (The reader's line budget, docs/format.md, keeps one function's line
    array to about a million lines plus one per byte.)
    """
    records = [(1 + 500 * i, 1, 10) for i in range(1, 2001)]
    (tmp_path / "spread.lprof").write_bytes(profile(func("spread.py", "f", 1, records)))
    res = lineprof_limited("spread.lprof", cwd=tmp_path)
    assert_ok(res)
    body = res.text.split("=" * 62 + "\n", 1)[1]
    assert len(body.splitlines()) <= 2 * len(records) + 5
    assert body.count("not shown)") == len(records)


@pytest.mark.parametrize("firstlineno", [-2**31, -1, 0, 2**31 - 1])
@pytest.mark.parametrize("source", [False, True], ids=["no-source", "source"])
def test_absurd_firstlineno(tmp_path, firstlineno, source):
    if source:
        (tmp_path / "neg.py").write_text("def f():\n    return 1\n" * 5)
    (tmp_path / "neg.lprof").write_bytes(
        profile(func("neg.py", "f", firstlineno, [(5, 1, 10), (7, 2, 20)])))
    res = lineprof_limited("neg.lprof", cwd=tmp_path)
    assert_ok(res)
    lines = res.text.splitlines()
    assert len(lines) < 40, res.text
    if source:  # no source line is shown at a line number it does not have
        assert not any(line.endswith("def f():") for line in lines), res.text
    elif firstlineno == -2**31:
        assert f"(lines {firstlineno + 1} to 4 not shown)" in res.text
    elif firstlineno == -1:  # a short run is shown, as line_profiler does
        assert [line.split()[0] for line in lines[-10:-1]] == [str(n) for n in range(-1, 8)]


@pytest.mark.parametrize("shape", ["long-function", "no-def"])
def test_long_source_is_cut(tmp_path, shape):
    """A block is shown (and tokenized) up to 10,000 lines or 512 KiB, then one marker row.

    "no-def": 15 MiB of statements and no def: inspect.getblock looks for
    a def through the whole file (half a minute on 3.11) to return one line.
    """
    if shape == "long-function":
        text = "def f():\n" + "    x = 1\n" * 30_000
    else:
        line = "x = [1, 2, 3] + foo(bar, 'baz')  # a statement, no def\n"
        text = line * ((15 << 20) // len(line))
    (tmp_path / "long.py").write_text(text)
    (tmp_path / "long.lprof").write_bytes(
        profile(func("long.py", "f", 1, [(2, 1, 10), (25_000, 1, 10)])))
    res = lineprof_limited("long.lprof", cwd=tmp_path)
    assert_ok(res)
    lines = res.text.splitlines()
    rows = lines[lines.index("=" * 62) + 1:-1]
    if shape == "no-def":
        assert len(rows) == 1, rows[-3:]
        return
    assert len(rows) == 10_001, rows[-3:]
    assert rows[-2].startswith(" 10000 ")
    assert rows[-1] == "   ...%43s(lines from 10001 on not shown)" % ""


# -- sources that are not regular files -----------------------------------------------------------

def _not_regular(tmp_path, kind):
    """Return the path of a source 'file' of ``kind`` and the reason the report gives."""
    if kind in ("/dev/zero", "/dev/urandom"):
        if not os.path.exists(kind):
            pytest.skip(f"no {kind} here")
        return kind, "not a regular file"
    path = str(tmp_path / f"{kind}.py")
    if kind == "fifo":
        os.mkfifo(path)
        return path, "not a regular file"
    if kind == "directory":
        os.mkdir(path)
        return path, "not a regular file"
    if kind == "many-lines":  # read as a list of lines, ~1 GB
        with open(path, "wb") as f:
            f.write(b"\n" * (15 << 20))
        return path, "over 1,000,000 lines"
    assert kind == "huge"  # sparse: 17 MiB of NUL bytes that take no disk
    with open(path, "wb") as f:
        f.truncate(17 << 20)
    return path, "over 16 MiB"


def _source_profile(path):
    # Max of 0.5 s puts the line in the slow-lines section, and the NOW
    # record in the "running when this snapshot was taken" one: both show
    # the line's source too.
    return profile(
        func(path, "f", 1, [(2, 3, 10**6, 0, 5 * 10**8)]),
        tasks((1, "Task-1", "main", 10**6, 0)),
        now((1, 1, 10**6, 0, 2)))


@pytest.mark.parametrize("kind", ["/dev/zero", "/dev/urandom", "fifo", "directory", "huge",
                                  "many-lines"])
@pytest.mark.parametrize("flags", [(), ("--summarize", "--tasks", "--max", "--slow", "0"), ("-r",)],
                         ids=["plain", "sections", "rich"])
def test_source_is_not_a_regular_file(tmp_path, kind, flags):
    if "-r" in flags and not has_rich:
        pytest.skip("rich is not installed")
    path, reason = _not_regular(tmp_path, kind)
    (tmp_path / "dev.lprof").write_bytes(_source_profile(path))
    res = lineprof_limited(*flags, "dev.lprof", cwd=tmp_path)
    assert_ok(res)
    assert f"\nNot reading file {path}: {reason}\nContinuing without the function's contents.\n" \
        in res.text
    if flags[:1] == ("--summarize",):
        assert f"seconds - {path}:1 - f" in res.text


# -- control characters in names and sources ------------------------------------------------------

EVIL = "\x1b[2J\x1b[H\x1b]0;owned\x07\r\x9b\x7f\n"
EVIL_SHOWN = "\\x1b[2J\\x1b[H\\x1b]0;owned\\x07\\r\\x9b\\x7f\\n"
SOURCE_EVIL = "\x1b[2J\x1b]0;owned\x07\x9b"  # what a source line can hold (no CR, no NL)
SOURCE_EVIL_SHOWN = "\\x1b[2J\\x1b]0;owned\\x07\\x9b"


def _evil_profile(tmp_path):
    """A profile with escape sequences in every name, one function with a real source."""
    src = f"src{EVIL[:4]}.py"  # a file name may hold ESC, not NUL or "/"
    (tmp_path / src).write_text(
        f"def f():\n    x = '{SOURCE_EVIL}'  # {SOURCE_EVIL}\n    return x\n")
    missing = f"/nonexistent/m{EVIL}[/x][bold].py"  # also rich markup, for -r
    return src, profile(
        meta(python=f"3.12{EVIL}", backend=f"settrace{EVIL}"),
        func(src, f"f{EVIL}", 1, [(2, 3, 10**6, 0, 5 * 10**8), (3, 3, 10**5)]),
        func(missing, f"g{EVIL}", 1, [(2, 1, 10**6, 10**6, 5 * 10**8)], kind=2),
        tasks((1, f"Task{EVIL}", f"main{EVIL}", 10**6, 10**6)),
        now((1, 1, 10**6, 0, 2), (2, 0, 10**6, 1, 2)))


@pytest.mark.parametrize("flags", [
    (), ("--summarize",), ("--tasks",), ("--max", "--slow", "0"),
    ("--summarize", "--tasks", "-s", "-z"), ("-r",), ("-r", "--summarize", "--tasks"),
])
def test_control_characters_are_escaped(tmp_path, flags):
    if "-r" in flags and not has_rich:
        pytest.skip("rich is not installed")
    src, data = _evil_profile(tmp_path)
    (tmp_path / "evil.lprof").write_bytes(data)
    res = lineprof_limited(*flags, "evil.lprof", cwd=tmp_path)
    assert_ok(res)
    rich = "-r" in flags
    assert_no_control(res.stdout, rich=rich)
    text = RICH_OWN.sub(b"", res.stdout).decode() if rich else res.text
    assert f"src\\x1b[2J.py" in text
    assert EVIL_SHOWN in text
    if not rich:  # rich splits highlighted code into styled pieces
        assert SOURCE_EVIL_SHOWN in text
    if "--summarize" in flags:
        assert f"seconds - src\\x1b[2J.py:1 - f{EVIL_SHOWN}" in text
    if "--tasks" in flags:
        assert f"Task{EVIL_SHOWN}" in text and f"main{EVIL_SHOWN}" in text


def test_json_keeps_names_exactly(tmp_path):
    """--json was already safe: JSON escapes control characters.  It stays so."""
    src, data = _evil_profile(tmp_path)
    (tmp_path / "evil.lprof").write_bytes(data)
    res = lineprof_limited("--json", "evil.lprof", cwd=tmp_path)
    assert_ok(res)
    assert_no_control(res.stdout)
    doc = json.loads(res.stdout)
    assert [f["name"] for f in doc["functions"]] == [f"f{EVIL}", f"g{EVIL}"]
    assert doc["tasks"][0]["name"] == f"Task{EVIL}"


@pytest.mark.parametrize("case", ["far", "negative", "dev-zero", "fifo"])
def test_json_of_hostile_files(tmp_path, case):
    if case == "fifo":
        os.mkfifo(tmp_path / "fifo.py")
    file, first, line = {"far": ("far.py", 1, 100_000_001), "negative": ("neg.py", -2**31, 5),
                         "dev-zero": ("/dev/zero", 1, 2), "fifo": ("fifo.py", 1, 2)}[case]
    (tmp_path / "x.lprof").write_bytes(profile(func(file, "f", first, [(line, 1, 10)])))
    res = lineprof_limited("--json", "x.lprof", cwd=tmp_path)
    assert_ok(res)
    (fn,) = json.loads(res.stdout)["functions"]
    assert (fn["file"], fn["firstlineno"], fn["lines"][0]["lineno"]) == (file, first, line)


# -- lineprof top on a hostile snapshot -----------------------------------------------------------

@pytest.fixture
def sockdir():
    """A short directory for unix sockets (sun_path holds 107 bytes)."""
    d = tempfile.mkdtemp(prefix="lp", dir="/tmp")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def serve_snapshot(path, payload):
    """Answer each request at unix socket ``path`` with ``payload``; return a stop function."""
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(path)
    srv.listen()
    srv.settimeout(0.2)
    done = threading.Event()

    def loop():
        while not done.is_set():
            try:
                conn, _ = srv.accept()
            except socket.timeout:
                continue
            with conn:
                conn.settimeout(5)
                try:
                    while conn.recv(256):
                        conn.sendall(b"LINEPROF/1 OK %d\n" % len(payload) + payload)
                except OSError:
                    pass

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()

    def stop():
        done.set()
        thread.join()
        srv.close()

    return stop


@pytest.mark.parametrize("json_out", [False, True], ids=["text", "json"])
def test_top_renders_a_hostile_snapshot(tmp_path, sockdir, json_out):
    src, _ = _evil_profile(tmp_path)
    fifo = str(tmp_path / "fifo.py")
    os.mkfifo(fifo)
    missing = f"/nonexistent/m{EVIL}.py"
    payload = profile(
        meta(python=f"3.12{EVIL}", backend=f"settrace{EVIL}"),
        func(src, f"f{EVIL}", 1, [(2, 3, 10**9, 0, 5 * 10**8), (3, 3, 10**5)]),
        func(missing, f"g{EVIL}", 1, [(2, 1, 10**6, 10**9, 5 * 10**8)], kind=2),
        func("/dev/zero", "z", 1, [(2, 5, 10**7, 0, 5 * 10**8)]),
        func(fifo, "q", 1, [(2, 5, 10**7, 0, 5 * 10**8)]),
        tasks((1, f"Task{EVIL}", f"main{EVIL}", 10**6, 10**6)),
        now((1, 1, 10**6, 0, 2), (2, 0, 10**6, 1, 2), (3, 0, 10**6, 2, 2), (4, 0, 10**6, 3, 2)))
    addr = f"unix:{sockdir}/evil"
    stop = serve_snapshot(addr[5:], payload)
    try:
        res = lineprof_limited("top", "--once", "--top", "20",
                               *(["--json"] if json_out else []), addr, cwd=tmp_path)
    finally:
        stop()
    assert_ok(res)
    assert_no_control(res.stdout)
    if json_out:
        doc = json.loads(res.stdout)
        assert doc["functions"][0]["name"] == f"f{EVIL}"
        return
    text = res.text
    assert f"python 3.12{EVIL_SHOWN}" in text
    assert f"f{EVIL_SHOWN}"[:30] in text
    assert f"task Task{EVIL_SHOWN}"[:30] in text
    assert SOURCE_EVIL_SHOWN in text


# -- ordinary sources read as linecache reads them -------------------------------------------------

@pytest.mark.parametrize("data", [
    b"def f():\n    return 1\n",
    b"def f():\r\n    return 1\r\n",
    b"def f():\r    return 1\r",
    b"\xef\xbb\xbfdef f():\n    return '\xc3\xa9'\n",
    b"# -*- coding: latin-1 -*-\ndef f():\n    return '\xe9'\n",
    b"def f():\n\x0c\n    return 1",
    b"def f():\n    return '\xff'\n",  # not UTF-8: no source
], ids=["lf", "crlf", "cr", "bom", "latin-1", "no-final-newline", "bad-utf8"])
def test_sources_read_as_linecache_reads_them(tmp_path, data):
    import linecache

    from lineprof.report import source_line

    path = tmp_path / "src.py"
    path.write_bytes(data)
    try:
        expected = linecache.getlines(str(path))
    except UnicodeDecodeError:  # 3.8's linecache raises where 3.9+ gives no lines
        expected = []
    got = [source_line(str(path), n) for n in range(1, len(expected) + 2)]
    assert got == expected + [""]


def test_an_edited_source_is_read_again(tmp_path):
    from lineprof.report import source_line

    path = tmp_path / "src.py"
    path.write_text("a = 1\n")
    assert source_line(str(path), 1) == "a = 1\n"
    path.write_text("b = 22\n")  # another size: seen even within one mtime tick
    assert source_line(str(path), 1) == "b = 22\n"
