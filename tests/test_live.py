"""The native worker, end to end: kernprof -i and --live, python -m lineprof top.

The headline: the worker thread answers while the profiled program's event
loop is blocked inside a profiled line (``time.sleep(3600)``), and shows
that line as running now, for as long as it has been running.  Truth comes
from the test's own clock and from counts the child announces.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

import pytest

from conftest import child_env as _env

import lineprof
from lineprof.stats import load_stats
from lineprof.top import LiveClient, LiveError, LiveGone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT = 10.0

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="POSIX only")


@pytest.fixture
def sockdir():
    """A short directory for unix sockets (sun_path holds 107 bytes)."""
    d = tempfile.mkdtemp(prefix="lp", dir="/tmp")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def spawn(tmp_path, source: str, *flags: str, name: str = "app.py") -> subprocess.Popen:
    """Start kernprof -l FLAGS on a script; stdout is a pipe the script announces on."""
    script = tmp_path / name
    script.write_text(textwrap.dedent(source))
    return subprocess.Popen(
        [sys.executable, "-m", "kernprof", "-l", *flags, str(script)],
        cwd=str(tmp_path), env=_env(), stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(proc: subprocess.Popen, word: str) -> float:
    """Read the child's stdout up to a line ``word``; return perf_counter() then."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.strip() == word:
            return time.perf_counter()
        if line == "" and proc.poll() is not None:
            break
    proc.kill()
    out, err = proc.communicate()
    raise AssertionError(f"child never said {word!r}; stderr:\n{err}")


def finish(proc: subprocess.Popen) -> subprocess.CompletedProcess:
    out, err = proc.communicate(timeout=TIMEOUT)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def lineprof_cmd(*args: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lineprof", *args], env=_env(),
                          capture_output=True, text=True, timeout=timeout)


def line_of(path, marker: str) -> int:
    for i, text in enumerate(open(path).read().splitlines(), 1):
        if marker in text:
            return i
    raise AssertionError(marker)


STUCK = """\
    import asyncio, sys, time

    @profile
    async def handler(i):
        await asyncio.sleep(0.001)
        return i * 2

    @profile
    async def stuck():
        await asyncio.sleep(0.01)
        print("stuck", flush=True)
        time.sleep(3600)  # STUCK

    async def main():
        await asyncio.gather(*(handler(i) for i in range(20)))
        await asyncio.create_task(stuck(), name="the-stuck-task")

    asyncio.run(main())
"""


def test_live_view_answers_while_the_loop_is_blocked(tmp_path, sockdir):
    addr = f"unix:{sockdir}/s"
    proc = spawn(tmp_path, STUCK, "--live", addr)
    try:
        t_stuck = wait_for(proc, "stuck")
        time.sleep(0.5)
        client = LiveClient(addr, timeout=5.0)
        latencies, snaps = [], []
        for _ in range(3):
            t0 = time.perf_counter()
            snaps.append(client.snapshot())
            latencies.append(time.perf_counter() - t0)
            time.sleep(0.2)
        t_last = time.perf_counter()
        client.close()
        # The worker answers at once, although the Python thread is asleep
        # inside a profiled line: a fraction of a second at most.
        assert max(latencies) < 0.5, latencies
        stats, now = snaps[-1]
        assert len(now) == 1, now
        entry = now[0]
        assert entry["function"] == "stuck"
        assert entry["lineno"] == line_of(tmp_path / "app.py", "# STUCK")
        assert entry["task"] == "the-stuck-task"
        elapsed = entry["elapsed"] * stats.unit
        # On the line since just before "stuck" was read, until the snapshot.
        assert t_last - t_stuck - 0.05 <= elapsed + 0.25, (elapsed, t_last - t_stuck)
        assert elapsed <= t_last - t_stuck + 1.0
        # Elapsed grows between snapshots like the test's clock.
        e0 = snaps[0][1][0]["elapsed"] * stats.unit
        assert elapsed - e0 >= 0.35
        # The settled line counters show the stuck line's time so far and its
        # Max, and the handlers' true hits.
        stuck_fs = next(f for f in stats.functions if f.name == "stuck")
        rec = stuck_fs.lines[entry["lineno"]]
        assert rec.hits == 1 and abs(rec.time * stats.unit - elapsed) < 0.05
        assert rec.max_ == rec.time
        handler = next(f for f in stats.functions if f.name == "handler")
        assert handler.total_hits == 20 * 2
        # The command-line client says the same.
        t0 = time.perf_counter()
        out = lineprof_cmd("top", "--once", "--json", addr)
        assert out.returncode == 0, out.stderr
        data = json.loads(out.stdout)
        assert data["format"] == "lineprof" and data["version"] == 1
        assert [(n["function"], n["task"]) for n in data["now"]] == [("stuck", "the-stuck-task")]
        assert data["now"][0]["elapsed"] * data["unit"] >= elapsed
        assert set(data["now"][0]) == {"thread", "task", "function", "file", "lineno", "elapsed"}
        text = lineprof_cmd("top", "--once", addr)
        assert text.returncode == 0, text.stderr
        assert "time.sleep(3600)  # STUCK" in text.stdout
        assert "task the-stuck-task" in text.stdout
    finally:
        proc.kill()
        proc.communicate()


