"""Where the instructions of one extra unit of work go, by function.

Usage: python bench/cgdiff.py SMALL LARGE [--units K] [--top N]

SMALL and LARGE are callgrind profiles of the same work done N and 2N times.
bench/run.py keeps them in bench/build/callgrind/3.X/ as
WORKLOAD-PROFILER.out.1 (N) and WORKLOAD-PROFILER.out.2 (2N). The difference
per function, divided by K (the line events, iterations or tasks added), is
what each function costs per unit: self cost (exclusive), as
callgrind_annotate reports it. Needs callgrind_annotate (valgrind).

Example, lineprof's cost per line event of the line-dense loop (N = 5,000
iterations of 5 line events, so K = 25,000):
    python bench/cgdiff.py bench/build/callgrind/3.12/line-lineprof.out.{1,2} \
        --units 25000
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys

ROW = re.compile(r"^\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(\S.*?)\s*$")


def self_costs(path: str) -> dict:
    """Return {function: instructions} from callgrind_annotate for path."""
    out = subprocess.run(["callgrind_annotate", "--auto=no", "--threshold=100", path],
                         capture_output=True, text=True, check=True).stdout
    costs = {}
    for line in out.splitlines():
        m = ROW.match(line)
        if not m or "PROGRAM TOTALS" in line:
            continue
        name = m.group(2)
        # "/long/build/path/Objects/file.c:func [lib]" -> "file.c:func [lib]"
        name = re.sub(r"^\S*/", "", name.split(" [")[0]) + (
            " [" + name.split(" [")[1].rsplit("/", 1)[-1] if " [" in name else "")
        costs[name] = costs.get(name, 0) + int(m.group(1).replace(",", ""))
    return costs


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("small")
    ap.add_argument("large")
    ap.add_argument("--units", type=float, default=1.0,
                    help="units of work LARGE runs beyond SMALL (divides the result)")
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args(argv)
    a, b = self_costs(args.small), self_costs(args.large)
    diff = {k: (b.get(k, 0) - a.get(k, 0)) / args.units for k in set(a) | set(b)}
    total = sum(diff.values())
    print(f"{total:10.1f}  total per unit")
    for name, v in sorted(diff.items(), key=lambda kv: -abs(kv[1]))[:args.top]:
        print(f"{v:10.1f}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
