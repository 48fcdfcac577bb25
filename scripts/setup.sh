#!/usr/bin/env bash
# Installs what lineprof needs on a fresh Debian machine, then builds and
# installs lineprof into one venv per tested Python (.venv/3.11, ...).
# Usage: scripts/setup.sh            (all tested Pythons)
#        LINEPROF_PYTHONS=3.12 scripts/setup.sh
set -euo pipefail
source "$(dirname "$0")/common.sh"

need=()
for pkg in libuv1-dev libcmocka-dev pkg-config cmake gcc; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

built=0
for v in $PYTHONS; do
  py="$(find_python "$v")"
  if [ -z "$py" ]; then
    echo "setup: MISSING: Python $v is not installed here (scripts/test.sh fails for it)"
    continue
  fi
  venv="$(venv_of "$v")"
  if [ ! -x "$venv/bin/python" ]; then
    "$py" -m venv "$venv"
  fi
  "$venv/bin/python" -m pip install -q --disable-pip-version-check \
    -r "$ROOT/requirements-test.txt"
  # line_profiler 5.1, the reference the report and the API are checked
  # against, in a folder of its own: it ships a `kernprof` module that would
  # shadow ours in the venv (tests/conftest.py: import_line_profiler).
  lp_dir="$ROOT/.venv/$v-line_profiler"
  # (It needs Python 3.10+; the tests that compare with it say so on 3.8/3.9.)
  # Its own dependencies (typing_extensions) go into the same folder.
  if [ ! -f "$lp_dir/typing_extensions.py" ] && "$venv/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
    rm -rf "$lp_dir"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check \
      --target "$lp_dir" "line_profiler==5.1.0"
  fi
  # Editable: each Python puts its own _lineprof.cpython-3XX*.so in lineprof/.
  "$venv/bin/python" -m pip install -q --disable-pip-version-check \
    --no-build-isolation -e "$ROOT"
  echo "setup: Python $v ready in $venv"
  built=$((built + 1))
done
[ "$built" -gt 0 ] || { echo "setup: no usable Python found" >&2; exit 1; }
