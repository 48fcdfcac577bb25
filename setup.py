"""Build lineprof: the lineprof and kernprof packages and the C extension.

The C sources come from csrc/sources.txt, the list CMakeLists.txt reads too.
libuv is found with pkg-config.
"""
import os
import re
import shlex
import subprocess
import sys

from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "lineprof", "_version.py")) as _f:
    VERSION = re.search(r'__version__ = "([^"]+)"', _f.read()).group(1)


def c_sources():
    with open(os.path.join(HERE, "csrc", "sources.txt")) as f:
        return [ln.strip() for ln in f if ln.strip() and not ln.startswith("#")]


def pkg_config(pkg):
    try:
        out = subprocess.run(["pkg-config", "--cflags", "--libs", pkg],
                             check=True, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        sys.exit(f"lineprof: cannot find {pkg} with pkg-config. Install the "
                 f"system package first (Debian: apt-get install libuv1-dev "
                 f"pkg-config), or run scripts/setup.sh.")
    flags = shlex.split(out)
    return {
        "include_dirs": [f[2:] for f in flags if f.startswith("-I")],
        "library_dirs": [f[2:] for f in flags if f.startswith("-L")],
        "libraries": [f[2:] for f in flags if f.startswith("-l")],
    }


uv = pkg_config("libuv")
ext = Extension(
    "lineprof._lineprof",
    sources=c_sources(),
    include_dirs=["csrc/core", "csrc/ext"] + uv["include_dirs"],
    library_dirs=uv["library_dirs"],
    libraries=uv["libraries"],
    define_macros=[("_GNU_SOURCE", None), ("LINEPROF_VERSION", f'"{VERSION}"')],
    extra_compile_args=["-std=c11", "-O2", "-fvisibility=hidden", "-Wall",
                        "-Wextra", "-Wno-unused-parameter",
                        "-Wno-missing-field-initializers",
                        "-Werror=implicit-function-declaration"],
)

setup(
    name="lineprof",
    version=VERSION,
    description="An asyncio-aware line-level profiler with a C core",
    packages=["lineprof", "kernprof"],
    package_data={"lineprof": ["rc/lineprof.toml"]},
    ext_modules=[ext],
    python_requires=">=3.8",
    # TOML configuration files: tomllib is in the standard library from 3.11.
    install_requires=['tomli>=1.1; python_version < "3.11"'],
    extras_require={"rich": ["rich"], "test": ["pytest"]},
    entry_points={"console_scripts": ["kernprof = kernprof:main"]},
)
