#!/usr/bin/env bash
# Runs lineprof's benchmark suite on every tested Python: 3.11 3.12 3.13, or
# those of LINEPROF_PYTHONS (as scripts/setup.sh and scripts/test.sh do).
# Usage: bench/run.sh [--quick] [--no-callgrind] [--refresh]
#        LINEPROF_PYTHONS=3.12 bench/run.sh --quick
# Extra arguments go to bench/run.py; a --python among them replaces the list.
# The report lands in bench/build/results.md (the page docs/performance.md
# shows) and the raw numbers in bench/build/results.json.
set -euo pipefail
source "$(dirname "$0")/../scripts/common.sh"

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
exec "$host" "$ROOT/bench/run.py" "${args[@]}" "$@"