def test_top_json_matches_the_schema(tmp_path, sockdir):
    from conftest import require

    jsonschema = require("jsonschema")
    schema = json.load(open(os.path.join(ROOT, "docs", "lineprof.schema.json")))
    addr = f"unix:{sockdir}/s"
    proc = spawn(tmp_path, STUCK, "--live", addr)
    try:
        wait_for(proc, "stuck")
        out = lineprof_cmd("top", "--once", "--json", addr)
        assert out.returncode == 0, out.stderr
        jsonschema.validate(json.loads(out.stdout), schema)
    finally:
        proc.kill()
        proc.communicate()


KILLED = """\
    import time

    @profile
    def work(n):
        total = 0
        for i in range(n):
            total += i  # LOOP
        return total

    for _ in range(7):
        work(1000)
    print("done", flush=True)
    time.sleep(3600)
"""


def test_periodic_flush_survives_sigkill(tmp_path):
    out = tmp_path / "out.lprof"
    proc = spawn(tmp_path, KILLED, "-i", "0.1", "-o", str(out))
    try:
        t_done = wait_for(proc, "done")
        # One flush period after "done", plus slack for a loaded machine.
        deadline = time.perf_counter() + TIMEOUT
        while time.perf_counter() < deadline:
            time.sleep(0.1)
            if out.exists() and time.perf_counter() - t_done > 0.5:
                stats = load_stats(str(out))
                fs = [f for f in stats.functions if f.name == "work"]
                if fs and fs[0].total_hits > 0:
                    line = line_of(tmp_path / "app.py", "# LOOP")
                    if fs[0].lines[line].hits == 7 * 1000:
                        break
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    stats = load_stats(str(out))  # complete and readable, like any profile
    work = next(f for f in stats.functions if f.name == "work")
    assert work.lines[line_of(tmp_path / "app.py", "# LOOP")].hits == 7 * 1000
    assert work.lines[line_of(tmp_path / "app.py", "return total")].hits == 7
    shown = lineprof_cmd(str(out))
    assert shown.returncode == 0 and "total += i" in shown.stdout


def test_killed_while_stuck_shows_where(tmp_path):
    """kill -9 a program stuck in a profiled line: the last snapshot says which line, for how long."""
    out = tmp_path / "out.lprof"
    src = """\
        import time

        @profile
        def stuck():
            print("stuck", flush=True)
            time.sleep(3600)  # STUCK

        stuck()
    """
    proc = spawn(tmp_path, src, "-i", "0.1", "-o", str(out))
    try:
        t_stuck = wait_for(proc, "stuck")
        time.sleep(1.0)
        t_kill = time.perf_counter()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    stats = load_stats(str(out))
    line = line_of(tmp_path / "app.py", "# STUCK")
    assert [(n["function"], n["lineno"]) for n in stats.now] == [("stuck", line)]
    elapsed = stats.now[0]["elapsed"] * stats.unit
    # The last flush came at most one period (plus a loaded machine's slack) before the kill.
    assert t_kill - t_stuck - 0.6 <= elapsed <= t_kill - t_stuck + 0.1, elapsed
    rec = stats.functions[0].lines[line]
    assert abs(rec.time * stats.unit - elapsed) < 0.01 and rec.max_ == rec.time
    shown = lineprof_cmd(str(out))
    assert shown.returncode == 0
    assert "Running when this snapshot was taken" in shown.stdout
    assert "time.sleep(3600)  # STUCK" in shown.stdout.split("Running when")[1]
    data = json.loads(lineprof_cmd("--json", str(out)).stdout)
    assert data["now"][0]["lineno"] == line


