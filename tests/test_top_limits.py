"""``python -m lineprof top`` against a server that lies about its reply (issue 16, item 6).

The reply header says how many bytes follow (``LINEPROF/1 OK <n>``).  The
client refuses an ``n`` over its limit (``lineprof.top.MAX_REPLY``) before
reading anything, and reads an accepted reply in bounded pieces, so its
memory follows the bytes that arrive, not the number announced.  The fake
servers are threads of the test, on unix sockets; the client is the real
command, run under a 1 GiB address-space limit (row in docs/bad-input.md).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import tempfile
import threading

import pytest

from conftest import run_lineprof_limited

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("lineprof._lineprof") is None,
                       reason="the C extension is not built"),
    pytest.mark.skipif(not hasattr(socket, "AF_UNIX"),
                       reason="POSIX only"),
]

MAX_RSS_MB = 150
TIMEOUT = 30.0
FAST = 10.0
LIMIT = 256 << 20  # lineprof.top.MAX_REPLY, as documented


@pytest.fixture
def sockdir():
    """A short directory for unix sockets (sun_path holds 107 bytes)."""
    d = tempfile.mkdtemp(prefix="lp", dir="/tmp")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def top_limited(*args):
    """Run ``python -m lineprof top ARGS`` under the memory limit.

    Returns (exit status, stderr lines, seconds, peak RSS in MiB or 0
    where there is no /proc); the child is killed after TIMEOUT.
    """
    code, _, stderr, seconds, rss = run_lineprof_limited(["top", *args], timeout=TIMEOUT)
    return code, stderr.splitlines(), seconds, 0.0 if rss is None else rss


def serve(path, header, send=1 << 40, stall=False):
    """Answer one client at unix socket ``path``: ``header``, then up to ``send`` zero bytes.

    Then hold the connection open (``stall``) or close it.  Returns a stop
    function that also says how many bytes the server got out.
    """
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(path)
    srv.listen()
    done = threading.Event()
    sent = [0]

    def run():
        srv.settimeout(TIMEOUT)
        try:
            conn, _ = srv.accept()
        except OSError:
            return
        with conn:
            try:
                conn.recv(256)
                conn.sendall(header)
                block = bytes(1 << 20)
                while sent[0] < send and not done.is_set():
                    conn.sendall(block[:send - sent[0]])
                    sent[0] += min(len(block), send - sent[0])
                if stall:
                    done.wait(TIMEOUT)
            except OSError:  # the client closed: what it should do
                pass

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def stop():
        done.set()
        srv.close()
        thread.join(TIMEOUT)
        return sent[0]

    return stop


@pytest.mark.parametrize("announced", [2**31, LIMIT + 1, 10**40])
def test_top_refuses_a_reply_over_the_limit(sockdir, announced):
    """``OK 2147483648`` and a stream of zeros: refused in one line, nothing read."""
    path = f"{sockdir}/big"
    stop = serve(path, b"LINEPROF/1 OK %d\n" % announced)
    try:
        status, err, seconds, rss = top_limited("--once", f"unix:{path}")
    finally:
        stop()
    assert (status, err) == (1, [
        f"lineprof: unix:{path} announced a reply of {announced} bytes, over the limit "
        f"of {LIMIT} (256 MiB): not a lineprof live view?"]), err[-20:]
    assert seconds < FAST
    assert rss < MAX_RSS_MB


def test_top_memory_follows_the_bytes_received(sockdir):
    """A reply of exactly the limit is accepted, but only 2 MiB of it arrive:
    the client waits for the rest without reserving the 256 MiB announced,
    then gives up at its --timeout."""
    path = f"{sockdir}/slow"
    stop = serve(path, b"LINEPROF/1 OK %d\n" % LIMIT, send=2 << 20, stall=True)
    try:
        status, err, seconds, rss = top_limited("--once", "--timeout", "1", f"unix:{path}")
    finally:
        stop()
    assert (status, err) == (1, [f"lineprof: unix:{path} did not answer within 1 s"]), err[-20:]
    assert seconds < FAST
    assert rss < MAX_RSS_MB


def test_top_takes_a_reply_at_the_limit_that_is_not_a_profile(sockdir):
    """An accepted length whose bytes are not a snapshot: the reader's one line, as before."""
    path = f"{sockdir}/junk"
    stop = serve(path, b"LINEPROF/1 OK %d\n" % (4 << 20), send=4 << 20)
    try:
        status, err, seconds, rss = top_limited("--once", f"unix:{path}")
    finally:
        stop()
    assert (status, err) == (1, [
        f"lineprof: unix:{path} sent a damaged snapshot: not a lineprof profile (bad magic)"]), \
        err[-20:]
    assert seconds < FAST
    assert rss < MAX_RSS_MB
