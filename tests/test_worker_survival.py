"""The native worker under a hostile program and hostile clients (issue 16, items 2, 7, 8).

- The program closes the worker's descriptors (``os.closerange(3, 1024)``,
  the usual daemon start-up), then opens its own files, sockets and event
  loop in those numbers: the worker notices, stops with one line on stderr,
  touches none of the program's descriptors, and the profile written at
  exit has the true hit counts.
- Clients that trickle a request a byte at a time, or sit idle in every
  place, do not lock anyone out; a trickle cannot keep a request open; a
  flood of requests takes few snapshots of the program.
- Temporary files left by killed writers are removed, and only those.

Truth: hit counts from what the script did, times from the test's own clock,
snapshot identity from each reply's own ``created`` stamp.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import lineprof
from lineprof.stats import load_stats
from lineprof.top import LiveClient

from test_live import TIMEOUT, _env, finish, line_of, sockdir, spawn, wait_for  # noqa: F401

LOST = re.compile(
    r"lineprof: warning: the worker stopped early: the program (closed|reused) "
    r"descriptor \d+ \([a-z' -]+\)( for another file)?; no periodic writes or live "
    r"view after that \(the profile itself is complete\)")

ROUNDS = 15

CLOSERANGE = f"""\
    import asyncio, os, socket, sys

    @profile
    def work(n):
        t = 0
        for i in range(n):
            t += i  # LOOP
        return t

    work(10)
    os.closerange(3, 1024)
    mine = []
    if sys.argv[1] == "reuse":
        # The program's own files and sockets get the numbers the worker had.
        for i in range(3):
            f = open(f"mine{{i}}.txt", "w+")
            f.write(f"file {{i}}\\n")
            f.flush()
            mine.append(f)
        mine += list(socket.socketpair())

    async def main():
        # An event loop made now: its epoll instance takes a low number too.
        a, b = socket.socketpair()
        ra, wa = await asyncio.open_unix_connection(sock=a)
        rb, wb = await asyncio.open_unix_connection(sock=b)
        for i in range({ROUNDS}):
            wa.write(b"ping %d\\n" % i)
            await wa.drain()
            line = await asyncio.wait_for(rb.readline(), 5)
            assert line == b"ping %d\\n" % i, line
            work(100)
            await asyncio.sleep(0.02)
        wa.close()
        wb.close()

    asyncio.run(main())
    for i, f in enumerate(mine[:3]):
        f.seek(0)
        assert f.read() == f"file {{i}}\\n", i
    a, b = mine[3:] or socket.socketpair()
    a.sendall(b"x")
    assert b.recv(10) == b"x"  # nothing else arrived first
    print("done", flush=True)
"""


@pytest.mark.parametrize("variant", ["close", "reuse"])
@pytest.mark.parametrize("mode", ["interval", "live", "both"])
def test_program_closes_the_workers_descriptors(tmp_path, sockdir, mode, variant):
    addr = f"unix:{sockdir}/s"
    flags = {"interval": ["-i", "0.05"], "live": ["--live", addr],
             "both": ["-i", "0.05", "--live", addr]}[mode]
    out = tmp_path / "out.lprof"
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent(CLOSERANGE))
    proc = subprocess.run(
        [sys.executable, "-m", "kernprof", "-l", *flags, "-o", str(out), str(script), variant],
        cwd=str(tmp_path), env=_env(), stdin=subprocess.DEVNULL, capture_output=True,
        text=True, timeout=TIMEOUT * 3)
    assert proc.returncode == 0, proc.stderr  # no abort (134), no exception
    assert proc.stdout.splitlines()[0] == "done"
    err = proc.stderr.splitlines()
    if mode != "interval":
        assert err[0].startswith(f"kernprof: live view at {addr};")
        err = err[1:]
    assert len(err) == 1 and LOST.fullmatch(err[0]), proc.stderr
    stats = load_stats(str(out))
    work = next(f for f in stats.functions if f.name == "work")
    assert work.lines[line_of(script, "# LOOP")].hits == 10 + ROUNDS * 100
    assert work.lines[line_of(script, "return t")].hits == 1 + ROUNDS
    if mode != "interval":
        assert not os.path.exists(addr[len("unix:"):])  # its socket file went too


# -- clients -----------------------------------------------------------------

ASLEEP = """\
    import time

    @profile
    def nap():
        print("asleep", flush=True)
        time.sleep(3600)  # ASLEEP

    nap()
