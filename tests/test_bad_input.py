"""The bad-input table (docs/bad-input.md), one test per row.

Every row runs the real command in a subprocess, as a user would:
``python -m kernprof ...`` or ``python -m lineprof ...``.  Our own errors
are one line on stderr and a non-zero exit, never a traceback; the user's
own errors (a syntax error, an exception at top level) are reported as
``python`` reports them, without a frame of kernprof's or lineprof's.

Rows that need a file the process cannot read or a directory it cannot
write use ``chmod``.  Under root ``chmod`` stops nothing, so there the child
drops CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from its capability bounding
set before it execs (root then loses them); where even that is not allowed
the row is skipped, saying why.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import pickle
import resource
import signal
import struct
import subprocess
import sys
import textwrap
import types
import zlib

import pytest

from conftest import child_env as env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

needs_extension = pytest.mark.skipif(
    importlib.util.find_spec("lineprof._lineprof") is None,
    reason="the C extension is not built")

#: What a traceback from our code would show.
OUR_PATHS = (os.path.join(ROOT, "lineprof") + os.sep, os.path.join(ROOT, "kernprof") + os.sep,
             "lineprof/api.py", "kernprof/__init__.py")


# -- running the commands -------------------------------------------------------------------

def run(args, cwd, preexec_fn=None):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd,
                          env=env(), timeout=60, preexec_fn=preexec_fn)


def kernprof(*args, cwd, preexec_fn=None):
    return run(["-m", "kernprof", *args], cwd, preexec_fn)


def lineprof_cli(*args, cwd, preexec_fn=None):
    return run(["-m", "lineprof", *args], cwd, preexec_fn)


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def assert_no_frames_of_ours(proc):
    for mark in OUR_PATHS:
        assert mark not in proc.stderr, proc.stderr


def assert_one_line(proc, status, line):
    """Assert exit ``status``, and that stderr is exactly ``line`` (no traceback)."""
    assert proc.returncode == status, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == [line], proc.stderr


def temporary_files(folder):
    return [name for name in os.listdir(folder) if ".tmp-" in name]


# -- denying access, also to root ---------------------------------------------------------------

_PR_CAPBSET_DROP = 24
_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH = 1, 2


def _drop_dac_capabilities():
    # preexec_fn: runs in the child between fork and exec.
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


@pytest.fixture(scope="module")
def deny(tmp_path_factory):
    """The preexec_fn under which chmod 000 / chmod 555 stop the child (None if not root).

    Skips the test when running as root and the capabilities cannot be dropped.
    """
    if os.geteuid() != 0:
        return None
    folder = tmp_path_factory.mktemp("probe")
    secret = folder / "secret"
    secret.write_text("x")
    secret.chmod(0)
    try:
        proc = run(["-c", f"open({str(secret)!r})"], folder, _drop_dac_capabilities)
    except subprocess.SubprocessError as exc:
        pytest.skip(f"running as root, where chmod does not stop reading or writing, and "
                    f"dropping CAP_DAC_OVERRIDE failed: {exc}")
    if "PermissionError" not in proc.stderr:
        pytest.skip("running as root, where chmod does not stop reading or writing, and "
                    "root still reads a chmod 000 file without CAP_DAC_OVERRIDE")
    return _drop_dac_capabilities


# -- the script -----------------------------------------------------------------------------------

def test_script_missing(tmp_path):
    proc = kernprof("-l", "nope.py", cwd=tmp_path)
    assert_one_line(proc, 1, "kernprof: error: could not find script 'nope.py'")
    assert os.listdir(tmp_path) == []


def test_script_unreadable(tmp_path, deny):
    script = write(tmp_path / "secret.py", "print('ran')\n")
    script.chmod(0)
    proc = kernprof("-l", "secret.py", cwd=tmp_path, preexec_fn=deny)
    assert_one_line(proc, 1, "kernprof: error: can't open script 'secret.py': Permission denied")
    assert proc.stdout == ""
    assert os.listdir(tmp_path) == ["secret.py"]  # nothing ran, no profile


def test_script_is_a_directory_without_main(tmp_path):
    (tmp_path / "app").mkdir()
    proc = kernprof("-l", "app", cwd=tmp_path)
    assert_one_line(proc, 1, "kernprof: error: can't find '__main__' module in 'app'")


#: Lets a script run under python too: ``profile`` is the identity there.
PREAMBLE = ('import asyncio, builtins\n'
            'profile = getattr(builtins, "profile", lambda f: f)\n')


def with_preamble(body):
    return PREAMBLE + textwrap.dedent(body)


@needs_extension
def test_script_syntax_error(tmp_path):
    write(tmp_path / "syn.py", with_preamble("def f(:\n    pass\n"))
    want = run(["syn.py"], tmp_path)
    proc = kernprof("-l", "syn.py", cwd=tmp_path)
    assert proc.returncode == want.returncode == 1
    assert proc.stderr == want.stderr  # python's report of the error, nothing of ours
    assert proc.stderr.rstrip().splitlines()[-1].startswith("SyntaxError: ")
    assert_no_frames_of_ours(proc)
    assert (tmp_path / "syn.py.lprof").is_file()


RAISERS = {
    "function": """\
        @profile
        def f():
            raise ValueError("boom")
        f()
    """,
    "coroutine": """\
        @profile
        async def f():
            await asyncio.sleep(0)
            raise ValueError("boom")
        asyncio.run(f())
    """,
    "wrong_arguments": """\
        @profile
        def f(x):
            return x
        f(1, 2)
    """,
    "chained": """\
        @profile
        def f():
            raise KeyError("inner")
        @profile
        def g():
            try:
                f()
            except KeyError as exc:
                raise ValueError("outer") from exc
        g()
    """,
}


@needs_extension
@pytest.mark.parametrize("case", sorted(RAISERS))
def test_script_raises_at_top_level(tmp_path, case):
    write(tmp_path / "app.py", with_preamble(RAISERS[case]))
    want = run(["app.py"], tmp_path)
    proc = kernprof("-l", "app.py", cwd=tmp_path)
    assert want.returncode == 1 and "Traceback" in want.stderr
    assert proc.returncode == 1
    assert proc.stderr == want.stderr  # the user's traceback, as python prints it
    assert_no_frames_of_ours(proc)
    assert (tmp_path / "app.py.lprof").is_file()


@needs_extension
@pytest.mark.parametrize("code, status, stderr", [
    ("3", 3, ""), ("0", 0, ""), ("255", 255, ""), ("'bye now'", 1, "bye now\n")])
def test_script_calls_sys_exit(tmp_path, code, status, stderr):
    write(tmp_path / "app.py", with_preamble(f"""\
        @profile
        def f():
            return 1
        f()
        raise SystemExit({code})
    """))
    proc = kernprof("-l", "app.py", cwd=tmp_path)
    assert proc.returncode == status
    assert proc.stderr == stderr
    assert "Wrote profile results to 'app.py.lprof'" in proc.stdout
    assert (tmp_path / "app.py.lprof").is_file()


def test_module_missing(tmp_path):
    proc = kernprof("-l", "-m", "nosuchmodule", cwd=tmp_path)
    assert_one_line(proc, 1, "kernprof: error: no module named 'nosuchmodule'")
    assert os.listdir(tmp_path) == []


def test_module_is_a_package_without_main(tmp_path):
    write(tmp_path / "pkg" / "__init__.py", "")
    proc = kernprof("-l", "-m", "pkg", cwd=tmp_path)
    assert_one_line(proc, 1, "kernprof: error: 'pkg' is a package and cannot be directly "
                             "executed (no pkg.__main__)")


def test_setup_file_missing(tmp_path):
    write(tmp_path / "app.py", "print('ran')\n")
    proc = kernprof("-l", "-s", "nosetup.py", "app.py", cwd=tmp_path)
    assert_one_line(proc, 1, "kernprof: error: could not find setup file 'nosetup.py'")
    assert proc.stdout == ""


def test_nothing_to_run(tmp_path):
    proc = kernprof("-l", cwd=tmp_path)
    assert_one_line(proc, 2, "kernprof: error: nothing to run: give a script, "
                             "-m module, -c code or - (stdin)")


# -- writing the profile ------------------------------------------------------------------------

@needs_extension
@pytest.mark.parametrize("ending, status", [("", 1), ("raise SystemExit(0)\n", 1),
                                            ("raise SystemExit(4)\n", 4)])
def test_outfile_in_a_missing_directory(tmp_path, ending, status):
    write(tmp_path / "app.py", "print('ran')\n" + ending)
    proc = kernprof("-l", "-o", "nodir/out.lprof", "app.py", cwd=tmp_path)
    assert_one_line(proc, status, "kernprof: error: could not write profile to "
                                  "'nodir/out.lprof': No such file or directory")
    assert proc.stdout == "ran\n"  # the script ran; nothing claims a profile was written
    assert sorted(os.listdir(tmp_path)) == ["app.py"]


@needs_extension
def test_outfile_in_a_read_only_directory(tmp_path, deny):
    write(tmp_path / "app.py", "print('ran')\n")
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro").chmod(0o555)
    try:
        proc = kernprof("-l", "-o", "ro/out.lprof", "app.py", cwd=tmp_path, preexec_fn=deny)
    finally:
        (tmp_path / "ro").chmod(0o755)
    assert_one_line(proc, 1, "kernprof: error: could not write profile to 'ro/out.lprof': "
                             "Permission denied")
    assert os.listdir(tmp_path / "ro") == []


@needs_extension
def test_outfile_is_a_directory(tmp_path):
    write(tmp_path / "app.py", "print('ran')\n")
    (tmp_path / "out").mkdir()
    proc = kernprof("-l", "-o", "out", "app.py", cwd=tmp_path)
    assert_one_line(proc, 1, "kernprof: error: could not write profile to 'out': Is a directory")
    assert os.listdir(tmp_path / "out") == [] and temporary_files(tmp_path) == []


FILE_LIMIT = 4096


def _limit_file_size():
    # preexec_fn: writes past FILE_LIMIT bytes fail with EFBIG instead of killing the child.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_LIMIT, FILE_LIMIT))


@needs_extension
def test_disk_fills_up_while_writing(tmp_path):
    # A profile well over FILE_LIMIT: 2000 profiled lines, 36 bytes each at least.
    body = "".join(f"    x{j} = i + {j}\n" for j in range(2000))
    write(tmp_path / "big.py", f"@profile\ndef f(i):\n{body}\nf(0)\nprint('ran')\n")
    old = os.urandom(1000)  # what an earlier run left at the path
    (tmp_path / "big.py.lprof").write_bytes(old)
    proc = kernprof("-l", "big.py", cwd=tmp_path, preexec_fn=_limit_file_size)
    assert_one_line(proc, 1, "kernprof: error: could not write profile to 'big.py.lprof': "
                             "File too large")
    assert proc.stdout == "ran\n"
    assert (tmp_path / "big.py.lprof").read_bytes() == old  # intact, byte for byte
    assert temporary_files(tmp_path) == []
    # Without the limit the same run writes it: the limit was what failed.
    proc = kernprof("-l", "-q", "big.py", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert os.path.getsize(tmp_path / "big.py.lprof") > FILE_LIMIT


# -- flags ------------------------------------------------------------------------------------------

BAD_UNITS = ["0", "-1", "abc", "nan", "inf", ""]


@pytest.mark.parametrize("unit", BAD_UNITS)
def test_kernprof_bad_unit(tmp_path, unit):
    write(tmp_path / "app.py", "print('ran')\n")
    proc = kernprof("-l", "-v", "-u", unit, "app.py", cwd=tmp_path)
    assert_one_line(proc, 2, "kernprof: error: argument -u/--unit: must be a positive number "
                             f"of seconds, got {unit!r}")
    assert proc.stdout == ""


@pytest.mark.parametrize("args, line", [
    *[(["-l", "-i", x], "kernprof: error: argument -i/--output-interval: must be a positive "
                        f"number of seconds, got {x!r}") for x in ("0", "-1", "nan", "inf")],
    *[(["-l", "-i", x], "kernprof: error: interval must be between 0.001 and 86400 seconds")
      for x in ("0.0001", "1e6")],
    (["-i", "2"], "kernprof: error: -i/--output-interval and --live need -l/--line-by-line"),
])
def test_kernprof_bad_output_interval(tmp_path, args, line):
    write(tmp_path / "app.py", "print('ran')\n")
    proc = kernprof(*args, "app.py", cwd=tmp_path)
    assert_one_line(proc, 2, line)
    assert proc.stdout == ""


@pytest.mark.parametrize("args, line", [
    *[(["-u", u], "lineprof: error: argument -u/--unit: must be a positive number of "
                  f"seconds, got {u!r}") for u in BAD_UNITS],
    (["--top", "0"], "lineprof: error: argument --top: must be a whole number of at least 1, "
                     "got '0'"),
    (["--top", "2.5"], "lineprof: error: argument --top: must be a whole number of at least "
                       "1, got '2.5'"),
    (["--slow", "-1"], "lineprof: error: argument --slow: must be a number of milliseconds, "
                       "0 or more, got '-1'"),
    (["--slow", "nan"], "lineprof: error: argument --slow: must be a number of milliseconds, "
                        "0 or more, got 'nan'"),
])
def test_lineprof_bad_numeric_flag(tmp_path, args, line):
    proc = lineprof_cli(*args, "whatever.lprof", cwd=tmp_path)
    assert_one_line(proc, 2, line)
    assert proc.stdout == ""


# -- profile files given to python -m lineprof ----------------------------------------------------

@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """The bytes of a real profile written by kernprof -l (functions, lines and a task)."""
    if importlib.util.find_spec("lineprof._lineprof") is None:
        pytest.skip("the C extension is not built")
    folder = tmp_path_factory.mktemp("good")
    write(folder / "app.py", """\
        import asyncio
        @profile
        def work(n):
            return sum(range(n))
        @profile
        async def main():
            await asyncio.sleep(0)
            return work(10)
        asyncio.run(main())
    """)
    proc = kernprof("-l", "-q", "app.py", cwd=folder)
    assert proc.returncode == 0, proc.stderr
    return (folder / "app.py.lprof").read_bytes()


HEADER = 32


def with_payload(data, payload):
    """Return ``data`` with ``payload`` and a header (length, CRC) that matches it."""
    header = bytearray(data[:HEADER])
    struct.pack_into("<Q", header, 16, len(payload))
    struct.pack_into("<I", header, 24, zlib.crc32(payload))
    return bytes(header) + payload


def flip(data, offset):
    return data[:offset] + bytes([data[offset] ^ 0x01]) + data[offset + 1:]


def check_file(tmp_path, data, message, name="bad.lprof"):
    """Write ``data`` to ``name``, run python -m lineprof on it, expect ``lineprof: <message>``."""
    (tmp_path / name).write_bytes(data)
    proc = lineprof_cli(name, cwd=tmp_path)
    assert_one_line(proc, 1, "lineprof: " + message.format(name))
    assert proc.stdout == ""


def test_profile_missing(tmp_path):
    proc = lineprof_cli("nope.lprof", cwd=tmp_path)
    assert_one_line(proc, 1, "lineprof: nope.lprof: no such file")


def test_profile_is_a_directory(tmp_path):
    (tmp_path / "d.lprof").mkdir()
    proc = lineprof_cli("d.lprof", cwd=tmp_path)
    assert_one_line(proc, 1, "lineprof: d.lprof: is a directory, not a profile file")


def test_profile_empty(tmp_path):
    check_file(tmp_path, b"", "{}: empty file, not a lineprof profile")


def test_profile_unreadable(tmp_path, good, deny):
    (tmp_path / "secret.lprof").write_bytes(good)
    (tmp_path / "secret.lprof").chmod(0)
    proc = lineprof_cli("secret.lprof", cwd=tmp_path, preexec_fn=deny)
    assert_one_line(proc, 1, "lineprof: secret.lprof: Permission denied")


@pytest.mark.parametrize("keep", [1, 10, HEADER - 1, HEADER, HEADER + 5, -1])
def test_profile_truncated(tmp_path, good, keep):
    check_file(tmp_path, good[:keep], "{}: profile is truncated")


def test_profile_random_bytes(tmp_path):
    check_file(tmp_path, os.urandom(4096), "{}: not a lineprof profile (bad magic)")


def test_profile_text(tmp_path):
    check_file(tmp_path, b'{"format": "lineprof", "version": 1}\n',
               "{}: not a lineprof profile (bad magic)")


@pytest.mark.parametrize("where, message", [
    (0, "{}: not a lineprof profile (bad magic)"),
    (7, "{}: not a lineprof profile (bad magic)"),
    (12, "{}: profile is malformed"),  # header size
    (24, "{}: profile is damaged (checksum mismatch)"),  # the CRC itself
    ("payload", "{}: profile is damaged (checksum mismatch)"),
    ("last", "{}: profile is damaged (checksum mismatch)"),
])
def test_profile_flipped_byte(tmp_path, good, where, message):
    offset = {"payload": (HEADER + len(good)) // 2, "last": len(good) - 1}.get(where, where)
    check_file(tmp_path, flip(good, offset), message)


@needs_extension
def test_profile_every_flipped_byte_is_caught(tmp_path, good):
    # In-process sweep of the row above: each byte flipped in turn.  Only the
    # flags field (bytes 28-31, "ignored by readers of version 1",
    # docs/format.md) may change without the file being refused.
    from lineprof import load_stats
    from lineprof.errors import LineprofError

    path = tmp_path / "flip.lprof"
    accepted = []
    for offset in range(len(good)):
        path.write_bytes(flip(good, offset))
        try:
            load_stats(path)
        except LineprofError as exc:
            assert str(exc).startswith(f"{path}: ") and "\n" not in str(exc)
        else:
            accepted.append(offset)
    assert accepted == [28, 29, 30, 31]


def test_profile_newer_format_version(tmp_path, good):
    data = good[:8] + struct.pack("<I", 2) + good[12:]
    check_file(tmp_path, data,
               "{}: profile was written by a newer lineprof (format version too new)")


def test_profile_malformed_with_a_valid_checksum(tmp_path, good):
    # The first section's length grows by one: the checksum matches, the sections do not.
    payload = bytearray(good[HEADER:])
    (length,) = struct.unpack_from("<Q", payload, 4)
    struct.pack_into("<Q", payload, 4, length + 1)
    check_file(tmp_path, with_payload(good, bytes(payload)), "{}: profile is malformed")


def test_profile_name_not_utf8(tmp_path, good):
    # A function name that is not UTF-8, checksum fixed up: only the names are wrong.
    payload = good[HEADER:]
    at = payload.index(b"work")
    payload = payload[:at] + b"\xffork" + payload[at + 4:]
    # The C reader checks every string (docs/format.md: UTF-8).
    check_file(tmp_path, with_payload(good, payload), "{}: profile is malformed")


def _line_profiler_pickle(monkeypatch):
    """Return a pickle like line_profiler's ``.lprof``: a ``line_profiler.line_profiler.LineStats``."""
    package = types.ModuleType("line_profiler")
    module = types.ModuleType("line_profiler.line_profiler")

    class LineStats:
        def __init__(self, timings, unit):
            self.timings, self.unit = timings, unit

    LineStats.__module__, LineStats.__qualname__ = module.__name__, "LineStats"
    module.LineStats = LineStats
    package.line_profiler = module
    monkeypatch.setitem(sys.modules, "line_profiler", package)
    monkeypatch.setitem(sys.modules, "line_profiler.line_profiler", module)
    stats = LineStats({("app.py", 1, "f"): [(2, 1, 1000)]}, 1e-6)
    return pickle.dumps(stats, protocol=pickle.HIGHEST_PROTOCOL)


@pytest.mark.parametrize("kind", ["LineStats", "dict"])
def test_profile_line_profiler_pickle(tmp_path, monkeypatch, kind):
    if kind == "LineStats":
        data = _line_profiler_pickle(monkeypatch)
    else:  # what a user's script might have pickled itself
        data = pickle.dumps({"timings": {}, "unit": 1e-6}, protocol=4)
    check_file(tmp_path, data, "{0} is a line_profiler pickle, not a lineprof profile; "
                               "view it with: python -m line_profiler {0}",
               name="app.py.lprof")


def test_profile_other_pickle(tmp_path):
    check_file(tmp_path, pickle.dumps([1, 2, 3], protocol=pickle.HIGHEST_PROTOCOL),
               "{} is a Python pickle, not a lineprof profile")


def test_profile_one_bad_among_good(tmp_path, good):
    (tmp_path / "good.lprof").write_bytes(good)
    proc = lineprof_cli("good.lprof", "nope.lprof", cwd=tmp_path)
    assert_one_line(proc, 1, "lineprof: nope.lprof: no such file")
    assert proc.stdout == ""  # nothing shown from the good one either
