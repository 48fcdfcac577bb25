"""Interpreter shutdown with the hook installed: the program exits as it would without lineprof.

On 3.12+ the hook is a sys.monitoring tool. A program that keeps something
reachable from ``sys`` (``sys.excepthook``, ``sys.unraisablehook``, a
profiled function or the profiler itself in a ``sys`` attribute) makes the
profiler outlive the ``sys`` module's dict at shutdown; its teardown must
then not look anything up in ``sys.monitoring`` (a segfault, status 139,
before the fix). Each case runs in a subprocess and must exit 0 with an
empty stderr, whether the profiler was disabled or is still enabled.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from conftest import child_env



def run(tmp_path, args, source: str) -> subprocess.CompletedProcess:
    (tmp_path / "prog.py").write_text(textwrap.dedent(source))
    return subprocess.run([sys.executable, *args], cwd=tmp_path, env=child_env(),
                          capture_output=True, text=True, timeout=60)


KEEPERS = {
    "excepthook": "sys.excepthook = lambda *a: None",
    "unraisablehook": "sys.unraisablehook = lambda *a: None",
    "function_in_sys": "sys.kept_function = work",
}


@pytest.mark.parametrize("keeper", sorted(KEEPERS))
def test_kernprof_exits_cleanly_with_something_kept_in_sys(tmp_path, keeper):
    proc = run(tmp_path, ["-m", "kernprof", "-l", "-q", "prog.py"], f"""\
        import sys

        @profile
        def work(n):
            return n

        work(1)
        {KEEPERS[keeper]}
    """)
    assert (proc.returncode, proc.stderr) == (0, "")
    assert (tmp_path / "prog.py.lprof").stat().st_size > 0


@pytest.mark.parametrize("state", ["disabled", "enabled", "profiler_in_sys"])
@pytest.mark.parametrize("keeper", sorted(KEEPERS))
def test_api_profiler_exits_cleanly(tmp_path, keeper, state):
    tail = {"disabled": "prof.disable()",
            "enabled": "prof.enable()",
            "profiler_in_sys": "prof.enable(); sys.kept_profiler = prof"}[state]
    proc = run(tmp_path, ["prog.py"], f"""\
        import sys
        from lineprof import LineProfiler

        prof = LineProfiler()

        def work(n):
            return n

        work = prof(work)
        prof.enable()
        work(1)
        {tail}
        {KEEPERS[keeper]}
        print("done")
    """)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "done\n", "")
