"""kernprof and the LINEPROF=1 decorator, run in subprocesses as a user would.

The profiled code must see what ``python`` would give it (argv, __name__,
__file__, sys.path[0]), keep its exit status, and the profile must be
written whatever happens.  Bad input gives one line on stderr, no traceback.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pstats
import subprocess
import sys
import textwrap

import pytest

from conftest import child_env as env

from kernprof import split_special
from lineprof.stats import load_stats

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

needs_extension = pytest.mark.skipif(
    importlib.util.find_spec("lineprof._lineprof") is None,
    reason="the C extension is not built")

WHOAMI = textwrap.dedent('''\
    import json, pickle, sys

    def f():
        return 1

    pickle.loads(pickle.dumps(f))  # needs sys.modules["__main__"] to be this module
    print(json.dumps({
        "argv": sys.argv, "name": __name__, "file": globals().get("__file__"),
        "path0": sys.path[0], "spec": getattr(__spec__, "name", None),
        "package": __package__, "is_main": sys.modules["__main__"].__dict__ is globals(),
    }))
''')


def run(args, cwd, **extra_env):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd,
                          env=env(**extra_env), timeout=60)


def kernprof(*args, cwd):
    return run(["-m", "kernprof", *args], cwd)


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def first_json(stdout):
    return json.loads(stdout.splitlines()[0])


def assert_one_line_error(proc, code, text):
    assert proc.returncode == code, proc
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [text]


# -- running the code as python would -----------------------------------------------------

@needs_extension
def test_script_sees_what_python_gives_it(tmp_path):
    write(tmp_path / "scripts" / "whoami.py", WHOAMI)
    args = ["scripts/whoami.py", "a", "-v", "--x=1"]
    want = first_json(run(args, tmp_path).stdout)
    proc = kernprof("-l", *args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    got = first_json(proc.stdout)
    assert got == want
    assert got["argv"] == args and got["name"] == "__main__" and got["spec"] is None
    # 3.9+ run a script under its absolute path, 3.8 as typed.
    assert got["file"] == (str(tmp_path / "scripts" / "whoami.py")
                           if sys.version_info >= (3, 9) else "scripts/whoami.py")
    assert got["path0"] == os.path.realpath(tmp_path / "scripts")
    assert (tmp_path / "whoami.py.lprof").is_file()
    assert proc.stdout.splitlines()[1:] == [
        "Wrote profile results to 'whoami.py.lprof'",
        "Inspect results with:",
        proc.stdout.splitlines()[3].split(" -m ")[0] + " -m lineprof whoami.py.lprof",
    ]


@needs_extension
def test_module_mode_matches_python_m(tmp_path):
    write(tmp_path / "pkg" / "__init__.py", "")
    write(tmp_path / "pkg" / "mod.py", WHOAMI)
    want = first_json(run(["-m", "pkg.mod", "q", "-l"], tmp_path).stdout)
    proc = kernprof("-l", "-m", "pkg.mod", "q", "-l", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    got = first_json(proc.stdout)
    assert got == want
    assert got["path0"] == str(tmp_path) and got["spec"] == "pkg.mod"
    assert got["argv"] == [str(tmp_path / "pkg" / "mod.py"), "q", "-l"]
    assert (tmp_path / "pkg.mod.lprof").is_file()


@needs_extension
def test_code_mode_matches_python_c(tmp_path):
    code = WHOAMI
    want = first_json(run(["-c", code, "x", "y"], tmp_path).stdout)
    proc = kernprof("-l", "-c", code, "x", "y", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    got = first_json(proc.stdout)
    assert got == want
    assert got["argv"] == ["-c", "x", "y"] and got["path0"] == "" and got["file"] is None
    assert (tmp_path / "kernprof-command.lprof").is_file()


def test_cprofile_default_name_and_whole_run(tmp_path):
    write(tmp_path / "app.py", """\
        import builtins
        def slow():
            return sum(range(1000))
        slow()
        print("profile" in vars(builtins))
    """)
    proc = kernprof("app.py", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "False"  # no -b: nothing injected
    assert lines[1] == "Wrote profile results to 'app.py.prof'"
    assert lines[3].endswith(" -m pstats app.py.prof")
    stats = pstats.Stats(str(tmp_path / "app.py.prof"))
    assert any(func[2] == "slow" for func in stats.stats)


def test_builtin_cprofile_profiles_decorated_functions(tmp_path):
    write(tmp_path / "app.py", """\
        import inspect, lineprof
        @profile
        def chosen():
            return 1
        def other():
            return 2
        @profile
        async def coro():
            return 3
        chosen(); other()
        print(inspect.iscoroutinefunction(coro), lineprof.profile.profiler is profile)
    """)
    proc = kernprof("-b", "-o", "out.prof", "app.py", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "True True"
    names = {func[2] for func in pstats.Stats(str(tmp_path / "out.prof")).stats}
    assert "chosen" in names and "other" not in names


# -- exit status -------------------------------------------------------------------------------

@needs_extension
def test_exit_code_is_kept_and_profile_written(tmp_path):
    write(tmp_path / "exit3.py", """\
        import sys
        @profile
        def f():
            return 1
        f()
        sys.exit(3)
    """)
    proc = kernprof("-l", "exit3.py", cwd=tmp_path)
    assert proc.returncode == 3
    assert "Wrote profile results to 'exit3.py.lprof'" in proc.stdout
    assert (tmp_path / "exit3.py.lprof").is_file()


@needs_extension
def test_system_exit_with_message(tmp_path):
    write(tmp_path / "bye.py", "import sys\nsys.exit('bye now')\n")
    proc = kernprof("-l", "bye.py", cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr == "bye now\n"
    assert (tmp_path / "bye.py.lprof").is_file()


@needs_extension
def test_uncaught_exception_traceback_like_python(tmp_path):
    write(tmp_path / "bad.py", """\
        def f():
            raise ValueError("boom")
        f()
    """)
    want = run(["bad.py"], tmp_path)
    proc = kernprof("-l", "bad.py", cwd=tmp_path)
    assert proc.returncode == want.returncode == 1
    assert proc.stderr == want.stderr
    assert "kernprof" not in proc.stderr
    assert (tmp_path / "bad.py.lprof").is_file()


@needs_extension
def test_syntax_error_like_python(tmp_path):
    write(tmp_path / "syn.py", "def f(:\n    pass\n")
    want = run(["syn.py"], tmp_path)
    proc = kernprof("-l", "syn.py", cwd=tmp_path)
    assert proc.returncode == want.returncode == 1
    assert proc.stderr == want.stderr


@needs_extension
def test_keyboard_interrupt_status_like_python(tmp_path):
    write(tmp_path / "ki.py", """\
        @profile
        def f():
            raise KeyboardInterrupt
        f()
    """)
    proc = kernprof("-l", "ki.py", cwd=tmp_path)
    # Python ends on an uncaught KeyboardInterrupt by SIGINT (a shell shows 130).
    assert proc.returncode in (-2, 130)
    assert proc.stderr.rstrip().endswith("KeyboardInterrupt")
    assert "kernprof/__init__.py" not in proc.stderr
    assert (tmp_path / "ki.py.lprof").is_file()


# -- output --------------------------------------------------------------------------------------

@needs_extension
def test_view_prints_report_and_lineprof_reads_it(tmp_path):
    write(tmp_path / "app.py", """\
        import asyncio
        @profile
        def work(n):
            total = 0
            for i in range(n):
                total += i
            return total

        @profile
        async def waiter():
            await asyncio.sleep(0.01)
            return 1

        work(10)
        asyncio.run(waiter())
    """)
    proc = kernprof("-l", "-v", "-u", "1e-3", "--summarize", "app.py", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith("Wrote profile results to 'app.py.lprof'\nTimer unit: 0.001 s\n")
    assert "Inspect results with" not in out
    assert "Function: work at line 2" in out and "Function: waiter at line 9" in out
    assert "Total await: " in out
    assert " seconds - " in out
    view = run(["-m", "lineprof", "--json", "app.py.lprof"], tmp_path)
    doc = json.loads(view.stdout)
    kinds = {f["name"]: f["kind"] for f in doc["functions"]}
    assert kinds == {"work": "function", "waiter": "coroutine"}
    waiter = next(f for f in doc["functions"] if f["name"] == "waiter")
    assert sum(line["await"] for line in waiter["lines"]) > 5_000_000  # ~10 ms asleep


@needs_extension
def test_outfile_quiet_setup_and_global_profile(tmp_path):
    write(tmp_path / "setup_code.py", "import os\nos.environ['SETUP_RAN'] = '1'\n")
    write(tmp_path / "app.py", """\
        import builtins, os, lineprof
        @lineprof.profile
        def f():
            return os.environ.get("SETUP_RAN")
        print(f(), lineprof.profile.profiler is builtins.profile)
    """)
    (tmp_path / "out").mkdir()
    proc = kernprof("-l", "-q", "-s", "setup_code.py", "-o", "out/custom.lprof", "app.py",
                    cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "1 True\n"  # -q: no messages
    view = run(["-m", "lineprof", "--json", "out/custom.lprof"], tmp_path)
    names = [f["name"] for f in json.loads(view.stdout)["functions"]]
    assert names == ["f"]  # the setup file is not profiled


@needs_extension
def test_failing_setup_is_reported_like_a_script_error(tmp_path):
    write(tmp_path / "setup_code.py", "raise RuntimeError('setup broke')\n")
    write(tmp_path / "app.py", "print('should not run')\n")
    proc = kernprof("-l", "-s", "setup_code.py", "app.py", cwd=tmp_path)
    assert proc.returncode == 1
    assert "should not run" not in proc.stdout
    assert proc.stderr.splitlines()[-1] == "RuntimeError: setup broke"
    assert "kernprof/__init__.py" not in proc.stderr
    assert (tmp_path / "app.py.lprof").is_file()


# -- bad input -------------------------------------------------------------------------------------

def test_missing_setup_file(tmp_path):
    write(tmp_path / "app.py", "print('ran')\n")
    proc = kernprof("-l", "-s", "nosetup.py", "app.py", cwd=tmp_path)
    assert_one_line_error(proc, 1, "kernprof: error: could not find setup file 'nosetup.py'")
    assert proc.stdout == ""


def test_missing_script(tmp_path):
    proc = kernprof("-l", "nope.py", cwd=tmp_path)
    assert_one_line_error(proc, 1, "kernprof: error: could not find script 'nope.py'")
    assert os.listdir(tmp_path) == []


def test_missing_module(tmp_path):
    proc = kernprof("-l", "-m", "no_such_module_xyz", cwd=tmp_path)
    assert_one_line_error(proc, 1, "kernprof: error: no module named 'no_such_module_xyz'")


def test_bad_unit(tmp_path):
    proc = kernprof("-l", "-u", "-1", "x.py", cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines()[-1] == (
        "kernprof: error: argument -u/--unit: must be a positive number of seconds, got '-1'")


@pytest.mark.parametrize("flags", [["-l", "-i"], ["-li"], ["-l", "-i", "0.5"],
                                   ["-l", "--output-interval"], ["-l", "--output-interval=2"]])
def test_output_interval_value_is_optional(tmp_path, flags):
    """A bare -i means 1 s; a word after it that is not a number is the script."""
    write(tmp_path / "app.py", "@profile\ndef f():\n    return 1\nprint(f())\n")
    proc = kernprof(*flags, "app.py", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "1"
    assert load_stats(str(tmp_path / "app.py.lprof")).functions[0].total_hits == 1


@pytest.mark.parametrize("args", [["-l"], ["-l", "-m"], ["-l", "-c"]])
def test_nothing_to_run_is_a_usage_error(tmp_path, args):
    proc = kernprof(*args, cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines()[-1].startswith("kernprof: error: ")


# -- option splitting (in-process) ------------------------------------------------------------------

@pytest.mark.parametrize("argv, expected", [
    (["-l", "app.py", "-m", "x"], None),
    (["-l", "--", "app.py"], None),
    (["-l", "-m", "pkg.mod", "-v"], (["-l"], "m", "pkg.mod", ["-v"])),
    (["-lv", "-c", "print(1)", "a"], (["-lv"], "c", "print(1)", ["a"])),
    (["-lm", "pkg"], (["-l"], "m", "pkg", [])),
    (["-mpkg", "a"], ([], "m", "pkg", ["a"])),
    (["-o", "-m", "-m", "mod"], (["-o", "-m"], "m", "mod", [])),
    (["-lo", "out", "-c", "x"], (["-lo", "out"], "c", "x", [])),
    (["--outfile", "-c", "-c", "x"], (["--outfile", "-c"], "c", "x", [])),
    (["--unit=1", "-i", "3", "-m", "m"], (["--unit=1", "-i", "3"], "m", "m", [])),
])
def test_split_special(argv, expected):
    assert split_special(argv) == expected


# -- LINEPROF=1 without kernprof -----------------------------------------------------------------------

EXPLICIT = """\
    import sys
    from lineprof import profile

    @profile
    def f(n):
        return sum(range(n))

    g = profile(len)  # not profilable: must not matter when profiling is off
    print(f(10), "lineprof._lineprof" in sys.modules)