def test_flush_file_is_always_complete(tmp_path):
    """Read the flushed file as fast as possible while it is rewritten: every read parses."""
    out = tmp_path / "out.lprof"
    src = """\
        import time

        @profile
        def f(i):
            return i + 1

        t = time.monotonic()
        print("go", flush=True)
        while time.monotonic() - t < 1.5:
            f(1)
    """
    proc = spawn(tmp_path, src, "-i", "0.01", "-o", str(out))
    wait_for(proc, "go")
    reads = 0
    while proc.poll() is None:
        try:
            data = out.read_bytes()
        except FileNotFoundError:
            continue
        lineprof._lineprof.parse(data)  # raises FormatError on a torn file
        reads += 1
    finish(proc)
    assert reads > 10
    assert load_stats(str(out)).functions[0].total_hits > 0


def test_malformed_requests_do_not_disturb_the_program(tmp_path, sockdir):
    addr = f"unix:{sockdir}/s"
    src = """\
        import sys

        @profile
        def f(i):
            return i * 2

        print("ready", flush=True)
        sys.stdin.readline()  # the test says when to go on
        total = sum(f(i) for i in range(1000))
        print(total, flush=True)
    """
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent(src))
    proc = subprocess.Popen([sys.executable, "-m", "kernprof", "-l", "--live", addr, str(script)],
                            cwd=str(tmp_path), env=_env(), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(proc, "ready")
        path = addr[len("unix:"):]

        def connect() -> socket.socket:
            # A full listen backlog makes a unix connect fail with EAGAIN
            # (a slow worker: under ASan, on a loaded machine): try again.
            deadline = time.monotonic() + TIMEOUT
            while True:
                s = socket.socket(socket.AF_UNIX)
                s.settimeout(5)
                try:
                    s.connect(path)
                    return s
                except BlockingIOError:
                    s.close()
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.01)

        def exchange(payload: bytes) -> bytes:
            s = connect()
            s.sendall(payload)
            data = b""
            while not data.endswith(b"\n"):  # every reply here is one line
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            s.close()
            return data

        assert exchange(b"GET / HTTP/1.1\r\n\r\n").startswith(b"LINEPROF/1 ERR bad-request ")
        assert exchange(b"LINEPROF/1 snapshot\n").startswith(b"LINEPROF/1 ERR bad-request ")
        assert exchange(b"LINEPROF/1 " + b"X" * 1000).startswith(b"LINEPROF/1 ERR too-long ")
        assert exchange(bytes(range(256))).startswith(b"LINEPROF/1 ERR bad-request ")
        # A client that connects and leaves, or leaves in the middle of a reply.
        for _ in range(20):
            s = connect()
            s.sendall(b"LINEPROF/1 SNAPSHOT\n")
            s.close()
        # Every place taken by idle clients: a newcomer is still served. The
        # client silent longest made room for it: one of the leavers above if
        # the worker had not seen it go yet, else the first of these.
        held = []
        for _ in range(8):
            s = connect()
            s.sendall(b"LINEPROF/1 PING\n")
            assert s.recv(100) == b"LINEPROF/1 OK 0\n"
            held.append(s)
        assert exchange(b"LINEPROF/1 PING\n") == b"LINEPROF/1 OK 0\n"
        readable = select.select(held, [], [], 0.2)[0]
        assert readable in ([], [held[0]]), readable
        if readable:
            assert held[0].recv(100) == b""
        for s in held[1:]:
            s.sendall(b"LINEPROF/1 PING\n")
            assert s.recv(100) == b"LINEPROF/1 OK 0\n"
        for s in held:
            s.close()
        deadline = time.monotonic() + TIMEOUT
        while exchange(b"LINEPROF/1 PING\n") != b"LINEPROF/1 OK 0\n":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        proc.stdin.write("go\n")
        proc.stdin.flush()
        done = finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == str(sum(i * 2 for i in range(1000)))
    stats = load_stats(str(tmp_path / "app.py.lprof"))
    assert stats.functions[0].total_hits == 1000


