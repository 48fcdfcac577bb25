#!/usr/bin/env bash
# The main job on a fresh machine: installs what is missing, builds and
# installs lineprof with `pip install .` into .venv/demo, then profiles the
# bundled examples with `kernprof -l -v`, watches a stuck service with the
# live view, and reads a profile back.
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
echo "== timeout -s INT 3s kernprof -l examples/mayhem.py; python -m lineprof --tasks --top 5 mayhem.py.lprof"
timeout -s INT 3s "$venv/bin/kernprof" -l "$ROOT/examples/mayhem.py" >/dev/null 2>&1 || true
"$venv/bin/python" -m lineprof --tasks --top 5 mayhem.py.lprof | tail -40
echo
echo "== kernprof -l -i 0.5 --live unix:SOCK examples/stuck.py; python -m lineprof top --once unix:SOCK (while its loop is blocked)"
sock="$out/stuck.sock"
"$venv/bin/kernprof" -l -i 0.5 --live "unix:$sock" "$ROOT/examples/stuck.py" 4 >"$out/stuck.out" 2>&1 &
pid=$!
for _ in $(seq 100); do grep -q blocking "$out/stuck.out" 2>/dev/null && break; sleep 0.1; done
sleep 0.5
COLUMNS=110 "$venv/bin/python" -m lineprof top --once "unix:$sock" || true
wait "$pid" || true
echo
echo "== python -m lineprof async_example.py.lprof --json | head"
"$venv/bin/python" -m lineprof --json async_example.py.lprof | head -c 600
echo
echo "(profiles left in $out)"
