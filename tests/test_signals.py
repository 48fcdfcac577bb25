"""kernprof and signals, in subprocesses: however SIGINT or SIGTERM end a run, the profile is written.

* No handler of the program's own: SIGINT unwinds it as a KeyboardInterrupt
  and the process ends by SIGINT, as ``python``'s would; SIGTERM unwinds it
  too (kernprof's handler) and the process ends by SIGTERM.
* A program that handles the signal itself (``loop.add_signal_handler``)
  shuts down its own way and keeps its exit status.
* A second signal while the program unwinds, or while the profile is being
  written, does not lose the profile.

Every child starts with SIGINT at its default action: a shell's background
job (``cmd &``) starts with SIGINT ignored, and would pass that on.
"""

from __future__ import annotations

import os
import pstats
import signal
import subprocess
import sys
import textwrap
import time
from typing import Any, Dict, List

import pytest

import lineprof
from conftest import child_env, require

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIGINT = int(signal.SIGINT)
SIGTERM = int(signal.SIGTERM)

pytestmark = pytest.mark.skipif(
    not hasattr(signal, "SIGKILL"), reason="POSIX signals only")

#: How long a child may take to start, to end, or to reach a point it announces.
TIMEOUT = 8.0


def env() -> Dict[str, str]:
    return child_env(PYTHONUNBUFFERED="1")


def _default_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


