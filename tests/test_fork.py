"""fork() from the profiled code: the parent's profile is the parent's.

A child forked by the code (``os.fork()``, then a normal ``sys.exit``)
returns into kernprof, or reaches the explicit profiler's exit handler,
like the parent does; it must not write its profile over the parent's
output path. The child here outlives the parent on purpose, so a write of
its own would be the last one. On 3.12+ a fork from the main thread while
the native worker runs (``-i``, ``--live``) must not print Python's
multi-threaded fork warning: the worker is stopped around the fork.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from typing import List

import pytest

from conftest import child_env

import lineprof

TIMEOUT = 30.0

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

#: The parent runs work(2000) and forks; the child waits for the parent to
#: be gone, runs work(3000) and exits normally. The child's marker file is
#: written by an atexit handler: after anything kernprof does on its way out.
FORKING = """\
    import atexit, os, sys, time

    @profile
    def work(n):
        for i in range(n):
            pass  # BODY

    work(2000)
    parent = os.getpid()
    if os.fork() == 0:
        atexit.register(lambda: open("child.done", "w").close())
        deadline = time.monotonic() + 20
        while os.getppid() == parent and time.monotonic() < deadline:
            time.sleep(0.01)
        work(3000)
        sys.exit(0)
"""


def body_hits(path: str, source: str) -> int:
    stats = lineprof.load_stats(path)
    (work,) = [f for f in stats.functions if f.name == "work"]
    body = [n for n, text in enumerate(source.splitlines(), 1) if text.endswith("# BODY")][0]
    return work.lines[body].hits


def wait_for_child(tmp_path) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not (tmp_path / "child.done").exists():
        assert time.monotonic() < deadline, "the forked child did not finish"
        time.sleep(0.02)
    time.sleep(0.2)  # the child's interpreter shutdown, after its atexit handlers


@pytest.mark.parametrize("worker", [[], ["-i", "0.05"], ["--live", "unix:{sock}"]],
                         ids=["plain", "flush", "live"])
def test_forked_child_does_not_write_over_the_parents_profile(tmp_path, worker):
    (tmp_path / "prog.py").write_text(textwrap.dedent(FORKING))
    args: List[str] = [w.format(sock=tmp_path / "s.sock") for w in worker]
    proc = subprocess.run([sys.executable, "-m", "kernprof", "-l", "-q", *args, "prog.py"],
                          cwd=tmp_path, env=child_env(), capture_output=True, text=True,
                          timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    wait_for_child(tmp_path)
    assert body_hits(str(tmp_path / "prog.py.lprof"), textwrap.dedent(FORKING)) == 2000
    # No multi-threaded fork warning (3.12+ would print one): the worker was stopped.
    assert "multi-threaded" not in proc.stderr
    assert [line for line in proc.stderr.splitlines()
            if not line.startswith("kernprof: live view at")] == []


def test_forked_child_of_the_explicit_profiler_does_not_write(tmp_path):
    source = "from lineprof import profile\n" + textwrap.dedent(FORKING)
    (tmp_path / "prog.py").write_text(source)
    proc = subprocess.run([sys.executable, "prog.py"], cwd=tmp_path,
                          env=child_env(LINEPROF="1", LINEPROF_OUTPUT="out.lprof"),
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    wait_for_child(tmp_path)
    assert body_hits(str(tmp_path / "out.lprof"), source) == 2000
