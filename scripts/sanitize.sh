#!/usr/bin/env bash
# Runs the pytest suite against an ASan+UBSan build of the C extension, with
# the sanitizer runtimes preloaded into an ordinary (uninstrumented) CPython.
#
# Usage: scripts/sanitize.sh [--quick] [3.X ...]
#        LINEPROF_PYTHONS="3.11 3.13" scripts/sanitize.sh
#   3.X ...   Pythons to test (default: $LINEPROF_PYTHONS, else 3.12)
#   --quick   a subset that takes about 3 minutes per Python (for CI)
#   --        everything after it is passed to pytest
#
# For each Python, the extension is built with
#   -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
# from a copy of the working tree (so the normal builds' objects in build/
# and the editable .so files in lineprof/ are never touched) and installed,
# non-editable, into its own venv .venv/asan-3.X. pytest then runs from a
# scratch directory holding copies of tests/, examples/ and docs/ only, so
# the source tree's lineprof/ cannot shadow the installed one (checked).
# Exits non-zero if a build fails, if the sanitized extension is not the one
# imported, or if any test fails (a sanitizer report aborts the process).
# See docs/sanitizers.md.
set -uo pipefail
source "$(dirname "$0")/common.sh"

quick=0
versions=()
pytest_extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    --) shift; pytest_extra=("$@"); break ;;
    3.*) versions+=("$1") ;;
    *) echo "sanitize: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
if [ ${#versions[@]} -eq 0 ]; then
  read -r -a versions <<< "${LINEPROF_PYTHONS:-3.12}"
fi

SAN_FLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
LIBASAN="$(gcc -print-file-name=libasan.so)"
LIBUBSAN="$(gcc -print-file-name=libubsan.so)"
for lib in "$LIBASAN" "$LIBUBSAN"; do
  case "$lib" in
    /*) [ -e "$lib" ] && continue ;;
  esac
  echo "sanitize: gcc has no $lib (Debian: apt-get install libasan8 libubsan1)" >&2
  exit 1
done

# The quick subset: the stress suite, the truth suites of the hook, and the
# task bookkeeping; the slow subprocess suites (kernprof, signals, mayhem,
# task memory) are left out.
QUICK_TESTS=(tests/test_stress.py tests/test_edge.py tests/test_async.py
             tests/test_threads.py tests/test_hits.py tests/test_timing.py
             tests/test_tasks.py tests/test_api_truth.py tests/test_live.py
             tests/test_oom.py)

scratch="$(mktemp -d "${TMPDIR:-/tmp}/lineprof-sanitize.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT

# A copy of the working tree to build from: sources and packaging only.
src="$scratch/src"
mkdir -p "$src"
(cd "$ROOT" && tar cf - --exclude='*.so' --exclude='__pycache__' \
   setup.py pyproject.toml README.md csrc lineprof kernprof) | tar xf - -C "$src"
# What pytest runs from: no lineprof/ or kernprof/ package next to tests/.
run="$scratch/run"
mkdir -p "$run"
(cd "$ROOT" && tar cf - --exclude='__pycache__' tests examples docs) | tar xf - -C "$run"

failed=()
ran=0
for v in "${versions[@]}"; do
  py="$(find_python "$v")"
  if [ -z "$py" ]; then
    echo "== MISSING: Python $v is not installed on this machine"
    failed+=("missing-$v")
    continue
  fi
  venv="$ROOT/.venv/asan-$v"
  echo "== Python $v: building the ASan+UBSan extension into $venv"
  if [ ! -x "$venv/bin/python" ]; then
    "$py" -m venv "$venv" || { failed+=("venv-$v"); continue; }
  fi
  if ! "$venv/bin/python" -m pip install -q --disable-pip-version-check \
       -r "$ROOT/requirements-test.txt"; then
    failed+=("deps-$v"); continue
  fi
  rm -rf "$src/build" "$src"/*.egg-info
  if ! CFLAGS="$SAN_FLAGS" LDFLAGS="$SAN_FLAGS" \
       "$venv/bin/python" -m pip install -q --disable-pip-version-check \
       --no-build-isolation --force-reinstall --no-deps "$src"; then
    failed+=("build-$v"); continue
  fi

  export LD_PRELOAD="$LIBASAN $LIBUBSAN"
  export PYTHONMALLOC=malloc
  export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=0:exitcode=86"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
  # The sanitized .so must be the one imported, and really instrumented.
  where="$(cd "$run" && "$venv/bin/python" -c '
import lineprof._lineprof as m, sys
print(m.__file__)' 2>&1)"
  unset LD_PRELOAD
  case "$where" in
    "$venv"/*) ;;
    *) echo "sanitize: the installed extension is not the one imported: $where" >&2
       failed+=("import-$v"); continue ;;
  esac
  syms="$(nm -D "$where" 2>/dev/null)"
  if ! grep -q '__asan_init' <<< "$syms"; then
    echo "sanitize: $where has no ASan instrumentation" >&2
    failed+=("instrument-$v"); continue
  fi

  if [ "$quick" = 1 ]; then tests=("${QUICK_TESTS[@]}"); else tests=(tests); fi
  # Resident memory means nothing under ASan (shadow memory, quarantine).
  tests+=(--deselect tests/test_task_memory.py::test_memory_is_bounded_for_many_tasks)
  echo "== Python $v: pytest ${tests[*]} under ASan+UBSan ($where)"
  start=$SECONDS
  if (cd "$run" &&
      LD_PRELOAD="$LIBASAN $LIBUBSAN" PYTHONDONTWRITEBYTECODE=1 \
      nice -n 10 "$venv/bin/python" -m pytest -q -p no:cacheprovider \
        --rootdir "$run" "${tests[@]}" "${pytest_extra[@]}"); then :; else
    failed+=("pytest-$v")
  fi
  echo "== Python $v: $((SECONDS - start)) s"
  ran=$((ran + 1))
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "sanitize: FAILED: ${failed[*]}"
  exit 1
fi
[ "$ran" -gt 0 ] || { echo "sanitize: nothing ran" >&2; exit 1; }
echo "sanitize: all sanitized runs passed"
