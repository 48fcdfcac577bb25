"""examples/mayhem.py under ``kernprof -l``, stopped by a signal as a service is.

The service handles SIGINT and SIGTERM itself (``loop.add_signal_handler``),
so it shuts down its own way and exits 0, and kernprof writes the profile
after it.  The profile must then hold every coroutine, real await times on
the ``await asyncio.sleep(...)`` lines (the publisher's pauses are seeded,
so their sum is known), and the tasks that ran them.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional

import pytest

import lineprof

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "examples", "mayhem.py")

from conftest import child_env, needs_uvloop  # noqa: E402

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="POSIX signals only")

COROUTINES = ("publish", "consume", "handle_message", "restart_host", "save", "extend",
              "cleanup", "shutdown")
#: How long the service runs before it is signalled, at least (s).
RUN_FOR = 2.0
#: ...and at most, if the poison message (the 15th with seed 0, ~1.6 s in) is late.
RUN_AT_MOST = 5.0
#: A timer may fire this much early (uvloop counts in whole milliseconds).
TIMER_SLACK = 0.002


def _mayhem() -> Any:
    """Import examples/mayhem.py as a module (its ``profile`` is then the no-op)."""
    spec = importlib.util.spec_from_file_location("mayhem_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


mayhem = _mayhem()


def env(**extra: str) -> Dict[str, str]:
    e = child_env()
    for name in ("MAYHEM_SEED", "MAYHEM_UVLOOP"):
        e.pop(name, None)
    e.update(extra)
    return e


def _default_signals() -> None:
    # A shell's background job starts with SIGINT ignored; the service must see it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


class Run:
    """One run of the service, its output in files (stderr is the service's log)."""

    def __init__(self, tmp_path: Any, args: List[str], **extra_env: str) -> None:
        self.out_path = tmp_path / "run.out"
        self.err_path = tmp_path / "run.err"
        self.started = time.monotonic()
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen([sys.executable, *args], cwd=tmp_path, env=env(**extra_env),
                                         stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                         preexec_fn=_default_signals)
        self.elapsed: Optional[float] = None

    @property
    def stdout(self) -> str:
        return self.out_path.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float) -> bool:
        """Return True once ``text`` is in the log, False after ``timeout`` s; fail if the run ends."""
        deadline = time.monotonic() + timeout
        while text not in self.stderr:
            if self.proc.poll() is not None:
                pytest.fail(f"mayhem ended ({self.proc.returncode}) before logging {text!r}:\n"
                            f"{self.stdout}\n{self.stderr[-3000:]}")
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def finish(self, timeout: float = 8.0) -> int:
        try:
            status = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"mayhem did not end in {timeout} s:\n{self.stdout}\n{self.stderr[-3000:]}")
        self.elapsed = time.monotonic() - self.started
        return status


def run_service(tmp_path: Any, signum: int, *args: str, **extra_env: str) -> Run:
    """Run ``kernprof -l examples/mayhem.py ARGS`` until RUN_FOR s (and the poison message) passed, then signal it."""
    run = Run(tmp_path, ["-m", "kernprof", "-l", EXAMPLE, *args], **extra_env)
    assert run.wait_for("Mayhem service started", 8.0), run.stderr
    started = time.monotonic()
    # The poison message makes the exception handler run; wait for it, within reason.
    run.wait_for("Caught exception", RUN_AT_MOST)
    time.sleep(max(0.0, RUN_FOR - (time.monotonic() - started)))
    run.proc.send_signal(signum)
    return run


def function_lines(stats: Any, name: str) -> Dict[int, Any]:
    found = [fs for fs in stats.functions if fs.name == name]
    assert len(found) == 1, f"{name}: {[fs.name for fs in stats.functions]}"
    return found[0].lines


def sleep_line(func: Any) -> int:
    """Return the number of the one ``await asyncio.sleep(...)`` line of mayhem's ``func``."""
    import inspect

    lines, start = inspect.getsourcelines(func)
    found = [start + i for i, text in enumerate(lines) if "await asyncio.sleep(" in text]
    assert len(found) == 1, (func, found)
    return found[0]