"""


def _connect(path: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(TIMEOUT)
    s.connect(path)
    return s


def _live(tmp_path, sockdir):
    addr = f"unix:{sockdir}/s"
    proc = spawn(tmp_path, ASLEEP, "--live", addr)
    wait_for(proc, "asleep")
    return proc, addr, addr[len("unix:"):]


def test_trickling_clients_do_not_lock_out_a_new_one(tmp_path, sockdir):
    """Eight clients trickle a request at a byte per 0.5 s: a ninth is served at once."""
    proc, addr, path = _live(tmp_path, sockdir)
    stop = threading.Event()
    try:
        request = b"LINEPROF/1 SNAPSHOT\n"
        slow = [_connect(path) for _ in range(8)]
        for s in slow:
            s.sendall(request[:1])

        def trickle():
            i = 1
            while not stop.wait(0.5) and i < len(request) - 1:
                for s in slow:
                    try:
                        s.sendall(request[i:i + 1])
                    except OSError:  # the one that made room
                        pass
                i += 1

        t = threading.Thread(target=trickle)
        t.start()
        time.sleep(0.3)
        t0 = time.perf_counter()
        stats, now = LiveClient(addr, timeout=TIMEOUT).snapshot()
        took = time.perf_counter() - t0
        assert took < 2.0, took
        assert [n["function"] for n in now] == ["nap"]
    finally:
        stop.set()
        proc.kill()
        proc.communicate()
    t.join()
    for s in slow:
        s.close()


def test_idle_clients_do_not_lock_out_a_new_one(tmp_path, sockdir):
    proc, addr, path = _live(tmp_path, sockdir)
    try:
        idle = []
        for _ in range(8):
            s = _connect(path)
            s.sendall(b"LINEPROF/1 PING\n")
            assert s.recv(100) == b"LINEPROF/1 OK 0\n"
            idle.append(s)
            time.sleep(0.01)
        t0 = time.perf_counter()
        LiveClient(addr, timeout=TIMEOUT).snapshot()
        assert time.perf_counter() - t0 < 2.0
        # The one silent longest made room: the worker closed it.
        assert idle[0].recv(100) == b""
        for s in idle[1:]:
            s.sendall(b"LINEPROF/1 PING\n")
            assert s.recv(100) == b"LINEPROF/1 OK 0\n"
    finally:
        proc.kill()
        proc.communicate()


def test_a_trickle_cannot_keep_a_request_open(tmp_path, sockdir):
    """A byte every 0.5 s: dropped 5 s after the first byte, with a reply that says why."""
    proc, addr, path = _live(tmp_path, sockdir)
    try:
        s = _connect(path)
        s.settimeout(0.5)
        request = b"LINEPROF/1 SNAPSHOT\n"
        t0 = time.perf_counter()
        reply = b""
        for i in range(len(request) - 1):  # all but the newline
            try:
                s.sendall(request[i:i + 1])
            except OSError:
                break
            try:
                reply = s.recv(200)
                break
            except socket.timeout:
                pass
        took = time.perf_counter() - t0
        assert reply == (b"LINEPROF/1 ERR timeout a request must be complete "
                         b"within 5 s of its first byte\n"), (reply, took)
        assert 4.9 <= took <= 7.0, took
        s.settimeout(TIMEOUT)
        assert s.recv(100) == b""  # then closed
        s.close()
    finally:
        proc.kill()
        proc.communicate()


def test_a_flood_of_requests_takes_few_snapshots(tmp_path, sockdir):
    """Every request is answered, one per 10 ms on a connection, from a fresh
    snapshot at most every 100 ms (told by each reply's "created")."""
    proc, addr, path = _live(tmp_path, sockdir)
    try:
        clients = [LiveClient(addr, timeout=TIMEOUT) for _ in range(4)]
        n = 0
        stamps = set()
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 1.5:
            for client in clients:
                raw = lineprof._lineprof.parse(client.request("SNAPSHOT"))
                stamps.add(raw["meta"]["created"])
                n += 1
        took = time.perf_counter() - t0
        for client in clients:
            client.close()
    finally:
        proc.kill()
        proc.communicate()
    assert n >= 40, n
    assert n <= 4 * (took / 0.01 + 1), (n, took)  # the gap holds on each connection
    assert len(stamps) <= took / 0.1 + 2, (len(stamps), n, took)


def test_api_counts_snapshots_and_served(tmp_path, sockdir):
    prof = lineprof.LineProfiler()
    addr = prof.start_worker(live=f"unix:{sockdir}/api")
    try:
        client = LiveClient(addr, timeout=TIMEOUT)
        t0 = time.perf_counter()
        for _ in range(100):
            client.request("SNAPSHOT")
        took = time.perf_counter() - t0
        client.close()
        st = prof._c.worker_stats()
    finally:
        prof.stop_worker()
    assert st["served"] == 100
    assert took >= 99 * 0.01  # one answer per 10 ms on a connection
    assert 1 <= st["snapshots"] <= took / 0.1 + 2
    assert st["lost"] is None and st["evicted"] == 0 and st["expired"] == 0


# -- temporary files left by killed writers -----------------------------------

MAGIC = b"\x89LPROF\r\n"


def _dead_pid() -> int:
    while True:
        p = subprocess.Popen([sys.executable, "-c", "pass"])
        p.wait()
        try:
            os.kill(p.pid, 0)
        except ProcessLookupError:
            return p.pid


def test_stale_temporaries_are_removed_and_only_those(tmp_path):
    dead = _dead_pid()
    old = time.time() - 3600
    planted = {
        f"out.lprof.tmp-{dead}-{dead}": (MAGIC + b"\0" * 100, True),   # a killed flush
        f"other.lprof.tmp-{dead}-5": (MAGIC, True),                   # another profile's
        f"out.lprof.tmp-{dead}-6": (b"someone else's file", False),   # not our magic
        f"out.lprof.tmp-{os.getpid()}-7": (MAGIC, False),             # its writer lives
        f"out.lprof.tmp-{dead}-8.bak": (MAGIC, False),                # not our name
    }
    for name, (data, _) in planted.items():
        p = tmp_path / name
        p.write_bytes(data)
        os.utime(p, (old, old))
    fresh = tmp_path / f"out.lprof.tmp-{dead}-9"  # a writer elsewhere, mid-write
    fresh.write_bytes(MAGIC)
    (tmp_path / "app.py").write_text("@profile\ndef f():\n    return 1\n\nf()\n")
    proc = subprocess.run([sys.executable, "-m", "kernprof", "-l", "-o", "out.lprof", "app.py"],
                          cwd=str(tmp_path), env=_env(), capture_output=True, text=True,
                          timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    for name, (data, stale) in planted.items():
        assert (tmp_path / name).exists() != stale, name
    assert fresh.exists()
    assert load_stats(str(tmp_path / "out.lprof")).functions[0].total_hits == 1
