"""kernprof's configuration files and its on/off options, through the real command.

What each test checks is visible in kernprof's own output: ``-v`` prints
the timer unit, ``-z`` (skip-zero) leaves out the function never called,
``-q`` the "Wrote profile results" line.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from conftest import child_env, line_profiler_dir

import lineprof

SCRIPT = """\
    @profile
    def called():
        return 1

    @profile
    def never():
        return 2

    called()
"""


def kernprof(cwd, *args, env=None, stdin=None):
    return subprocess.run([sys.executable, "-m", "kernprof", *args], cwd=cwd,
                          env=env or child_env(), capture_output=True, text=True,
                          timeout=60, input=stdin)


@pytest.fixture
def project(tmp_path):
    """A project folder with s.py; a pyproject.toml with an empty [project] stops the lookup here."""
    (tmp_path / "s.py").write_text(textwrap.dedent(SCRIPT))
    return tmp_path


def shown(proc):
    """Return (unit line, whether never() was shown, whether 'Wrote' was said) from -v output."""
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    unit = [ln for ln in out.splitlines() if ln.startswith("Timer unit:")]
    return (unit[0] if unit else None, "Function: never" in out,
            "Wrote profile results" in out)


def write(path, text):
    path.write_text(textwrap.dedent(text))


def test_pyproject_tool_lineprof_is_read(project):
    write(project / "pyproject.toml", """\
        [tool.lineprof.kernprof]
        line-by-line = true
        verbose = 1
        skip-zero = true
        unit = 1e-3
    """)
    assert shown(kernprof(project, "s.py")) == ("Timer unit: 0.001 s", False, True)


def test_line_profiler_table_when_there_is_no_lineprof_table(project):
    write(project / "pyproject.toml", """\
        [tool.line_profiler.kernprof]
        line-by-line = true
        verbose = 1
        unit = 1e-3
        prof-mod = ["somewhere"]
        preimports = false
    """)
    proc = kernprof(project, "s.py")
    assert shown(proc) == ("Timer unit: 0.001 s", True, True)
    assert proc.stderr == (f"kernprof: warning: {project / 'pyproject.toml'}: "
                           "[tool.line_profiler.kernprof]: lineprof does not support "
                           "prof-mod, preimports yet; ignored\n")


def test_lineprof_table_wins_over_line_profilers(project):
    write(project / "pyproject.toml", """\
        [tool.line_profiler.kernprof]
        unit = 1.0
        [tool.lineprof.kernprof]
        unit = 1e-3
    """)
    assert shown(kernprof(project, "-lv", "s.py"))[0] == "Timer unit: 0.001 s"


def test_lookup_order_and_walk_up(project):
    sub = project / "pkg" / "deeper"
    sub.mkdir(parents=True)
    (sub / "s.py").write_text(textwrap.dedent(SCRIPT))
    write(project / "pyproject.toml", "[tool.lineprof.kernprof]\nunit = 1.0\n")
    # Found two levels up.
    assert shown(kernprof(sub, "-lv", "s.py"))[0] == "Timer unit: 1 s"
    # lineprof.toml comes before pyproject.toml in the same folder.
    write(project / "lineprof.toml", "[tool.lineprof.kernprof]\nunit = 1e-3\n")
    assert shown(kernprof(sub, "-lv", "s.py"))[0] == "Timer unit: 0.001 s"
    # A nearer TOML file without our tables stops the lookup: the defaults.
    write(project / "pkg" / "pyproject.toml", "[project]\nname = 'x'\n")
    assert shown(kernprof(sub, "-lv", "s.py"))[0] == "Timer unit: 1e-06 s"
    # A nearer file that is not TOML is passed over.
    write(project / "pkg" / "pyproject.toml", "this is [not toml\n")
    assert shown(kernprof(sub, "-lv", "s.py"))[0] == "Timer unit: 0.001 s"


def test_explicit_files_and_their_order(project, tmp_path_factory):
    other = tmp_path_factory.mktemp("elsewhere")
    write(project / "pyproject.toml", "[tool.lineprof.kernprof]\nunit = 1.0\n")
    write(other / "a.toml", "[tool.lineprof.kernprof]\nunit = 1e-3\n")
    write(other / "b.toml", "[tool.line_profiler.kernprof]\nunit = 1e-9\n")
    env_a = child_env(LINEPROF_RC=str(other / "a.toml"))
    env_b = child_env(LINE_PROFILER_RC=str(other / "b.toml"))
    both = child_env(LINEPROF_RC=str(other / "a.toml"), LINE_PROFILER_RC=str(other / "b.toml"))
    assert shown(kernprof(project, "-lv", "s.py", env=env_a))[0] == "Timer unit: 0.001 s"
    assert shown(kernprof(project, "-lv", "s.py", env=env_b))[0] == "Timer unit: 1e-09 s"
    assert shown(kernprof(project, "-lv", "s.py", env=both))[0] == "Timer unit: 0.001 s"
    # --config wins over the environment; --no-config reads nothing.
    assert shown(kernprof(project, "-lv", "--config", str(other / "b.toml"), "s.py",
                          env=env_a))[0] == "Timer unit: 1e-09 s"
    assert shown(kernprof(project, "-lv", "--no-config", "s.py",
                          env=env_a))[0] == "Timer unit: 1e-06 s"


def test_command_line_wins_over_the_file(project):
    write(project / "pyproject.toml", """\
        [tool.lineprof.kernprof]
        line-by-line = true
        skip-zero = true
        verbose = 1
        unit = 1e-3
    """)
    assert shown(kernprof(project, "--no-skip-zero", "-u", "1", "s.py")) == (
        "Timer unit: 1 s", True, True)
    assert shown(kernprof(project, "--skip-zero=no", "s.py")) == ("Timer unit: 0.001 s", True, True)
    # The file's verbose = 1 and one -q: not shown, still said.
    assert shown(kernprof(project, "-q", "s.py")) == (None, False, True)


@pytest.mark.parametrize("text, message", [
    ("[tool.lineprof.kernprof]\nunit = \"fast\"\n",
     "[tool.lineprof.kernprof] unit must be a number, not a string ('fast')"),
    ("[tool.lineprof.kernprof]\nskip-zero = 1\n",
     "[tool.lineprof.kernprof] skip-zero must be a boolean (true or false), not an integer (1)"),
    ("[tool.lineprof.kernprof]\nskip_zeros = true\n",
     "[tool.lineprof.kernprof] has no key 'skip_zeros' (known: builtin, line-by-line, live, "
     "live-allow-remote, outfile, output-interval, rich, setup, skip-zero, summarize, unit, "
     "verbose)"),
    ("[tool.line_profiler.kernprof]\nverbose = \"loud\"\n",
     "[tool.line_profiler.kernprof] verbose must be an integer, not a string ('loud')"),
    ("[tool.lineprof]\nkernprof = 3\n",
     "[tool.lineprof.kernprof] must be a table, not an integer"),
    ("[tool.lineprof.kernprof]\nunit = -1.0\n",
     "[tool.lineprof.kernprof] unit must be a positive number of seconds, got -1.0"),
], ids=["str-for-number", "int-for-bool", "unknown-key", "line_profiler-table", "not-a-table",
        "negative-unit"])
def test_bad_configuration_is_one_line(project, text, message):
    path = project / "pyproject.toml"
    path.write_text(text)
    proc = kernprof(project, "-l", "s.py")
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == f"kernprof: error: {path}: {message}\n"
    assert not (project / "s.py.lprof").exists()  # nothing ran


def test_named_file_that_cannot_be_used(project):
    proc = kernprof(project, "-l", "--config", "missing.toml", "s.py")
    assert proc.returncode == 1
    assert proc.stderr == (f"kernprof: error: {project / 'missing.toml'}: "
                           "no such configuration file\n")
    (project / "bad.toml").write_text("unit = [\n")
    proc = kernprof(project, "-l", "--config", "bad.toml", "s.py")
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
    assert proc.stderr.startswith(f"kernprof: error: {project / 'bad.toml'}: not a valid TOML file: ")


def test_line_profilers_own_shipped_file_is_accepted(project):
    """line_profiler 5.1's rc/line_profiler.toml, every table and key: read, nothing refused."""
    rc = os.path.join(line_profiler_dir(), "line_profiler", "rc", "line_profiler.toml")
    if sys.version_info < (3, 10):
        pytest.skip("line_profiler 5.1 needs Python 3.10 or newer (Requires-Python >=3.10)")
    assert os.path.isfile(rc), f"MISSING: line_profiler 5.1 in {line_profiler_dir()}"
    proc = kernprof(project, "-l", "-q", "--config", rc, "s.py")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == (f"kernprof: warning: {rc}: [tool.line_profiler.kernprof]: lineprof "
                           "does not support preimports, prof-imports, prof-mod yet; ignored\n")