def test_unix_socket_is_private_and_removed(tmp_path, sockdir):
    addr = f"unix:{sockdir}/s"
    proc = spawn(tmp_path, STUCK, "--live", addr)
    try:
        wait_for(proc, "stuck")
        mode = os.stat(f"{sockdir}/s").st_mode
        assert stat.S_ISSOCK(mode)
        assert stat.S_IMODE(mode) == 0o600
    finally:
        proc.send_signal(signal.SIGTERM)  # kernprof unwinds, stops the worker
        proc.communicate(timeout=TIMEOUT)
    assert not os.path.exists(f"{sockdir}/s")


def test_tcp_port_zero_is_announced(tmp_path):
    proc = spawn(tmp_path, STUCK, "--live", "127.0.0.1:0")
    try:
        wait_for(proc, "stuck")
        proc.send_signal(signal.SIGTERM)
        done = finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    said = [ln for ln in done.stderr.splitlines() if "live view at" in ln]
    assert len(said) == 1, done.stderr
    assert said[0].startswith("kernprof: live view at 127.0.0.1:")
    port = int(said[0].split("127.0.0.1:")[1].split(";")[0])
    assert 0 < port < 65536


@pytest.mark.parametrize("addr", ["0.0.0.0:0", "[::]:0", "10.1.2.3:0"])
def test_non_loopback_is_refused(tmp_path, addr):
    (tmp_path / "app.py").write_text("print('ran')\n")
    proc = subprocess.run([sys.executable, "-m", "kernprof", "-l", "--live", addr, "app.py"],
                          cwd=str(tmp_path), env=_env(), capture_output=True, text=True,
                          timeout=TIMEOUT)
    assert proc.returncode == 2
    assert proc.stdout == ""  # the script did not run
    assert proc.stderr.splitlines() == [
        f"kernprof: error: --live: refusing {addr}: not a loopback address, so anyone "
        f"who can reach it could read the profile (add --live-allow-remote to allow it)"]


def test_non_loopback_allowed_explicitly(tmp_path):
    proc = spawn(tmp_path, STUCK, "--live", "0.0.0.0:0", "--live-allow-remote")
    try:
        wait_for(proc, "stuck")
        proc.send_signal(signal.SIGTERM)
        done = finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "kernprof: live view at 0.0.0.0:" in done.stderr


@pytest.mark.parametrize("addr,message", [
    ("nonsense", "kernprof: error: --live: bad address 'nonsense': use HOST:PORT, PORT or unix:PATH"),
    ("example.com:80", "kernprof: error: --live: bad address 'example.com:80': use HOST:PORT, "
                       "PORT or unix:PATH"),
    ("127.0.0.1:70000", "kernprof: error: --live: bad address '127.0.0.1:70000': use "
                        "HOST:PORT, PORT or unix:PATH"),
    ("unix:", "kernprof: error: --live: bad address 'unix:': use HOST:PORT, PORT or unix:PATH"),
])
def test_bad_live_address(tmp_path, addr, message):
    (tmp_path / "app.py").write_text("print('ran')\n")
    proc = subprocess.run([sys.executable, "-m", "kernprof", "-l", "--live", addr, "app.py"],
                          cwd=str(tmp_path), env=_env(), capture_output=True, text=True,
                          timeout=TIMEOUT)
    assert (proc.returncode, proc.stdout, proc.stderr.splitlines()) == (2, "", [message])


