#!/usr/bin/env bash
# Runs every test: sets up what is missing (scripts/setup.sh), then the C
# core's cmocka tests through CTest, then pytest on each tested Python.
# Exits non-zero if any suite fails.
set -uo pipefail
source "$(dirname "$0")/common.sh"
cd "$ROOT"

"$ROOT/scripts/setup.sh" || { echo "test: setup failed" >&2; exit 1; }

failed=()
echo "== C core: cmocka through CTest"
if cmake -S . -B build/ctest -DCMAKE_BUILD_TYPE=Debug >/dev/null &&
   cmake --build build/ctest -j2 >/dev/null &&
   ctest --test-dir build/ctest --output-on-failure; then :; else
  failed+=("ctest")
fi

ran=0
for v in $PYTHONS; do
  venv="$(venv_of "$v")"
  if [ ! -x "$venv/bin/python" ]; then
    echo "== MISSING: Python $v is not installed on this machine; its tests did not run"
    continue
  fi
  echo "== pytest on Python $v ($("$venv/bin/python" -c 'import lineprof._lineprof as m; print(m.BACKEND)') backend)"
  if "$venv/bin/python" -m pytest -q -p no:cacheprovider tests; then :; else
    failed+=("pytest-$v")
  fi
  ran=$((ran + 1))
done

if [ "$ran" -eq 0 ]; then
  echo "test: no Python ran the tests" >&2
  exit 1
fi
if [ ${#failed[@]} -gt 0 ]; then
  echo "test: FAILED: ${failed[*]}"
  exit 1
fi
echo "test: all suites passed"