@pytest.mark.parametrize("args, skip_zero_on", [
    (["--skip-zero"], True), (["--skip-zero=yes"], True), (["--skip-zero=ON"], True),
    (["--skip-zero=1"], True), (["--skip-zero=no"], False), (["--no-skip-zero"], False),
    (["-z", "--no-skip-zero"], False), (["--no-skip-zero=false"], True),
])
def test_switches_take_a_value_and_a_no_form(project, args, skip_zero_on):
    proc = kernprof(project, "--line-by-line=true", "-v", *args, "s.py")
    assert shown(proc)[1] is (not skip_zero_on)


def test_a_switch_value_that_is_not_on_or_off(project):
    proc = kernprof(project, "-l", "--rich=maybe", "s.py")
    assert proc.returncode == 2
    assert proc.stderr == ("kernprof: error: argument --rich: expected yes/no, true/false, "
                           "on/off or 1/0, got 'maybe'\n")


def test_script_from_standard_input(project):
    code = textwrap.dedent(SCRIPT) + "import sys\nprint(sys.argv, __name__, __file__)\n"
    proc = kernprof(project, "-l", "-", "a", "b", stdin=code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "['-', 'a', 'b'] __main__ <stdin>"
    stats = lineprof.load_stats(str(project / "kernprof-stdin.lprof"))
    hits = {f.name: sum(r.hits for r in f.lines.values()) for f in stats.functions}
    assert hits == {"called": 1, "never": 0}


VIEWED = """\
    def called():
        return 1

    def never():
        return 2

    called()
"""


@pytest.fixture
def profile_file(project):
    """A profile of VIEWED: called() run once, never() registered but not run."""
    (project / "v.py").write_text(textwrap.dedent(VIEWED).replace("def ", "@profile\ndef "))
    assert kernprof(project, "-l", "-q", "--no-config", "v.py").returncode == 0
    return project / "v.py.lprof"


def view(cwd, *args, env=None):
    return subprocess.run([sys.executable, "-m", "lineprof", *args], cwd=cwd,
                          env=env or child_env(), capture_output=True, text=True, timeout=60)


def test_viewer_reads_the_cli_table(project, profile_file):
    write(project / "pyproject.toml", """\
        [tool.line_profiler.cli]
        unit = 1e-3
        skip-zero = true
        summarize = true
    """)
    out = view(project, str(profile_file))
    assert out.returncode == 0, out.stderr
    assert "Timer unit: 0.001 s" in out.stdout and "Function: never" not in out.stdout
    assert " - called" in out.stdout  # the summary line
    # Flags win: line_profiler's short ones, with line_profiler's meaning.
    out = view(project, "--no-skip-zero", "-u", "1", str(profile_file))
    assert "Timer unit: 1 s" in out.stdout and "Function: never" in out.stdout
    out = view(project, "--no-config", str(profile_file))
    assert "Timer unit: 1e-06 s" in out.stdout and " - called" not in out.stdout


def test_viewer_short_flags_mean_what_they_mean_in_line_profiler(project, profile_file):
    out = view(project, "-mz", str(profile_file))  # -m summarize, -z skip zero
    assert out.returncode == 0, out.stderr
    assert "Function: never" not in out.stdout and " - called" in out.stdout
    bad = view(project, "-c", "missing.toml", str(profile_file))
    assert bad.returncode == 1
    assert bad.stderr == f"lineprof: {project / 'missing.toml'}: no such configuration file\n"