class Child:
    """A child process whose stdout and stderr go to files, so they can be polled for a line."""

    def __init__(self, args: List[str], cwd: Any, preexec: Any = _default_signals) -> None:
        self.cwd = cwd
        self.out_path = os.path.join(str(cwd), "child.out")
        self.err_path = os.path.join(str(cwd), "child.err")
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(args, cwd=cwd, env=env(), stdout=out, stderr=err,
                                         stdin=subprocess.DEVNULL, preexec_fn=preexec)

    @property
    def stdout(self) -> str:
        with open(self.out_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    @property
    def stderr(self) -> str:
        with open(self.err_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def wait_for(self, text: str, timeout: float = TIMEOUT) -> None:
        """Return once ``text`` is on the child's stdout; fail if it ends or times out first."""
        deadline = time.monotonic() + timeout
        while text not in self.stdout:
            if self.proc.poll() is not None:
                pytest.fail(f"the child ended ({self.proc.returncode}) before printing {text!r}:\n"
                            f"{self.stdout}\n{self.stderr}")
            if time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"the child did not print {text!r} in {timeout} s:\n"
                            f"{self.stdout}\n{self.stderr}")
            time.sleep(0.01)

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def finish(self, timeout: float = TIMEOUT) -> int:
        """Return the child's exit status (negative: the signal that ended it)."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"the child did not end in {timeout} s:\n{self.stdout}\n{self.stderr}")
            raise

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def kernprof(tmp_path: Any, source: str, *args: str, **kw: Any) -> Child:
    """Start ``kernprof -l prog.py ARGS`` in ``tmp_path`` with ``source`` as prog.py."""
    (tmp_path / "prog.py").write_text(textwrap.dedent(source))
    return Child([sys.executable, "-m", "kernprof", "-l", "prog.py", *args], tmp_path, **kw)


def load(tmp_path: Any, name: str = "prog.py.lprof") -> "lineprof.LineStats":
    path = tmp_path / name
    assert path.is_file(), f"no profile at {path}"
    return lineprof.load_stats(str(path))


def lines_of(stats: Any, func: str) -> Dict[int, Any]:
    found = [fs for fs in stats.functions if fs.name == func]
    assert found, f"{func} is not in the profile: {[fs.name for fs in stats.functions]}"
    return found[0].lines


def line_of(source: str, marker: str) -> int:
    """Return the number of the one line of ``source`` (dedented) that ends in ``# marker``."""
    lines = textwrap.dedent(source).splitlines()
    found = [i + 1 for i, text in enumerate(lines) if text.rstrip().endswith("# " + marker)]
    assert len(found) == 1, (marker, found)
    return found[0]


def record(stats: Any, func: str, source: str, marker: str) -> Any:
    lines = lines_of(stats, func)
    line = line_of(source, marker)
    assert line in lines, f"{func} line {line} ({marker}) has no record: {lines}"
    return lines[line]


# -- no handler of the program's own -----------------------------------------------------

BUSY = """\
    import time

    @profile
    def work():
        print("ready", flush=True)
        n = 0
        try:
            while True:
                n += 1  # LOOP
                if n % 1000 == 0:
                    time.sleep(0.001)  # SLEEP
        finally:
            print("unwound", flush=True)

    work()
    print("not reached", flush=True)
"""


@pytest.mark.parametrize("signum", [SIGINT, SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_busy_script_unwinds_writes_and_dies_by_the_signal(tmp_path, signum):
    child = kernprof(tmp_path, BUSY)
    child.wait_for("ready")
    time.sleep(0.3)
    child.signal(signum)
    assert child.finish() == -signum, child.stderr
    out = child.stdout
    assert "unwound" in out  # the program's finally ran: it was unwound, not killed
    assert "not reached" not in out
    assert "Wrote profile results to 'prog.py.lprof'" in out
    if signum == SIGINT:
        assert child.stderr.rstrip().endswith("KeyboardInterrupt")
    else:
        assert child.stderr == ""  # a SIGTERM death says nothing, as python's
    stats = load(tmp_path)
    assert record(stats, "work", BUSY, "LOOP").hits > 1000
    assert record(stats, "work", BUSY, "SLEEP").hits >= 1


ASYNC_RUN = """\
    import asyncio

    @profile
    async def tick():
        while True:
            await asyncio.sleep(0.01)  # TICK

    @profile
    async def main():
        task = asyncio.create_task(tick())
        print("ready", flush=True)
        try:
            await asyncio.sleep(60)  # WAIT
        finally:
            print("main unwound", flush=True)
            task.cancel()

    asyncio.run(main())
"""


#: ASYNC_RUN on uvloop's loop, which runs the loop in C (libuv).  uvloop.run
#: cleans up as asyncio.run does: it cancels the tasks left and waits for them.
UVLOOP_RUN = ASYNC_RUN.replace("    asyncio.run(main())\n", """\
    import uvloop
    uvloop.run(main())
""")

@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
@pytest.mark.parametrize("signum", [SIGINT, SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_asyncio_run_without_handler(tmp_path, signum, loop):
    if loop == "uvloop":
        require("uvloop")
    child = kernprof(tmp_path, ASYNC_RUN if loop == "asyncio" else UVLOOP_RUN)
    child.wait_for("ready")
    time.sleep(0.3)
    child.signal(signum)
    assert child.finish() == -signum, child.stderr
    assert "main unwound" in child.stdout
    assert "Wrote profile results to 'prog.py.lprof'" in child.stdout
    stats = load(tmp_path)
    tick = record(stats, "tick", ASYNC_RUN, "TICK")
    assert tick.hits >= 5 and tick.await_ > 0
    wait = record(stats, "main", ASYNC_RUN, "WAIT")
    # 1, or 2 where CPython (3.13) gives the line a second line event when the
    # cancellation is thrown in; lineprof counts what sys.settrace sees.
    assert wait.hits in (1, 2)
    assert wait.await_ * stats.unit >= 0.25  # suspended there until the signal


def test_sigterm_without_line_profiling_writes_the_cprofile(tmp_path):
    (tmp_path / "prog.py").write_text(textwrap.dedent(BUSY))
    child = Child([sys.executable, "-m", "kernprof", "-b", "prog.py"], tmp_path)
    child.wait_for("ready")
    time.sleep(0.2)
    child.signal(SIGTERM)
    assert child.finish() == -SIGTERM, child.stderr
    assert "unwound" in child.stdout
    assert "Wrote profile results to 'prog.py.prof'" in child.stdout
    stats = pstats.Stats(str(tmp_path / "prog.py.prof"))
    assert any(func[2] == "work" for func in stats.stats)  # type: ignore[attr-defined]


def test_sigterm_ignored_by_the_parent_stays_ignored(tmp_path):
    def ignore_term() -> None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)

    child = kernprof(tmp_path, BUSY, preexec=ignore_term)
    child.wait_for("ready")
    child.signal(SIGTERM)
    time.sleep(0.3)
    assert child.proc.poll() is None, "SIGTERM was ignored when kernprof started: keep it so"
    child.signal(SIGINT)
    assert child.finish() == -SIGINT
    assert "unwound" in child.stdout
    load(tmp_path)


# -- the program's own handlers -----------------------------------------------------------

OWN_HANDLER = """\
    import asyncio, signal, sys

    SIG = getattr(signal, sys.argv[1])

    @profile
    async def tick():
        while True:
            await asyncio.sleep(0.01)  # TICK

    @profile
    async def main():
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(SIG, stop.set)
        task = asyncio.create_task(tick())
        print("ready", flush=True)
        await stop.wait()  # WAIT
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        print("graceful shutdown", flush=True)  # SHUTDOWN

    asyncio.run(main())
    print("after asyncio.run", flush=True)
"""


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_program_handler_shuts_down_its_way_and_exits_0(tmp_path, signame):
    child = kernprof(tmp_path, OWN_HANDLER, signame)
    child.wait_for("ready")
    time.sleep(0.3)
    child.signal(getattr(signal, signame))
    assert child.finish() == 0, child.stderr
    out = child.stdout
    assert out.index("graceful shutdown") < out.index("after asyncio.run") < out.index(
        "Wrote profile results to 'prog.py.lprof'")
    assert "Traceback" not in child.stderr
    stats = load(tmp_path)
    assert record(stats, "main", OWN_HANDLER, "SHUTDOWN").hits == 1
    assert record(stats, "main", OWN_HANDLER, "WAIT").await_ > 0
    assert record(stats, "tick", OWN_HANDLER, "TICK").hits >= 5


def test_program_exit_status_is_kept_after_its_handler(tmp_path):
    source = OWN_HANDLER.replace('print("after asyncio.run", flush=True)',
                                 'print("after asyncio.run", flush=True); sys.exit(3)')
    child = kernprof(tmp_path, source, "SIGTERM")
    child.wait_for("ready")
    child.signal(SIGTERM)
    assert child.finish() == 3, child.stderr
    assert "graceful shutdown" in child.stdout
    load(tmp_path)


# -- a second signal -------------------------------------------------------------------------

SLOW_UNWIND = """\
    import time

    @profile
    def work():
        print("ready", flush=True)
        try:
            while True:
                time.sleep(0.005)  # LOOP
        finally:
            print("stopping", flush=True)
            time.sleep(2)  # CLEANUP
            print("cleanup finished", flush=True)

    work()
"""


@pytest.mark.parametrize("signum", [SIGINT, SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_second_signal_while_unwinding_keeps_the_profile(tmp_path, signum):
    child = kernprof(tmp_path, SLOW_UNWIND)
    child.wait_for("ready")
    time.sleep(0.1)
    child.signal(signum)
    child.wait_for("stopping")  # the program is in its finally, sleeping
    time.sleep(0.05)
    child.signal(signum)  # interrupts that cleanup
    assert child.finish() == -signum, child.stderr
    assert "cleanup finished" not in child.stdout
    assert "Wrote profile results to 'prog.py.lprof'" in child.stdout
    stats = load(tmp_path)
    assert record(stats, "work", SLOW_UNWIND, "LOOP").hits >= 5
    cleanup = record(stats, "work", SLOW_UNWIND, "CLEANUP")
    assert cleanup.hits == 1
    assert 0.03 <= cleanup.time * stats.unit < 1.9  # cut short by the second signal


#: Runs ``kernprof -l target.py`` in-process with a profile write slowed down
#: and interrupted by the signals named in argv[1:], which the process sends
#: itself in the middle of the write.  Deterministic: the signals always land
#: inside the write.
SIGNALS_IN_WRITE = """\
    import os, signal, sys, time
    import kernprof
    from lineprof.api import LineProfiler

    SIGNALS = sys.argv[1:]  # kernprof sets sys.argv for its target
    real_dump = LineProfiler.dump_stats

    def dump_with_signals(self, filename):
        for name in SIGNALS:
            os.kill(os.getpid(), getattr(signal, name))
        time.sleep(0.2)  # the Python-level handlers run here, if they are to raise
        real_dump(self, filename)
        print("dump finished", flush=True)

    LineProfiler.dump_stats = dump_with_signals
    status = kernprof.main(["-l", "target.py"])
    print("main returned", status, flush=True)
    sys.exit(status)
"""

PLAIN_TARGET = """\
    @profile
    def f():
        return 1  # BODY
    f()
    print("target done", flush=True)
"""

#: A service whose own handlers are gone when it returns: asyncio.run closes
#: its loop, which gives SIGTERM its default action back.
SERVICE_TARGET = """\
    import asyncio, signal

    @profile
    def f():
        return 1  # BODY

    async def main():
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, lambda: None)
        f()

    asyncio.run(main())
    print("target done", flush=True)
"""


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


@pytest.mark.parametrize("target,signals,preexec,want", [
    (PLAIN_TARGET, ["SIGINT"], _default_signals, -SIGINT),
    (PLAIN_TARGET, ["SIGTERM"], _default_signals, -SIGTERM),
    (PLAIN_TARGET, ["SIGINT", "SIGINT", "SIGTERM"], _default_signals, -SIGTERM),
    (PLAIN_TARGET, ["SIGINT"], _ignore_sigint, 0),
    (SERVICE_TARGET, ["SIGTERM"], _default_signals, -SIGTERM),
    (SERVICE_TARGET, ["SIGINT"], _default_signals, -SIGINT),
], ids=["SIGINT", "SIGTERM", "SIGINTx2+SIGTERM", "SIGINT-ignored", "service-SIGTERM",
        "service-SIGINT"])
def test_signals_during_the_write_wait_for_it(tmp_path, target, signals, preexec, want):
    (tmp_path / "driver.py").write_text(textwrap.dedent(SIGNALS_IN_WRITE))
    (tmp_path / "target.py").write_text(textwrap.dedent(target))
    child = Child([sys.executable, "driver.py", *signals], tmp_path, preexec=preexec)
    assert child.finish() == want, child.stdout + child.stderr
    out = child.stdout
    assert "target done" in out
    assert "dump finished" in out  # the signals did not interrupt the write...
    assert "Wrote profile results to 'target.py.lprof'" in out
    # ...but took effect right after it, as the handlers then in place have it.
    assert ("main returned 0" in out) == (want == 0)
    stats = load(tmp_path, "target.py.lprof")
    assert record(stats, "f", target, "BODY").hits == 1


def test_sigterm_disposition_restored_after_main(tmp_path):
    script = textwrap.dedent("""\
        import signal, kernprof
        with open("t.py", "w") as f:
            f.write("print('ran')\\n")
        before = signal.getsignal(signal.SIGTERM)
        status = kernprof.main(["-l", "-q", "t.py"])
        after = signal.getsignal(signal.SIGTERM)
        print(status, before == signal.SIG_DFL, after == signal.SIG_DFL,
              signal.getsignal(signal.SIGINT) is signal.default_int_handler)
    """)
    (tmp_path / "driver.py").write_text(script)
    child = Child([sys.executable, "driver.py"], tmp_path)
    assert child.finish() == 0, child.stderr
    assert child.stdout.splitlines()[-1] == "0 True True True"


FORKED_CHILD = """\
    import multiprocessing, signal, time

    def child():
        time.sleep(30)

    @profile
    def main():
        proc = multiprocessing.get_context("fork").Process(target=child)
        proc.start()
        time.sleep(0.3)
        proc.terminate()  # SIGTERM: the child must die at once, as under python
        proc.join(5)
        print("child exitcode", proc.exitcode, flush=True)

    main()
"""


def test_forked_child_dies_by_sigterm_as_under_python(tmp_path):
    child = kernprof(tmp_path, FORKED_CHILD)
    assert child.finish() == 0, child.stderr
    assert f"child exitcode {-SIGTERM}" in child.stdout
    load(tmp_path)


# -- every signal whose default action ends the process ----------------------------------

#: Each ends the process by default (SIGQUIT with a core, kept from the disk
#: by RLIMIT_CORE 0); kernprof writes the profile first and then dies by it.
FATAL_NAMES = [name for name in ("SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM",
                                 "SIGVTALRM", "SIGPROF", "SIGXCPU", "SIGPIPE")
               if hasattr(signal, name)]


def _default_signals_no_core() -> None:
    import resource

    _default_signals()
    for name in FATAL_NAMES:
        signal.signal(getattr(signal, name), signal.SIG_DFL)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


@pytest.mark.parametrize("worker", [[], ["-i", "0.05"]], ids=["plain", "flush"])
@pytest.mark.parametrize("name", FATAL_NAMES)
def test_fatal_signal_unwinds_writes_and_dies_by_it(tmp_path, name, worker):
    signum = int(getattr(signal, name))
    if name == "SIGPIPE":
        # Python ignores SIGPIPE from start-up: it would kill only a program
        # that gave it its default action back, as this one does.
        source = "import signal\nsignal.signal(signal.SIGPIPE, signal.SIG_DFL)\n" + \
            textwrap.dedent(BUSY)
    else:
        source = BUSY
    (tmp_path / "prog.py").write_text(textwrap.dedent(source))
    child = Child([sys.executable, "-m", "kernprof", "-l", *worker, "prog.py"], tmp_path,
                  preexec=_default_signals_no_core)
    child.wait_for("ready")
    time.sleep(0.2)
    child.signal(signum)
    if name == "SIGPIPE":
        # The program's own SIG_DFL was set after kernprof's handler: it chose
        # to die at once, and kernprof does not stand in its way.
        assert child.finish() == -signum
        return
    assert child.finish() == -signum, child.stdout + child.stderr
    assert "unwound" in child.stdout  # the program's finally ran: unwound, not killed
    assert "Wrote profile results to 'prog.py.lprof'" in child.stdout
    assert child.stderr == ""
    assert record(load(tmp_path), "work", BUSY, "LOOP").hits > 100


def test_a_handler_of_the_programs_own_is_kept(tmp_path):
    source = """\
        import os, signal

        @profile
        def work():
            signal.signal(signal.SIGHUP, lambda *a: print("handled", flush=True))
            os.kill(os.getpid(), signal.SIGHUP)
            return 1  # AFTER

        work()
        print("went on", flush=True)
    """
    child = kernprof(tmp_path, source)
    assert child.finish() == 0, child.stderr
    assert "handled" in child.stdout and "went on" in child.stdout
    assert record(load(tmp_path), "work", source, "AFTER").hits == 1


#: kernprof.main in-process, with a signal sent to the process while
#: kernprof is still preparing the run (inside its own code, before the
#: target starts): deterministic start-up timing.
SIGNAL_AT_START = """\
    import os, signal, sys
    import kernprof
    from lineprof.api import LineProfiler

    SIGNAL = getattr(signal, sys.argv[1])
    real_init = LineProfiler.__init__

    def init_with_signal(self, *args, **kwargs):
        os.kill(os.getpid(), SIGNAL)
        real_init(self, *args, **kwargs)
        print("profiler made", flush=True)

    LineProfiler.__init__ = init_with_signal
    status = kernprof.main(["-l", "target.py"])
    print("main returned", status, flush=True)
"""


@pytest.mark.parametrize("name", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_signal_during_start_up_writes_what_exists_without_our_traceback(tmp_path, name):
    signum = int(getattr(signal, name))
    (tmp_path / "driver.py").write_text(textwrap.dedent(SIGNAL_AT_START))
    (tmp_path / "target.py").write_text(textwrap.dedent(PLAIN_TARGET))
    child = Child([sys.executable, "driver.py", name], tmp_path)
    assert child.finish() == -signum, child.stdout + child.stderr
    out, err = child.stdout, child.stderr
    assert "profiler made" in out  # the signal came before the run and waited for it
    assert "target done" not in out  # then the code did not run
    assert "Wrote profile results to 'target.py.lprof'" in out
    assert "main returned" not in out
    assert "Traceback" not in err and "kernprof" not in err
    if signum == SIGINT:
        assert err.strip() in ("", "KeyboardInterrupt")
    else:
        assert err == ""
    assert load(tmp_path, "target.py.lprof").functions == []


@pytest.mark.parametrize("name", ["SIGHUP", "SIGUSR1"])
def test_fatal_signal_during_the_write_waits_for_it(tmp_path, name):
    (tmp_path / "driver.py").write_text(textwrap.dedent(SIGNALS_IN_WRITE))
    (tmp_path / "target.py").write_text(textwrap.dedent(PLAIN_TARGET))
    child = Child([sys.executable, "driver.py", name], tmp_path)
    assert child.finish() == -int(getattr(signal, name)), child.stdout + child.stderr
    assert "dump finished" in child.stdout
    assert record(load(tmp_path, "target.py.lprof"), "f", PLAIN_TARGET, "BODY").hits == 1
