"""The clock: the TSC where the kernel keeps CLOCK_MONOTONIC on it, else
clock_gettime (csrc/core/lp_clock.h). LINEPROF_TSC=0 forces clock_gettime,
which on 3.12+ also registers the general LINE callback instead of the fast
one: the hit and timing truth tests must pass that way too."""

import os
import platform
import subprocess
import sys
from pathlib import Path

import lineprof._lineprof as _lp

HERE = Path(__file__).resolve().parent


def kernel_uses_invariant_tsc() -> bool:
    try:
        source = Path("/sys/devices/system/clocksource/clocksource0/"
                      "current_clocksource").read_text().strip()
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return (platform.machine() == "x86_64" and source == "tsc"
            and "constant_tsc" in flags and "nonstop_tsc" in flags)


def test_clock_is_the_tsc_where_the_kernel_trusts_it():
    expected = "tsc" if kernel_uses_invariant_tsc() else "monotonic"
    if os.environ.get("LINEPROF_TSC") == "0":
        expected = "monotonic"
    assert _lp.clock() == expected


def test_hits_and_times_without_the_tsc():
    env = dict(os.environ, LINEPROF_TSC="0")
    probe = subprocess.run([sys.executable, "-c",
                            "import lineprof._lineprof as m; print(m.clock())"],
                           env=env, capture_output=True, text=True, timeout=60)
    assert probe.stdout.strip() == "monotonic", probe.stderr
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          str(HERE / "test_hits.py"), str(HERE / "test_timing.py"),
                          str(HERE / "test_async.py")],
                         env=env, capture_output=True, text=True, timeout=600, cwd=HERE)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
