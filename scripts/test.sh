#!/usr/bin/env bash
# Runs every test: sets up what is missing (scripts/setup.sh), then the C
# core's cmocka tests through CTest (plain, ASan+UBSan, TSan), each fuzz
# target for a minute, pytest on each claimed Python (3.8-3.13; a missing
# one fails the run), and the quick pytest
# subset against an ASan+UBSan build on 3.11 and 3.13.
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

# The core again under the sanitizers: ASan+UBSan, then ThreadSanitizer
# (the worker, the snapshot's concurrency test). See docs/sanitizers.md.
for san in address,undefined thread; do
  dir="build/ctest-${san%%,*}"
  echo "== C core under -fsanitize=$san: cmocka through CTest"
  if cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Debug -DLINEPROF_SANITIZE="$san" >/dev/null &&
     cmake --build "$dir" -j2 >/dev/null &&
     ctest --test-dir "$dir" --output-on-failure; then :; else
    failed+=("ctest-$san")
  fi
done

# Each libFuzzer target briefly (docs/fuzzing.md has the long runs).
echo "== fuzzing: each target for ${LINEPROF_FUZZ_TIME:-60} s"
if "$ROOT/scripts/fuzz.sh" --time "${LINEPROF_FUZZ_TIME:-60}"; then :; else
  failed+=("fuzz")
fi

ran=0
for v in $PYTHONS; do
  venv="$(venv_of "$v")"
  if [ ! -x "$venv/bin/python" ]; then
    echo "== MISSING: Python $v is not installed on this machine; its tests did not run"
    failed+=("MISSING: Python $v")
    continue
  fi
  echo "== pytest on Python $v ($("$venv/bin/python" -c 'import lineprof._lineprof as m; print(m.BACKEND)') backend)"
  if "$venv/bin/python" -m pytest -q -p no:cacheprovider tests; then :; else
    failed+=("pytest-$v")
  fi
  ran=$((ran + 1))
done

# pytest against an ASan+UBSan build of the extension: the quick subset,
# on the legacy hook and on sys.monitoring.
san_pythons=""
for v in ${LINEPROF_SANITIZE_PYTHONS:-3.11 3.13}; do
  case " $PYTHONS " in *" $v "*) san_pythons="$san_pythons $v" ;; esac
done
if [ -n "$san_pythons" ]; then
  echo "== pytest under ASan+UBSan (quick subset) on:$san_pythons"
  # shellcheck disable=SC2086
  if "$ROOT/scripts/sanitize.sh" --quick $san_pythons; then :; else
    failed+=("sanitize")
  fi
fi

if [ "$ran" -eq 0 ]; then
  echo "test: no Python ran the tests" >&2
  exit 1
fi
if [ ${#failed[@]} -gt 0 ]; then
  echo "test: FAILED: ${failed[*]}"
  exit 1
fi
echo "test: all suites passed"
