"""The live view's cost to a profiled program under a flood of snapshot requests.

Usage:
    python bench/flood.py [--python PY ...] [--seconds 5] [--rounds 3]
                          [--connections 4] [--json FILE]
    python bench/flood.py target SECONDS ADDR      (one program; internal)
    python bench/flood.py flood SECONDS ADDR N     (one flooder; internal)

The program (``target``): the line-dense workload of bench/workloads.py,
profiled by lineprof (child.py's Lineprof session, the C hook through its
binding), with the native worker serving the live view on a unix socket.
After a warm-up it runs dense(2000) again and again for SECONDS and prints,
as JSON, how many calls it made per second and the worker's counters.

The flood (``flood``): another process with N connections, each sending
``LINEPROF/1 SNAPSHOT`` again as soon as its reply is read, for SECONDS
(loopback: a unix socket). It prints the requests answered.

The orchestrator runs ROUNDS pairs, a quiet program and a flooded one,
interleaved, each in fresh processes, and reports for each Python the
median rate of both, their ratio, the requests answered per second and the
snapshots the worker took of the program. The target (issue 16, item 7):
the flooded program keeps at least 90 % of its quiet rate. Nothing else
should run meanwhile: the machine's cores are shared by the program, the
worker thread and the flooder.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CALL_N = 2000       # iterations of dense() per call
KEEP = 0.90         # the flooded program keeps at least this much


def target(seconds: float, addr: str) -> dict:
    """Run the profiled workload for seconds with the live view at addr; return its rate."""
    sys.path.insert(0, HERE)
    import child
    import workloads
    session = child.Lineprof([workloads.dense])
    session.prof.start_worker(live=addr)
    workloads.dense(child.WARMUP_N["line"])
    session.start()
    print("ready", flush=True)
    sys.stdin.readline()  # "go": the flood, if any, is running
    calls = 0
    t0 = time.perf_counter()
    end = t0 + seconds
    while True:
        workloads.dense(CALL_N)
        calls += 1
        now = time.perf_counter()
        if now >= end:
            break
    session.stop()
    stats = session.prof.worker_stats()
    session.prof.stop_worker()
    return {"calls_per_s": calls / (now - t0), "seconds": now - t0,
            "served": stats["served"], "snapshots": stats["snapshots"]}


def flood(seconds: float, addr: str, connections: int) -> dict:
    """Request snapshots at addr on connections connections for seconds; return the count."""
    path = addr[len("unix:"):]
    counts = [0] * connections
    started = threading.Barrier(connections + 1)

    def one(i: int) -> None:
        s = socket.socket(socket.AF_UNIX)
        s.connect(path)
        f = s.makefile("rb")
        started.wait()
        end = time.perf_counter() + seconds
        try:
            while time.perf_counter() < end:
                s.sendall(b"LINEPROF/1 SNAPSHOT\n")
                head = f.readline().split()
                if head[:2] != [b"LINEPROF/1", b"OK"]:
                    break  # the program ended
                f.read(int(head[2]))
                counts[i] += 1
        except OSError:  # the program ended
            pass
        s.close()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(connections)]
    for t in threads:
        t.start()
    started.wait()
    print("flooding", flush=True)
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    return {"requests": sum(counts), "seconds": time.perf_counter() - t0}


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _expect(proc: subprocess.Popen, word: str) -> None:
    line = proc.stdout.readline().strip()
    if line != word:
        proc.kill()
        raise RuntimeError(f"expected {word!r}, got {line!r}: {proc.communicate()[1]}")


def one_round(py: str, seconds: float, flooded: bool, connections: int) -> dict:
    """Run one program, flooded or quiet; return its measurement (and the flood's)."""
    sockdir = tempfile.mkdtemp(prefix="lpflood", dir="/tmp")
    addr = f"unix:{sockdir}/s"
    me = os.path.abspath(__file__)
    prog = subprocess.Popen([py, me, "target", str(seconds), addr], env=_env(),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    flooder = None
    try:
        _expect(prog, "ready")
        if flooded:
            # A little longer than the program, so it is flooded throughout.
            flooder = subprocess.Popen([py, me, "flood", str(seconds + 0.5), addr,
                                        str(connections)], env=_env(),
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       text=True)
            _expect(flooder, "flooding")
        prog.stdin.write("go\n")
        prog.stdin.flush()
        out, err = prog.communicate(timeout=seconds + 60)
        if prog.returncode != 0:
            raise RuntimeError(f"target failed: {err}")
        res = json.loads(out)
        if flooder is not None:
            fout, ferr = flooder.communicate(timeout=60)
            if flooder.returncode != 0:
                raise RuntimeError(f"flood failed: {ferr}")
            res["flood"] = json.loads(fout.splitlines()[-1])
        return res
    finally:
        for p in (prog, flooder):
            if p is not None and p.poll() is None:
                p.kill()
                p.communicate()
        shutil.rmtree(sockdir, ignore_errors=True)


def measure(py: str, seconds: float, rounds: int, connections: int) -> dict:
    """Run rounds pairs (quiet, flooded) with py; return the raw rounds and the summary."""
    quiet, flooded = [], []
    for r in range(rounds):
        quiet.append(one_round(py, seconds, False, connections))
        flooded.append(one_round(py, seconds, True, connections))
        print(f"flood: {py}: round {r + 1}/{rounds}: quiet "
              f"{quiet[-1]['calls_per_s']:.1f} calls/s, flooded "
              f"{flooded[-1]['calls_per_s']:.1f} calls/s, "
              f"{flooded[-1]['served'] / seconds:,.0f} requests/s answered, "
              f"{flooded[-1]['snapshots']} snapshots", flush=True)
    q = statistics.median(x["calls_per_s"] for x in quiet)
    f = statistics.median(x["calls_per_s"] for x in flooded)
    version = subprocess.run([py, "-c", "import sys; print(sys.version.split()[0])"],
                             capture_output=True, text=True).stdout.strip()
    return {
        "python": version,
        "quiet_calls_per_s": q,
        "flooded_calls_per_s": f,
        "kept": f / q,
        "requests_per_s": statistics.median(x["served"] / x["seconds"] for x in flooded),
        "snapshots_per_s": statistics.median(x["snapshots"] / x["seconds"] for x in flooded),
        "quiet_snapshots": sum(x["snapshots"] for x in quiet),
        "rounds": {"quiet": quiet, "flooded": flooded},
    }


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["target"] and len(argv) == 3:
        print(json.dumps(target(float(argv[1]), argv[2])))
        return 0
    if argv[:1] == ["flood"] and len(argv) == 4:
        print(json.dumps(flood(float(argv[1]), argv[2], int(argv[3]))))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--python", action="append", metavar="PY",
                    help="interpreter to run (repeatable; default: this one)")
    ap.add_argument("--seconds", type=float, default=5.0,
                    help="length of each program run and its flood (default 5)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="quiet/flooded pairs per interpreter (default 3)")
    ap.add_argument("--connections", type=int, default=4,
                    help="connections of the flooder (default 4)")
    ap.add_argument("--json", metavar="FILE", help="write every number here")
    opts = ap.parse_args(argv)
    results = [measure(py, opts.seconds, opts.rounds, opts.connections)
               for py in (opts.python or [sys.executable])]
    print()
    print("| Python | quiet (dense(2000) calls/s) | flooded | kept | requests answered/s "
          "| snapshots/s |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['python']} | {r['quiet_calls_per_s']:.1f} | "
              f"{r['flooded_calls_per_s']:.1f} | {r['kept']:.1%} | "
              f"{r['requests_per_s']:,.0f} | {r['snapshots_per_s']:.1f} |")
    if opts.json:
        with open(opts.json, "w") as fp:
            json.dump(results, fp, indent=1)
    return 0 if all(r["kept"] >= KEEP for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
