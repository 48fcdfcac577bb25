#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz/ with clang (ASan + UBSan) and
# runs each for a while, starting from its seed corpus. See docs/fuzzing.md.
#
# Usage: scripts/fuzz.sh [--time SECONDS] [--build-only] [TARGET ...]
#   --time N      fuzz EACH target for N seconds (default 60); the targets
#                 run one after the other, so a run of all three takes
#                 3 x N seconds plus the build
#   --build-only  build, replay the saved inputs of tests/fuzz/crashes/, stop
#   TARGET ...    fuzz_file, fuzz_engine, fuzz_proto (default: all three)
#
# The build goes to build/fuzz (LINEPROF_FUZZ_BUILD overrides it). New
# corpus entries go to build/fuzz/corpus-TARGET, never into the repository;
# crash inputs to build/fuzz/artifacts-TARGET/, and each run's log to
# build/fuzz/TARGET.log. Installs clang, libFuzzer's runtime, cmake,
# pkg-config and libuv1-dev with apt-get if they are missing. Each target
# runs as one process (one core) at nice 10.
# Exits 0 if every target ran clean; 1 if a target found a crash, leak,
# timeout or out-of-memory (its input's path is printed); 2 if the tools
# could not be installed or the build failed.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${LINEPROF_FUZZ_BUILD:-$ROOT/build/fuzz}"
SEEDS="$ROOT/tests/fuzz/corpus"
CRASHES="$ROOT/tests/fuzz/crashes"
ALL_TARGETS=(fuzz_file fuzz_engine fuzz_proto)

time_s=60
build_only=0
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --time) time_s="${2:?--time needs a number of seconds}"; shift ;;
    --time=*) time_s="${1#--time=}" ;;
    --build-only) build_only=1 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    fuzz_*) targets+=("$1") ;;
    *) echo "fuzz: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[ ${#targets[@]} -gt 0 ] || targets=("${ALL_TARGETS[@]}")
case "$time_s" in ''|*[!0-9]*) echo "fuzz: --time wants whole seconds" >&2; exit 2 ;; esac

# Per-target input size limit: a profile with a few functions and tasks
# fits in 12 KiB (the largest seed is 10 KB); an engine program reads one
# or a few bytes per call, so 2 KiB is about a thousand calls; 1 KiB of
# protocol stream fills the 256-byte request buffer four times over.
max_len_of() {
  case "$1" in
    fuzz_file) echo 12288 ;;
    fuzz_proto) echo 1024 ;;
    *) echo 2048 ;;
  esac
}

SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
apt_updated=0
apt_install() {
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "fuzz: cannot install $* (no apt-get): install them by hand" >&2
    return 1
  fi
  echo "fuzz: installing $*"
  if [ "$apt_updated" = 0 ]; then
    $SUDO apt-get update -qq || return 1
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

# Returns 0 if clang can link a libFuzzer target with ASan and UBSan.
probe_fuzzer() {
  mkdir -p "$BUILD" || return 1
  printf '%s\n' '#include <stddef.h>' '#include <stdint.h>' \
    'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }' \
    > "$BUILD/probe.c"
  clang -fsanitize=fuzzer,address,undefined "$BUILD/probe.c" \
    -o "$BUILD/probe" >/dev/null 2>&1
}

ensure_tools() {
  local need=() pkg major
  for pkg in cmake pkg-config libuv1-dev; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
  done
  command -v clang >/dev/null 2>&1 || need+=(clang)
  if [ ${#need[@]} -gt 0 ]; then
    apt_install "${need[@]}" || {
      echo "fuzz: could not install ${need[*]}; the fuzzers need clang" \
           "(Debian: apt-get install clang libclang-rt-<version>-dev)" >&2
      return 1
    }
  fi
  if ! probe_fuzzer; then
    # libFuzzer's runtime lives in a package of its own, named after
    # clang's major version (libclang-rt-14-dev on Debian 12).
    major="$(clang -dumpversion | cut -d. -f1)"
    apt_install "libclang-rt-$major-dev" ||
      apt_install "libfuzzer-$major-dev" || true
    if ! probe_fuzzer; then
      echo "fuzz: clang $major cannot link -fsanitize=fuzzer: install" \
           "libclang-rt-$major-dev (or libfuzzer-$major-dev)" >&2
      return 1
    fi
  fi
}

ensure_tools || exit 2

echo "fuzz: building into $BUILD"
CC=clang cmake -S "$ROOT" -B "$BUILD" -DLINEPROF_FUZZ=ON -DLINEPROF_TESTS=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$BUILD/configure.log" 2>&1 || {
  cat "$BUILD/configure.log" >&2
  echo "fuzz: cmake configure failed" >&2
  exit 2
}
cmake --build "$BUILD" -j2 --target "${targets[@]}" >"$BUILD/build.log" 2>&1 || {
  cat "$BUILD/build.log" >&2
  echo "fuzz: build failed" >&2
  exit 2
}

status=0
for t in "${targets[@]}"; do
  bin="$BUILD/tests/fuzz/$t"
  [ -x "$bin" ] || { echo "fuzz: no target $t" >&2; exit 2; }

  # Inputs that once found something: they must run clean now.
  saved=()
  for f in "$CRASHES/$t"-*; do
    [ -f "$f" ] && saved+=("$f")
  done
  if [ ${#saved[@]} -gt 0 ]; then
    if ! "$bin" -rss_limit_mb=2048 "${saved[@]}" >"$BUILD/$t-replay.log" 2>&1; then
      tail -n 40 "$BUILD/$t-replay.log"
      echo "fuzz: $t: a saved input of tests/fuzz/crashes/ fails again" \
           "(log: $BUILD/$t-replay.log)"
      status=1
      continue
    fi
    echo "fuzz: $t: ${#saved[@]} saved input(s) of tests/fuzz/crashes/ run clean"
  fi
  [ "$build_only" = 1 ] && continue

  corpus="$BUILD/corpus-$t"
  artifacts="$BUILD/artifacts-$t"
  log="$BUILD/$t.log"
  mkdir -p "$corpus" "$artifacts"
  echo "fuzz: $t for ${time_s}s (corpus $corpus, log $log)"
  nice -n 10 "$bin" \
    -max_total_time="$time_s" -max_len="$(max_len_of "$t")" \
    -timeout=25 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$artifacts/" \
    "$corpus" "$SEEDS/$t" >"$log" 2>&1
  rc=$?
  grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1
  grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "$log"
  if [ "$rc" -ne 0 ]; then
    grep -E 'ERROR|SUMMARY|^==[0-9]+==' "$log" | head -n 20
    input="$(grep -oE 'Test unit written to .*' "$log" | tail -n 1 | sed 's/Test unit written to //')"
    echo "fuzz: $t FAILED (exit $rc); crash input: ${input:-see $log}"
    status=1
  else
    echo "fuzz: $t ran clean; corpus: $(find "$corpus" -type f | wc -l) inputs"
  fi
done
exit "$status"
