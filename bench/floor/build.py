"""Build the floor hook ``_lpfloor`` for the Python that runs this script.

Usage: python bench/floor/build.py OUT_DIR

Compiles bench/floor/lpfloor.c with gcc (or $CC) and this interpreter's
include directory and extension suffix from sysconfig, into OUT_DIR (a
git-ignored build directory). Does nothing if the module there is newer than
its source. Prints the module's path; exits non-zero if the compiler fails.
"""
from __future__ import annotations

import os
import subprocess
import sys
import sysconfig

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "lpfloor.c")
# The same optimisation as lineprof's extension (setup.py), so the two hooks
# are compiled alike.
CFLAGS = ["-std=c11", "-O2", "-fPIC", "-fvisibility=hidden", "-D_GNU_SOURCE",
          "-Wall", "-Wextra", "-Wno-unused-parameter",
          "-Wno-missing-field-initializers"]


def build(out_dir: str) -> str:
    """Build the module into out_dir if it is missing or stale; return its path."""
    os.makedirs(out_dir, exist_ok=True)
    target = os.path.join(out_dir, "_lpfloor" + sysconfig.get_config_var("EXT_SUFFIX"))
    if os.path.exists(target) and os.path.getmtime(target) >= os.path.getmtime(SOURCE):
        return target
    tmp = target + ".tmp"
    cmd = [os.environ.get("CC", "gcc"), *CFLAGS,
           "-I" + sysconfig.get_paths()["include"], "-shared", SOURCE, "-o", tmp]
    subprocess.run(cmd, check=True)
    os.replace(tmp, target)
    return target


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    try:
        print(build(sys.argv[1]))
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"floor: build failed: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