def line_before(func: Any, lineno: int) -> int:
    """Return the number of the last line of ``func`` before ``lineno`` that has code."""
    import inspect

    lines, start = inspect.getsourcelines(func)
    for i in range(lineno - start - 1, -1, -1):
        text = lines[i].strip()
        if text and not text.startswith("#"):
            return start + i
    raise LookupError(lineno)


def line_after(func: Any, lineno: int) -> int:
    """Return the number of the next line of ``func`` after ``lineno`` that has code."""
    import inspect

    lines, start = inspect.getsourcelines(func)
    for i in range(lineno - start + 1, len(lines)):
        text = lines[i].strip()
        if text and not text.startswith("#"):
            return start + i
    raise LookupError(lineno)


def task_field(task: Any, name: str) -> Any:
    """Return a field of a task record, a mapping or a record object (``await`` is ``await_``)."""
    if isinstance(task, dict):
        return task[name]
    return getattr(task, "await_" if name == "await" else name)


def check_profile(tmp_path: Any, run: Run, signame: str) -> Any:
    """The checks every signalled run must pass; returns the loaded stats."""
    assert f"Received exit signal {signame}, shutting down" in run.stderr
    assert "Successfully shut down the Mayhem service" in run.stderr
    assert "Wrote profile results to 'mayhem.py.lprof'" in run.stdout
    assert "Traceback" not in run.stderr
    stats = lineprof.load_stats(str(tmp_path / "mayhem.py.lprof"))
    unit = stats.unit
    names = {fs.name for fs in stats.functions}
    assert set(COROUTINES) <= names
    for fs in stats.functions:
        assert fs.kind == "coroutine", fs.name
        assert fs.file == EXAMPLE

    # The publisher: the pauses it slept are known from the seed.
    # The sleeps started are counted on the line before the sleep: the sleep
    # line's own hits may have one more, where CPython (3.13) gives it a
    # second line event when the shutdown's cancellation is thrown in.
    line = sleep_line(mayhem.publish)
    lines = function_lines(stats, "publish")
    rec, started = lines[line], lines[line_before(mayhem.publish, line)].hits
    assert started <= rec.hits <= started + 1, (rec, started)
    assert started >= 10, rec  # 0.05 to 0.2 s apart, over 2 s and more
    pauses = mayhem.publish_delays(0)
    delays = [next(pauses) for _ in range(started)]
    slept = rec.await_ * unit
    # Every pause but the last (cut short at shutdown) was slept in full...
    assert slept >= sum(delays[:-1]) - TIMER_SLACK * started, (rec, delays)
    assert slept >= 0.5 * RUN_FOR
    # ...and the publisher cannot have been suspended for longer than the run.
    assert slept <= run.elapsed, (rec, run.elapsed)

    # extend: each sleep lasts EXTEND_EVERY; some of them ran side by side.
    line = sleep_line(mayhem.extend)
    rec = function_lines(stats, "extend")[line]
    assert rec.hits >= 3, rec
    assert rec.await_ * unit >= mayhem.EXTEND_EVERY - TIMER_SLACK
    assert rec.await_ * unit <= rec.hits * min(run.elapsed, mayhem.EXTEND_EVERY + 0.25)

    # Each sleep that was followed by its next line was slept in full.
    for func, least in ((mayhem.restart_host, 0.05), (mayhem.save, 0.05),
                        (mayhem.cleanup, mayhem.ACK_TIME)):
        line = sleep_line(func)
        lines = function_lines(stats, func.__name__)
        rec, after = lines[line], lines.get(line_after(func, line))
        assert rec.hits >= 1 and rec.await_ > 0, (func.__name__, rec)
        done = after.hits if after else 0
        assert rec.await_ * unit >= done * (least - TIMER_SLACK), (func.__name__, rec, after)
        assert rec.await_ * unit <= rec.hits * run.elapsed

    handle = function_lines(stats, "handle_message")
    assert sum(r.hits for r in handle.values()) > 0
    assert sum(r.await_ for r in handle.values()) > 0
    assert function_lines(stats, "shutdown")  # it ran, under the profiler

    # Task attribution: the tasks that ran the coroutines, by name.
    tasks = list(stats.tasks)
    assert tasks, "no task records"
    for t in tasks:
        for name in ("id", "name", "coro", "time", "await"):
            task_field(t, name)
    coros = {task_field(t, "coro") for t in tasks}
    assert {"publish", "consume", "handle_message", "extend"} <= coros, coros
    handlers = [t for t in tasks if task_field(t, "coro") == "handle_message"]
    assert any(task_field(t, "name").startswith("handle-") or task_field(t, "name") == "handle_message"
               for t in handlers), handlers
    publisher = [t for t in tasks if task_field(t, "coro") == "publish"]
    assert [task_field(t, "name") for t in publisher] == ["publisher"]
    # The publisher task's outermost profiled frame is publish's: it only waits on its sleep line.
    line = sleep_line(mayhem.publish)
    assert task_field(publisher[0], "await") == function_lines(stats, "publish")[line].await_
    return stats


