"""What a first user runs into: versions, one unit for --slow, and hints where a habit misleads.

Each runs the real command in a subprocess (issue 12, item 4).
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import pytest

from conftest import ROOT, child_env

import lineprof
from lineprof import top


def run(args, cwd, **kw):
    return subprocess.run([sys.executable, *args], cwd=cwd, env=child_env(),
                          capture_output=True, text=True, timeout=60, **kw)


def setup_py_version() -> str:
    with open(f"{ROOT}/lineprof/_version.py") as f:
        return re.search(r'__version__ = "([^"]+)"', f.read()).group(1)


@pytest.mark.parametrize("command", [["-m", "kernprof"], ["-m", "lineprof"],
                                     ["-m", "lineprof", "top"]],
                         ids=["kernprof", "lineprof", "lineprof top"])
@pytest.mark.parametrize("flag", ["-V", "--version"])
def test_version(tmp_path, command, flag):
    proc = run([*command, flag], tmp_path)
    assert (proc.returncode, proc.stderr) == (0, "")
    assert proc.stdout == setup_py_version() + "\n"
    assert lineprof.__version__ == setup_py_version()


def test_top_slow_is_in_milliseconds_as_in_the_viewer():
    assert top.build_parser().parse_args(["unix:/x", "--slow", "50"]).slow == pytest.approx(0.05)
    assert top.build_parser().parse_args(["unix:/x"]).slow == pytest.approx(0.1)


def test_top_bad_slow_says_milliseconds(tmp_path):
    proc = run(["-m", "lineprof", "top", "unix:/x", "--slow", "-1"], tmp_path)
    assert proc.returncode == 2
    assert proc.stderr == ("lineprof: error: argument --slow: must be a number of "
                           "milliseconds, 0 or more, got '-1'\n")


BARE = """\
    @profile
    def f():
        return 1

    f()
"""


def test_bare_profile_without_l_gets_a_hint(tmp_path):
    (tmp_path / "bare.py").write_text(textwrap.dedent(BARE))
    proc = run(["-m", "kernprof", "-q", "bare.py", "x"], tmp_path)
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert lines[-2].startswith("NameError: name 'profile' is not defined")
    assert lines[-1] == ("kernprof: hint: `profile` is defined only with -l (line by line) "
                         "or -b: try kernprof -l bare.py x")
    # With -l the same script runs.
    assert run(["-m", "kernprof", "-l", "-q", "bare.py"], tmp_path).returncode == 0


def test_another_name_error_gets_no_hint(tmp_path):
    (tmp_path / "other.py").write_text("undefined_thing()\n")
    proc = run(["-m", "kernprof", "-q", "other.py"], tmp_path)
    assert proc.returncode == 1 and "hint" not in proc.stderr


def test_a_script_given_to_the_viewer_gets_a_hint(tmp_path):
    (tmp_path / "app.py").write_text(textwrap.dedent(BARE))
    proc = run(["-m", "lineprof", "app.py"], tmp_path)
    assert proc.returncode == 1
    assert proc.stderr == ("lineprof: app.py is a Python script, not a profile: profile it "
                           "with kernprof -l app.py, then view app.py.lprof\n")