def test_address_in_use(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        (tmp_path / "app.py").write_text("print('ran')\n")
        proc = subprocess.run(
            [sys.executable, "-m", "kernprof", "-l", "--live", f"127.0.0.1:{port}", "app.py"],
            cwd=str(tmp_path), env=_env(), capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.splitlines() == [
        f"kernprof: error: --live: cannot listen at 127.0.0.1:{port}: address already in use"]


@pytest.mark.parametrize("case", ["too-long", "no-directory", "not-a-directory", "a-file",
                                  "listened"])
def test_unix_socket_cannot_go_there(tmp_path, sockdir, case):
    """One line on stderr, exit 1, the script not run (docs/bad-input.md)."""
    listener = None
    if case == "too-long":
        path = os.path.join(sockdir, "x" * (108 - len(sockdir) - 1))
        assert len(path) == 108
        why = "path too long (at most 107 bytes)"
    elif case == "no-directory":
        path = f"{sockdir}/no/such/s.sock"
        why = f"no such directory '{sockdir}/no/such'"
    elif case == "not-a-directory":
        open(f"{sockdir}/plain", "w").close()
        path = f"{sockdir}/plain/s.sock"
        why = f"'{sockdir}/plain' is not a directory"
    elif case == "a-file":
        path = f"{sockdir}/plain"
        with open(path, "w") as f:
            f.write("keep me\n")
        why = "a file that is not a socket is there"
    else:
        path = f"{sockdir}/busy.sock"
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(path)
        listener.listen()
        why = "another process listens there"
    (tmp_path / "app.py").write_text("print('ran')\n")
    try:
        proc = subprocess.run([sys.executable, "-m", "kernprof", "-l", "--live", f"unix:{path}",
                               "app.py"], cwd=str(tmp_path), env=_env(), capture_output=True,
                              text=True, timeout=TIMEOUT)
    finally:
        if listener is not None:
            listener.close()
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr.splitlines() == [
        f"kernprof: error: --live: cannot listen at unix:{path}: {why}"]
    if case == "a-file":
        assert open(path).read() == "keep me\n"  # untouched


def test_live_and_interval_need_line_mode(tmp_path):
    (tmp_path / "app.py").write_text("print('ran')\n")
    for flags in (["--live", "unix:/tmp/x"], ["-i", "1"]):
        proc = subprocess.run([sys.executable, "-m", "kernprof", *flags, "app.py"],
                              cwd=str(tmp_path), env=_env(), capture_output=True, text=True,
                              timeout=TIMEOUT)
        assert proc.returncode == 2
        assert proc.stderr.splitlines() == [
            "kernprof: error: -i/--output-interval and --live need -l/--line-by-line"]


@pytest.mark.parametrize("addr", ["127.0.0.1:1", "unix:/nonexistent/lp.sock"])
def test_top_with_nothing_listening(addr):
    proc = lineprof_cmd("top", "--once", addr)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.splitlines() == [
        f"lineprof: nothing listens at {addr} (is the program running under "
        f"kernprof -l --live?)"]


def test_top_bad_usage():
    proc = lineprof_cmd("top", "--once", "nonsense")
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "lineprof: error: bad address 'nonsense': use HOST:PORT, PORT or unix:PATH"]
    proc = lineprof_cmd("top", "--json", "127.0.0.1:1")
    assert (proc.returncode, proc.stderr.splitlines()) == (2, ["lineprof: error: --json needs --once"])


def test_top_against_something_else(sockdir):
    """A server that is not ours: a clear error, no traceback."""
    path = f"{sockdir}/other"
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(path)
    srv.listen()

    def serve():
        conn, _ = srv.accept()
        conn.recv(100)
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        conn.close()

    t = threading.Thread(target=serve)
    t.start()
    proc = lineprof_cmd("top", "--once", f"unix:{path}")
    t.join()
    srv.close()
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f"lineprof: unix:{path} does not speak the lineprof protocol"]


def test_top_refreshes_until_the_program_ends(tmp_path, sockdir):
    addr = f"unix:{sockdir}/s"
    src = """\
        import time

        @profile
        def tick():
            time.sleep(0.05)

        print("up", flush=True)
        for _ in range(30):
            tick()
    """
    proc = spawn(tmp_path, src, "--live", addr)
    wait_for(proc, "up")
    top = lineprof_cmd("top", "-n", "0.2", addr)
    finish(proc)
    assert top.returncode == 0, top.stderr
    assert top.stderr.splitlines() == [f"lineprof: {addr} went away (the program ended)"]
    screens = top.stdout.count("lineprof top")
    assert screens >= 3, top.stdout