def view(tmp_path: Any) -> None:
    """``python -m lineprof mayhem.py.lprof`` exits 0 and shows the coroutines."""
    proc = subprocess.run([sys.executable, "-m", "lineprof", "mayhem.py.lprof"], cwd=tmp_path,
                          env=env(), capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    for name in COROUTINES:
        assert f"Function: {name} at line" in proc.stdout
    assert "await asyncio.sleep(next(delays))" in proc.stdout


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_mayhem_signalled_on_asyncio(tmp_path, signame):
    run = run_service(tmp_path, getattr(signal, signame))
    assert run.finish() == 0, run.stderr[-3000:]
    assert "Mayhem service started on asyncio" in run.stderr
    assert "Caught exception: message 0015 is poison" in run.stderr  # the loop's handler
    check_profile(tmp_path, run, signame)
    view(tmp_path)


@needs_uvloop
@pytest.mark.parametrize("how", ["flag", "env"])
def test_mayhem_signalled_on_uvloop(tmp_path, how):
    if how == "flag":
        run = run_service(tmp_path, signal.SIGINT, "--uvloop")
    else:
        run = run_service(tmp_path, signal.SIGINT, MAYHEM_UVLOOP="1")
    assert run.finish() == 0, run.stderr[-3000:]
    assert "Mayhem service started on uvloop" in run.stderr
    check_profile(tmp_path, run, "SIGINT")
    view(tmp_path)


def test_mayhem_stops_itself_after_duration(tmp_path):
    run = Run(tmp_path, ["-m", "kernprof", "-l", EXAMPLE, "--duration", "0.8"])
    assert run.finish() == 0, run.stderr[-3000:]
    assert "Time is up, shutting down" in run.stderr
    stats = lineprof.load_stats(str(tmp_path / "mayhem.py.lprof"))
    assert set(COROUTINES) <= {fs.name for fs in stats.functions}


def test_mayhem_runs_without_kernprof(tmp_path):
    run = Run(tmp_path, [EXAMPLE, "--duration", "0.5"], MAYHEM_SEED="7")
    assert run.finish() == 0, run.stderr[-3000:]
    assert "Mayhem service started on asyncio" in run.stderr
    assert "(seed 7)" in run.stderr
    assert "Successfully shut down the Mayhem service" in run.stderr
    assert not (tmp_path / "mayhem.py.lprof").exists()


def test_publish_delays_are_seeded():
    first = [next(mayhem.publish_delays(0)) for _ in range(3)]
    pauses = mayhem.publish_delays(0)
    again = [next(pauses) for _ in range(20)]
    assert first == [again[0]] * 3
    assert all(0.05 <= d <= 0.2 for d in again)
    other = mayhem.publish_delays(1)
    assert again != [next(other) for _ in range(20)]
