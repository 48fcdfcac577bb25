#!/usr/bin/env bash
# Runs lineprof's benchmark suite on 3.11 3.12 3.13 (the versions the
# performance targets are set for), or those of LINEPROF_PYTHONS; then the
# live view's flood bench (bench/flood.py) on the same Pythons' venvs.
# Usage: bench/run.sh [--quick] [--no-callgrind] [--refresh]
#        LINEPROF_PYTHONS=3.12 bench/run.sh --quick
# Extra arguments go to bench/run.py; a --python among them replaces the list.
# The report lands in bench/build/results.md (the page docs/performance.md
# shows) and the raw numbers in bench/build/results.json.
set -euo pipefail
source "$(dirname "$0")/../scripts/common.sh"
PYTHONS="${LINEPROF_PYTHONS:-3.11 3.12 3.13}"

args=()
case " $* " in
  *" --python "* | *" --python="*) ;;
  *) for v in $PYTHONS; do args+=(--python "$v"); done ;;
esac

# The orchestrator needs only the standard library: any Python 3.8+ will do.
host="$(command -v python3 || true)"
if [ -z "$host" ]; then
  for v in $PYTHONS; do
    host="$(find_python "$v")"
    [ -n "$host" ] && break
  done
fi
[ -n "$host" ] || { echo "bench: no Python found to run bench/run.py" >&2; exit 1; }
status=0
"$host" "$ROOT/bench/run.py" "${args[@]}" "$@" || status=1

# The flood bench: a profiled program's rate with the live view flooded.
flood=()
for v in $PYTHONS; do
  venv="$(venv_of "$v")"
  [ -x "$venv/bin/python" ] && flood+=(--python "$venv/bin/python")
done
if [ ${#flood[@]} -gt 0 ]; then
  mkdir -p "$ROOT/bench/build"
  echo "== bench/flood.py (results in bench/build/flood.md)"
  "$host" "$ROOT/bench/flood.py" "${flood[@]}" --json "$ROOT/bench/build/flood.json" \
    | tee "$ROOT/bench/build/flood.md" || status=1
fi
exit "$status"