# -- the API, in this process ------------------------------------------------

def test_api_flush_and_live(tmp_path, sockdir):
    prof = lineprof.LineProfiler()

    @prof
    def f(i):
        return i + 1

    path = tmp_path / "api.lprof"
    addr = prof.start_worker(flush=path, interval=0.02, live=f"unix:{sockdir}/api")
    try:
        assert addr == f"unix:{sockdir}/api"
        with pytest.raises(RuntimeError):
            prof.start_worker(flush=path)
        for i in range(100):
            f(i)
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            if path.exists() and load_stats(str(path)).functions[0].total_hits == 100:
                break
            time.sleep(0.02)
        assert load_stats(str(path)).functions[0].total_hits == 100
        stats, now = LiveClient(addr).snapshot()
        assert stats.functions[0].total_hits == 100 and now == []
        st = prof._c.worker_stats()
        assert st["flushes"] >= 1 and st["served"] == 1 and st["flush_errors"] == 0
    finally:
        prof.stop_worker()
    prof.stop_worker()  # idempotent
    assert prof._c.worker_stats() is None
    with pytest.raises(LiveGone):
        LiveClient(addr).snapshot()


@pytest.mark.parametrize("kwargs,exc,text", [
    ({}, ValueError, "give flush=PATH, live=ADDR or both"),
    ({"live": "nope"}, ValueError, "bad address"),
    ({"live": "0.0.0.0:0"}, ValueError, "not a loopback address"),
    ({"flush": "/tmp/x.lprof", "interval": 0}, ValueError, "interval must be"),
])
def test_api_errors(kwargs, exc, text):
    prof = lineprof.LineProfiler()
    with pytest.raises(exc, match=text):
        prof.start_worker(**kwargs)
    assert prof._c.worker_stats() is None


def test_flush_errors_are_counted_not_raised(tmp_path):
    prof = lineprof.LineProfiler()
    path = tmp_path / "no" / "such" / "dir.lprof"
    prof.start_worker(flush=path, interval=0.01)
    try:
        deadline = time.monotonic() + TIMEOUT
        while prof._c.worker_stats()["flush_errors"] < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        st = prof._c.worker_stats()
        assert st["flush_errors"] >= 3 and st["flushes"] == 0
        assert st["flush_errno"] == 2  # ENOENT
    finally:
        prof.stop_worker()


FORK = """\
    import os, sys, threading, warnings
    warnings.simplefilter("error")  # a fork() warning about threads would raise
    import lineprof
    from lineprof.top import LiveClient

    prof = lineprof.LineProfiler()

    @prof
    def f(i):
        return i + 1

    addr = prof.start_worker(live=sys.argv[1])
    for i in range(10):
        f(i)

    def threads():
        return len(os.listdir("/proc/self/task"))

    before = threads()
    pid = os.fork()
    if pid == 0:
        # The child: no worker thread, no inherited socket; it keeps profiling.
        fds = []
        for fd in os.listdir("/proc/self/fd"):
            try:
                fds.append(os.readlink(f"/proc/self/fd/{fd}"))
            except OSError:  # the directory's own descriptor, gone
                pass
        f(1)
        ok = threads() == 1 and not any(x.startswith("socket:") for x in fds)
        ok = ok and prof.get_stats().functions[0].total_hits == 11
        os._exit(0 if ok else 3)
    _, status = os.waitpid(pid, 0)
    client = LiveClient(addr)
    stats, now = client.snapshot()  # the parent serves again, same address
    client.close()
    print(os.WEXITSTATUS(status) if os.WIFEXITED(status) else -1, before, threads(),
          stats.functions[0].total_hits)
    prof.stop_worker()
"""


def test_fork_with_a_worker(tmp_path, sockdir):
    script = tmp_path / "fork.py"
    script.write_text(textwrap.dedent(FORK))
    proc = subprocess.run([sys.executable, str(script), f"unix:{sockdir}/f"], env=_env(),
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    child, before, after, hits = proc.stdout.split()
    assert child == "0"          # the child's checks passed
    assert before == after == "2"  # main thread + worker, before and after the fork
    assert hits == "10"