"""


def test_profile_is_a_no_op_without_the_variable(tmp_path):
    write(tmp_path / "app.py", EXPLICIT.replace("g = profile(len)", "assert profile(len) is len"))
    proc = run(["app.py"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "45 False\n"
    assert os.listdir(tmp_path) == ["app.py"]


@needs_extension
@pytest.mark.parametrize("variable", ["LINEPROF", "LINE_PROFILE"])
def test_profile_with_the_variable_writes_at_exit(tmp_path, variable):
    write(tmp_path / "app.py", EXPLICIT.replace("g = profile(len)", ""))
    proc = run(["app.py"], tmp_path, **{variable: "1"})
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "45 True"
    assert " seconds - " in lines[1] and lines[1].endswith(":4 - f")
    assert lines[2:4] == ["Wrote profile results to 'app.py.lprof'", "Inspect results with:"]
    assert lines[4].endswith(" -m lineprof app.py.lprof")
    view = run(["-m", "lineprof", "--json", "app.py.lprof"], tmp_path)
    (fn,) = json.loads(view.stdout)["functions"]
    assert fn["name"] == "f" and fn["lines"][0]["hits"] == 1


@needs_extension
def test_profile_output_variable(tmp_path):
    write(tmp_path / "app.py", EXPLICIT.replace("g = profile(len)", ""))
    proc = run(["app.py"], tmp_path, LINEPROF="1", LINEPROF_OUTPUT="elsewhere.lprof")
    assert proc.returncode == 0, proc.stderr
    assert "Wrote profile results to 'elsewhere.lprof'" in proc.stdout
    assert (tmp_path / "elsewhere.lprof").is_file()
    assert not (tmp_path / "app.py.lprof").exists()


def test_profile_off_when_variable_is_zero(tmp_path):
    write(tmp_path / "app.py", EXPLICIT.replace("g = profile(len)", ""))
    proc = run(["app.py"], tmp_path, LINEPROF="0")
    assert proc.stdout == "45 False\n"
