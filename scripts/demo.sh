#!/usr/bin/env bash
# The main job on a fresh machine: installs what is missing, builds and
# installs lineprof with `pip install .` into .venv/demo, then profiles the
# bundled examples with `kernprof -l -v` and reads a profile back.
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ROOT"

LINEPROF_PYTHONS="${LINEPROF_DEMO_PYTHON:-3.12}" "$ROOT/scripts/setup.sh" >/dev/null
py="$(find_python "${LINEPROF_DEMO_PYTHON:-3.12}")"
venv="$ROOT/.venv/demo"
[ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check "$ROOT"

out="$(mktemp -d)"
cd "$out"
"$venv/bin/kernprof" -l -v "$ROOT/examples/sync_example.py"
"$venv/bin/kernprof" -l -v "$ROOT/examples/async_example.py"
echo
echo "== timeout -s INT 3s kernprof -l examples/mayhem.py; python -m lineprof -t --top 5 mayhem.py.lprof"
timeout -s INT 3s "$venv/bin/kernprof" -l "$ROOT/examples/mayhem.py" >/dev/null 2>&1 || true
"$venv/bin/python" -m lineprof -t --top 5 mayhem.py.lprof | tail -40
echo
echo "== python -m lineprof async_example.py.lprof --json | head"
"$venv/bin/python" -m lineprof --json async_example.py.lprof | head -c 600
echo
echo "(profiles left in $out)"
