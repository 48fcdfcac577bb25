"""lineprof's benchmark suite: one command, every profiler side by side.

Usage:
    python bench/run.py [--quick] [--python 3.12 ...] [--no-callgrind]
                        [--refresh] [--markdown FILE] [--json FILE]
    python bench/run.py --from-json bench/build/results.json   (report only)

For each Python (3.11, 3.12 and 3.13 unless --python is given) this script
  1. creates or refreshes .venv/bench-3.X: a fresh venv with lineprof
     (editable, rebuilt when its C sources change), line_profiler, yappi and
     pyinstrument from PyPI;
  2. builds the floor hook (bench/floor/) into bench/build/;
  3. counts, with sys.settrace, the line events of every workload;
  4. times the workloads (bench/workloads.py) under plain Python, the floor
     hook, lineprof, line_profiler, yappi, pyinstrument and cProfile: every
     run is a fresh process, the profilers are interleaved round by round,
     and the median of the repeats is reported;
  5. counts instructions with callgrind for N and 2N iterations of the
     line-dense and call-heavy workloads, so start-up cancels out;
  6. measures the peak RSS growth of short-task churn at two or three sizes.
Steps 5 and 6 run two jobs at a time (the machine has two cores); nothing
else runs while wall time is measured.

It prints the tables, writes every raw number to bench/build/results.json,
and the tables as markdown to bench/build/results.md: that file is what
docs/performance.md shows. Missing interpreters and profilers are reported
and skipped. The orchestrator needs only the standard library.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BUILD = os.path.join(HERE, "build")
CHILD = os.path.join(HERE, "child.py")

PYTHONS = ["3.11", "3.12", "3.13"]
PROFILERS = ["plain", "floor", "lineprof", "line_profiler", "yappi",
             "pyinstrument", "cProfile"]
COMPARISON = ["line_profiler", "yappi", "pyinstrument"]  # from PyPI

# The hooks the targets are about: they get every repeat and every count.
CORE = ["plain", "floor", "lineprof"]

# Sizes and repeats. "n" is loop iterations (line, calls) or tasks.
# Wall time: CORE profilers run `repeats` rounds, the others `others` rounds
# (the first ones); one run is capped at max(cap_min s, cap_factor x plain).
# Callgrind: (N, profilers) per workload; each runs with N and 2N.
# Memory: every profiler at `sizes` tasks, `large_profilers` also at `large`.
FULL = {
    "wall": {
        "line": {"n": 600_000, "repeats": 5, "others": 5, "cap_min": 20,
                 "cap_factor": 60},
        "calls": {"n": 20_000, "repeats": 5, "others": 5, "cap_min": 20,
                  "cap_factor": 60},
        "asyncio": {"n": 100_000, "repeats": 3, "others": 1, "cap_min": 15,
                    "cap_factor": 6},
    },
    "callgrind": {"line": (20_000, PROFILERS),
                  "calls": (500, CORE + ["line_profiler"]),
                  "asyncio": (2_000, CORE)},
    "memory": {"sizes": [30_000, 100_000], "profilers": PROFILERS,
               "large": 1_000_000, "large_profilers": ["plain", "lineprof"],
               "cap": 150},
}
QUICK = {
    "wall": {
        "line": {"n": 100_000, "repeats": 3, "others": 3, "cap_min": 10,
                 "cap_factor": 60},
        "calls": {"n": 3_000, "repeats": 3, "others": 3, "cap_min": 10,
                  "cap_factor": 60},
        "asyncio": {"n": 3_000, "repeats": 3, "others": 1, "cap_min": 3,
                    "cap_factor": 6},
    },
    "callgrind": {"line": (5_000, CORE), "calls": (200, ["plain", "lineprof"])},
    "memory": {"sizes": [10_000, 30_000], "profilers": ["plain", "lineprof"],
               "large": None, "large_profilers": [], "cap": 30},
}

# Targets of issue 4.
FLOOR_FACTOR = 1.2                       # lineprof instr/line <= 1.2 x floor
VS_LINE_PROFILER = {"3.11": 2.0}         # line_profiler / lineprof >= this;
VS_LINE_PROFILER_DEFAULT = 7.0           # 7 on 3.12+
NOT_PROFILED = {"3.11": 0.10}            # extra cost to code not profiled
NOT_PROFILED_DEFAULT = 0.02
ASYNCIO_RATIO = 1.3
MEMORY_FLAT_MB = 2.0                     # growth(largest) - growth(smallest)


def log(msg: str) -> None:
    print(msg, flush=True)


# ---------------------------------------------------------------------------
# Interpreters, venvs and the floor hook


def find_python(version: str) -> str | None:
    """Return an interpreter for version, found as scripts/setup.sh finds it, or None."""
    common = os.path.join(ROOT, "scripts", "common.sh")
    try:
        out = subprocess.run(
            ["bash", "-c", f'source {shlex.quote(common)} && find_python "$1"',
             "find_python", version],
            capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        out = ""
    return out.splitlines()[-1] if out else None


def venv_python(version: str) -> str:
    return os.path.join(ROOT, ".venv", f"bench-{version}", "bin", "python")


def _quiet(cmd: list, log_path: str) -> bool:
    """Run cmd with its output appended to log_path; return whether it succeeded."""
    with open(log_path, "a") as f:
        f.write(f"$ {shlex.join(cmd)}\n")
        f.flush()
        return subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT).returncode == 0


def _missing(py: str, modules: list) -> list:
    """Return the modules of the list that py cannot find."""
    code = ("import importlib.util, json, sys; print(json.dumps("
            "[m for m in sys.argv[1:] if importlib.util.find_spec(m) is None]))")
    r = subprocess.run([py, "-c", code, *modules], capture_output=True, text=True,
                       env=child_env(), cwd=BUILD)
    try:
        return json.loads(r.stdout)
    except ValueError:
        return list(modules)


def _lineprof_stale(py: str) -> bool:
    """Return whether lineprof is not importable in py or older than its C sources."""
    r = subprocess.run([py, "-c", "import lineprof._lineprof as m; print(m.__file__)"],
                       capture_output=True, text=True, env=child_env(), cwd=BUILD)
    if r.returncode != 0:
        return True
    built = os.path.getmtime(r.stdout.strip())
    sources = [os.path.join(ROOT, "setup.py")]
    for d, _, files in os.walk(os.path.join(ROOT, "csrc")):
        sources += [os.path.join(d, f) for f in files]
    return any(os.path.getmtime(s) > built for s in sources)


def ensure_venv(version: str, base: str, refresh: bool) -> dict:
    """Create or refresh .venv/bench-X; return {"python", "missing": [profilers]}.

    Idempotent: the venv is created once; lineprof is reinstalled when its C
    sources are newer than its extension; the PyPI profilers are installed
    when missing, and upgraded at most once a day (always with refresh).
    """
    py = venv_python(version)
    venv = os.path.dirname(os.path.dirname(py))
    os.makedirs(BUILD, exist_ok=True)
    pip_log = os.path.join(BUILD, f"pip-{version}.log")
    if not os.path.exists(py):
        log(f"bench: creating {os.path.relpath(venv, ROOT)}")
        if not _quiet([base, "-m", "venv", venv], pip_log):
            raise RuntimeError(f"cannot create {venv} (see {pip_log})")
    stamp = os.path.join(venv, ".bench-upgraded")
    old = not os.path.exists(stamp) or time.time() - os.path.getmtime(stamp) > 86400
    pip = [py, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    missing = _missing(py, ["setuptools", "wheel", *COMPARISON])
    if missing or refresh or old:
        log(f"bench: Python {version}: pip install -U setuptools wheel "
            f"{' '.join(COMPARISON)}")
        if _quiet(pip + ["-U", "setuptools", "wheel", *COMPARISON], pip_log):
            with open(stamp, "w") as f:
                f.write(datetime.datetime.now().isoformat() + "\n")
        else:
            log(f"bench: Python {version}: pip failed (log: "
                f"{os.path.relpath(pip_log, ROOT)}); using what is installed")
    if _lineprof_stale(py):
        log(f"bench: Python {version}: building lineprof (pip install -e)")
        if not _quiet(pip + ["--no-build-isolation", "-e", ROOT], pip_log):
            raise RuntimeError(f"lineprof does not build for Python {version} "
                               f"(see {pip_log})")
    missing = _missing(py, COMPARISON)
    for p in missing:
        log(f"bench: Python {version}: {p} is MISSING (not installable); "
            f"its numbers are left out")
    return {"python": py, "missing": missing}


def build_floor(version: str, py: str) -> tuple:
    """Build the floor hook for py.

    Returns (its directory, whether it carries callgrind client requests),
    or (None, False) if it did not build.
    """
    out = os.path.join(BUILD, f"floor-{version}")
    r = subprocess.run([py, os.path.join(HERE, "floor", "build.py"), out],
                       capture_output=True, text=True)
    if r.returncode != 0:
        log(f"bench: Python {version}: the floor hook did not build; its numbers "
            f"are left out\n{r.stderr.strip()}")
        return None, False
    r = subprocess.run([py, "-c", "import sys; sys.path.insert(0, sys.argv[1]); "
                        "import _lpfloor; print(_lpfloor.CALLGRIND_REQUESTS)", out],
                       capture_output=True, text=True, env=child_env(), cwd=BUILD)
    return out, r.stdout.strip() == "1"


# ---------------------------------------------------------------------------
# Running children


def child_env() -> dict:
    """The environment of every measured process: fixed hash seed, cached bytecode."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = os.path.join(BUILD, "pycache")
    env["PYTHONHASHSEED"] = "0"
    return env


class ChildError(Exception):
    pass


def run_child(py: str, args: list, timeout: float, floor_dir: str | None,
              wrapper: list | None = None) -> tuple:
    """Run bench/child.py with args; return (parsed JSON stdout, stderr).

    Raises ChildError with a one-line reason on failure or timeout.
    """
    cmd = (wrapper or []) + [py, CHILD] + args
    if floor_dir:
        cmd += ["--floor-dir", floor_dir]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                           env=child_env(), cwd=BUILD)
    except subprocess.TimeoutExpired:
        raise ChildError(f"timeout: stopped after {timeout:.0f} s")
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["exit %d" % r.returncode])[-1]
        raise ChildError(last)
    try:
        return json.loads(r.stdout.strip().splitlines()[-1]), r.stderr
    except (ValueError, IndexError):
        raise ChildError(f"no result: {r.stdout[-200:]!r}")


# ---------------------------------------------------------------------------
# The measurements


def calibrate(py: str) -> dict:
    out, _ = run_child(py, ["calibrate"], 300, None)
    return out


def wall_phase(py: str, floor_dir: str | None, workload: str, cfg: dict,
               profilers: list) -> dict:
    """Time workload under each profiler in interleaved rounds.

    Each round runs every profiler once, each in a fresh process, in an order
    rotated from round to round; plain is first in the first round so the
    time cap is known. After cfg["others"] rounds only the CORE profilers go
    on. A profiler that fails or exceeds the cap is not run again.
    """
    n = cfg["n"]
    times = {p: [] for p in profilers}
    events, failed, caps = {}, {}, {}
    for r in range(cfg["repeats"]):
        now = [p for p in profilers if r < cfg["others"] or p in CORE]
        order = now[r % len(now):] + now[:r % len(now)]
        for p in order:
            if p in failed:
                continue
            plain = times["plain"]
            cap = max(cfg["cap_min"], cfg["cap_factor"] *
                      (statistics.median(plain) if plain else cfg["cap_min"]))
            try:
                # The cap bounds the workload; start-up gets 5 s more.
                res, _ = run_child(py, ["run", workload, p, str(n)], cap + 5,
                                   floor_dir)
            except ChildError as e:
                failed[p] = str(e)
                caps[p] = cap
                log(f"  {workload}/{p}: {e}")
                continue
            times[p].append(res["seconds"])
            events[p] = res["events"]
        done = ", ".join(f"{p} {times[p][-1]:.2f}s" for p in profilers
                         if len(times[p]) == r + 1)
        log(f"  {workload} round {r + 1}/{cfg['repeats']}: {done}")
    return {"n": n, "times": times, "events": events, "failed": failed,
            "caps": caps}


TOTALS = re.compile(r"^totals:\s*(\d+)", re.M)


def callgrind_paths(version: str, workload: str, profiler: str) -> tuple:
    """The callgrind dumps of the N and 2N runs of workload under profiler."""
    base = os.path.join(BUILD, "callgrind", version, f"{workload}-{profiler}.out")
    return base, base + ".1", base + ".2"


def callgrind_job(t: dict, workload: str, profiler: str, n: int) -> tuple:
    """Count the instructions of workload with N and 2N units under profiler.

    One process under callgrind --instr-atstart=no runs the workload with N
    then 2N through the floor module's measure(), which instruments only
    those calls and dumps each apart: start-up, imports and bytecode
    compilation are never counted. Returns (instructions of N, of 2N).
    """
    base, dump_n, dump_2n = callgrind_paths(t["version"], workload, profiler)
    os.makedirs(os.path.dirname(base), exist_ok=True)
    for f in (base, dump_n, dump_2n):
        if os.path.exists(f):
            os.remove(f)
    wrapper = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
               f"--callgrind-out-file={base}"]
    run_child(t["python"], ["run", workload, profiler, str(n), "--callgrind"],
              1800, t["floor_dir"], wrapper)
    counts = []
    for f in (dump_n, dump_2n):
        try:
            with open(f) as fh:
                m = TOTALS.search(fh.read())
        except OSError:
            m = None
        if not m:
            raise ChildError(f"callgrind wrote no count in {os.path.basename(f)}")
        counts.append(int(m.group(1)))
    return tuple(counts)


def memory_job(py: str, floor_dir, profiler: str, n: int, cap: float) -> int:
    """Run the churn workload once; return its peak RSS growth in bytes."""
    res, _ = run_child(py, ["run", "memory", profiler, str(n)], cap, floor_dir)
    return max(0, res["peak_rss"] - res["rss_before"])


def pool_phase(targets: list, cfg: dict, use_callgrind: bool) -> None:
    """Run the callgrind and memory jobs of every Python, two at a time."""
    jobs = []
    for t in targets:
        res = t["results"]
        if use_callgrind and not t["cg_requests"]:
            log(f"bench: Python {t['version']}: no instruction counts: the floor "
                f"module was built without <valgrind/callgrind.h>")
        elif use_callgrind:
            for wl, (n, profilers) in cfg["callgrind"].items():
                res["callgrind"][wl] = {"n": [n, 2 * n], "instr": {}, "failed": {}}
                for p in profilers:
                    if p not in t["skip"]:
                        jobs.append(("callgrind", t, wl, p, n))
        mem = cfg["memory"]
        sizes = list(mem["sizes"])
        res["memory"] = {"sizes": sizes + ([mem["large"]] if mem["large"] else []),
                         "growth": {}, "failed": {}}
        for p in mem["profilers"]:
            if p in t["skip"]:
                continue
            jobs += [("memory", t, "memory", p, k) for k in sizes]
            if mem["large"] and p in mem["large_profilers"]:
                jobs.append(("memory", t, "memory", p, mem["large"]))
    # The longest first, so the two workers finish together.
    jobs.sort(key=lambda j: (j[0] != "memory" or j[4] != cfg["memory"]["large"]))

    def work(job):
        kind, t, wl, p, k = job
        if kind == "callgrind":
            return callgrind_job(t, wl, p, k)
        return memory_job(t["python"], t["floor_dir"], p, k, cfg["memory"]["cap"])

    log(f"bench: {len(jobs)} callgrind and memory jobs, two at a time")
    t0 = time.time()
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as ex:
        futures = {ex.submit(work, j): j for j in jobs}
        for i, fut in enumerate(concurrent.futures.as_completed(futures), 1):
            kind, t, wl, p, k = futures[fut]
            res = t["results"]
            try:
                value = fut.result()
            except ChildError as e:
                log(f"  [{i}/{len(jobs)}] {t['version']} {kind} {wl}/{p} n={k}: {e}")
                slot = res["callgrind"][wl] if kind == "callgrind" else res["memory"]
                slot["failed"].setdefault(p, {})[str(k)] = str(e)
                continue
            if kind == "callgrind":
                res["callgrind"][wl]["instr"][p] = {str(k): value[0], str(2 * k): value[1]}
                shown = f"{value[0]:,} / {value[1]:,} instructions (N / 2N)"
            else:
                res["memory"]["growth"].setdefault(p, {})[str(k)] = value
                shown = f"peak RSS +{value / 2**20:.1f} MB"
            log(f"  [{i}/{len(jobs)}] {t['version']} {kind} {wl}/{p} n={k}: {shown} "
                f"({time.time() - t0:.0f} s)")


# ---------------------------------------------------------------------------
# Derived numbers


def median_ratio(wall: dict, p: str):
    t, base = wall["times"].get(p), wall["times"].get("plain")
    if not t or not base:
        return None
    return statistics.median(t) / statistics.median(base)


def spread(wall: dict, p: str):
    """Half the min-max range of p's times, relative to their median."""
    t = wall["times"].get(p)
    if not t or len(t) < 2:
        return None
    return (max(t) - min(t)) / 2 / statistics.median(t)


def extra_per_unit(wall: dict, p: str, units: float):
    """Median extra seconds of p over plain, per unit (line event, task)."""
    t, base = wall["times"].get(p), wall["times"].get("plain")
    if not t or not base or not units:
        return None
    return (statistics.median(t) - statistics.median(base)) / units


def instr_per_unit(cg: dict, p: str, units_per_n: float):
    """Callgrind: instructions per unit for p, from the N and 2N runs."""
    got = cg.get("instr", {}).get(p, {})
    n1, n2 = cg["n"]
    if str(n1) not in got or str(n2) not in got or not units_per_n:
        return None
    return (got[str(n2)] - got[str(n1)]) / ((n2 - n1) * units_per_n)


def derive(res: dict) -> dict:
    """Compute every reported number of one Python from its raw results."""
    epu = res["events_per_unit"]
    d = {"line": {}, "calls": {}, "asyncio": {}, "memory": {}}
    w = res["wall"].get("line")
    if w:
        for p in PROFILERS:
            e = extra_per_unit(w, p, w["n"] * epu["line"])
            d["line"][p] = {"ratio": median_ratio(w, p), "spread": spread(w, p),
                            "ns": None if e is None else e * 1e9}
    cg = res["callgrind"].get("line")
    if cg:
        plain = instr_per_unit(cg, "plain", epu["line"])
        for p in PROFILERS:
            v = instr_per_unit(cg, p, epu["line"])
            d["line"].setdefault(p, {})["instr"] = (
                None if v is None or plain is None else v - plain)
        d["line"]["plain"]["instr_total"] = plain
    w = res["wall"].get("calls")
    if w:
        for p in PROFILERS:
            d["calls"][p] = {"ratio": median_ratio(w, p), "spread": spread(w, p)}
    cg = res["callgrind"].get("calls")
    if cg:
        plain = instr_per_unit(cg, "plain", 1)
        for p in PROFILERS:
            v = instr_per_unit(cg, p, 1)
            d["calls"].setdefault(p, {})["instr_ratio"] = (
                None if v is None or not plain else v / plain)
        d["calls"]["plain"]["instr_per_iter"] = plain
    w = res["wall"].get("asyncio")
    if w:
        for p in PROFILERS:
            e = extra_per_unit(w, p, w["n"])
            d["asyncio"][p] = {"ratio": median_ratio(w, p), "spread": spread(w, p),
                               "us_per_task": None if e is None else e * 1e6}
    cg = res["callgrind"].get("asyncio")
    if cg:
        plain = instr_per_unit(cg, "plain", 1)
        for p in PROFILERS:
            v = instr_per_unit(cg, p, 1)
            d["asyncio"].setdefault(p, {}).update(
                instr_per_task=None if v is None or plain is None else v - plain,
                instr_ratio=None if v is None or not plain else v / plain)
    mem = res.get("memory")
    if mem:
        for p in PROFILERS:
            g = mem["growth"].get(p, {})
            d["memory"][p] = {str(k): g.get(str(k)) for k in mem["sizes"]}
    return d


# (workload, profiler, baseline, unit): the per-function breakdowns reported.
BREAKDOWNS = [("line", "lineprof", "floor", "line event"),
              ("asyncio", "lineprof", "floor", "task"),
              ("calls", "lineprof", "plain", "iteration")]


def breakdown(version: str, res: dict, workload: str, prof: str, base: str,
              top: int = 12) -> list:
    """Where prof's instructions go beyond base's, per unit of workload.

    Returns [(function, instructions per unit)] from callgrind's self cost per
    function: (prof(2N) - prof(N)) - (base(2N) - base(N)), divided by the
    units added (line events for "line", iterations or tasks otherwise).
    Empty if a run is missing.
    """
    cg = res["callgrind"].get(workload)
    if not cg or any(str(k) not in cg["instr"].get(p, {})
                     for p in (prof, base) for k in cg["n"]):
        return []
    import cgdiff
    n1, n2 = cg["n"]
    units = (n2 - n1) * (res["events_per_unit"]["line"] if workload == "line" else 1)
    # p1, p2: prof's dumps for N and 2N; b1, b2: base's.
    try:
        p1, p2, b1, b2 = (cgdiff.self_costs(callgrind_paths(version, workload, p)[i])
                          for p in (prof, base) for i in (1, 2))
    except (OSError, subprocess.CalledProcessError):
        return []
    keys = set(p1) | set(p2) | set(b1) | set(b2)
    diff = {k: ((p2.get(k, 0) - p1.get(k, 0)) - (b2.get(k, 0) - b1.get(k, 0))) / units
            for k in keys}
    return sorted(((k, v) for k, v in diff.items() if abs(v) >= 0.5),
                  key=lambda kv: (-kv[1], kv[0]))[:top]


def targets(version: str, res: dict, d: dict) -> list:
    """Return [(name, limit text, measured text, met: bool|None)] for one Python."""
    out = []
    lp, fl, lpr = (d["line"].get(p, {}) for p in ("lineprof", "floor", "line_profiler"))
    if lp.get("instr") and fl.get("instr"):
        r = lp["instr"] / fl["instr"]
        out.append(("instructions per line event vs the floor hook",
                    f"<= {FLOOR_FACTOR}x floor",
                    f"{r:.3f}x ({lp['instr']:.0f} vs {fl['instr']:.0f})",
                    r <= FLOOR_FACTOR))
    else:
        out.append(("instructions per line event vs the floor hook",
                    f"<= {FLOOR_FACTOR}x floor", "not measured", None))
    need = VS_LINE_PROFILER.get(version, VS_LINE_PROFILER_DEFAULT)
    if lp.get("instr") and lpr.get("instr"):
        r = lpr["instr"] / lp["instr"]
        out.append(("cheaper than line_profiler per line event", f">= {need:g}x",
                    f"{r:.2f}x ({lpr['instr']:.0f} vs {lp['instr']:.0f})",
                    r >= need))
    else:
        out.append(("cheaper than line_profiler per line event", f">= {need:g}x",
                    "not measured", None))
    limit = NOT_PROFILED.get(version, NOT_PROFILED_DEFAULT)
    c = d["calls"].get("lineprof", {})
    wall = c.get("ratio")
    instr = c.get("instr_ratio")
    judged = instr if instr is not None else wall
    parts = []
    if instr is not None:
        parts.append(f"{(instr - 1) * 100:+.1f}% instructions")
    if wall is not None:
        parts.append(f"{(wall - 1) * 100:+.1f}% wall")
    out.append(("code not profiled: extra cost", f"<= {limit * 100:g}%",
                ", ".join(parts) or "not measured",
                None if judged is None else judged - 1 <= limit))
    x = d["asyncio"].get("lineprof", {})
    a = x.get("ratio")
    n = res["wall"].get("asyncio", {}).get("n")
    got = "not measured" if a is None else f"{a:.2f}x wall"
    if x.get("instr_ratio") is not None:
        got += f", {x['instr_ratio']:.2f}x instructions"
    out.append((f"asyncio, {n:,} tasks: wall time" if n else "asyncio: wall time",
                f"<= {ASYNCIO_RATIO}x plain", got,
                None if a is None else a <= ASYNCIO_RATIO))
    mem = res.get("memory", {})
    g = mem.get("growth", {}).get("lineprof", {})
    sizes = [k for k in mem.get("sizes", []) if str(k) in g]
    if len(sizes) >= 2:
        lo, hi = sizes[0], sizes[-1]
        delta = (g[str(hi)] - g[str(lo)]) / 2**20
        out.append(("memory flat in the number of tasks",
                    f"growth({hi:,}) - growth({lo:,}) <= {MEMORY_FLAT_MB:g} MB",
                    f"{delta:+.1f} MB ({g[str(lo)] / 2**20:.1f} -> "
                    f"{g[str(hi)] / 2**20:.1f} MB)", delta <= MEMORY_FLAT_MB))
    else:
        out.append(("memory flat in the number of tasks", "", "not measured", None))
    return out


# ---------------------------------------------------------------------------
# Reporting


def fmt(v, spec: str, suffix: str = "", missing: str = "-") -> str:
    return missing if v is None else format(v, spec) + suffix


def table(header: list, rows: list) -> str:
    """A markdown table (also readable as plain text)."""
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), sep] + [line(r) for r in rows])


def why(res: dict, kind: str, section: str, p: str) -> str:
    """'-' or a short reason why the cell of p is empty."""
    if p in res.get("skip", {}):
        return "missing"
    if kind == "wall":
        w = res["wall"].get(section, {})
        failed = w.get("failed", {}).get(p)
        if failed and failed.startswith("timeout") and w["times"].get("plain"):
            cap = w["caps"][p]
            return (f"> {cap / statistics.median(w['times']['plain']):.0f}x "
                    f"(stopped at {cap:.0f} s)")
    elif kind == "callgrind":
        failed = res["callgrind"].get(section, {}).get("failed", {}).get(p)
    else:
        failed = res.get("memory", {}).get("failed", {}).get(p)
    if isinstance(failed, dict):
        failed = next(iter(failed.values()), None)
    if failed:
        return "timeout" if failed.startswith("timeout") else "failed"
    return "-"


def machine() -> dict:
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--",
                                "csrc", "lineprof", "setup.py"],
                               capture_output=True, text=True).stdout.strip()
    except OSError:
        commit, dirty = "", ""
    return {"nproc": os.cpu_count(), "cpu": cpu, "kernel": platform.release(),
            "loadavg": os.getloadavg(), "commit": (commit or "?") +
            (" + uncommitted changes" if dirty else "")}


def report(results: dict, meta: dict) -> str:
    """Return the whole report as markdown."""
    vs = [v for v in results if "derived" in results[v]]
    out = []
    m = meta["machine"]
    out.append(table(["run", "value"], [
        ["date", meta["date"]],
        ["command", f"`{meta['command']}`"],
        ["mode", meta["mode"]],
        ["lineprof", f"{meta['lineprof']} (git {m['commit']})"],
        ["machine", f"{m['nproc']} cores (nproc), {m['cpu']}, Linux {m['kernel']}"],
        ["load average at start", " / ".join(f"{x:.2f}" for x in m["loadavg"])],
        ["duration", f"{meta['duration'] / 60:.1f} min"],
    ] + [[f"Python {v}", ", ".join(
        f"{k} {results[v]['versions'].get(k) or 'missing'}"
        for k in ("python", "lineprof clock", "line_profiler", "yappi",
                  "pyinstrument"))] for v in vs]))

    out.append("\n### Targets\n")
    rows = []
    for v in vs:
        for name, limit, got, met in results[v]["targets"]:
            rows.append([v, name, limit, got,
                         "n/a" if met is None else ("**met**" if met else "**not met**")])
    out.append(table(["Python", "target", "limit", "measured", "result"], rows))

    def grid(title, note, header, cell, kind, section, profilers=PROFILERS):
        out.append(f"\n### {title}\n")
        if note:
            out.append(note + "\n")
        rows = []
        for p in profilers:
            row = [p]
            for v in vs:
                got = cell(results[v]["derived"], p, v)
                row.append(got if got not in (None, "-")
                           else why(results[v], kind, section, p))
            rows.append(row)
        out.append(table([header] + [f"Python {v}" for v in vs], rows))

    def instr_cell(d, p, v):
        x = d["line"].get(p, {})
        if p == "plain":
            return fmt(x.get("instr_total"), ",.0f", " (total)")
        if x.get("instr") is None:
            return None
        fl = d["line"].get("floor", {}).get("instr")
        extra = (f" ({x['instr'] / fl:.2f}x floor)"
                 if fl and p in ("lineprof", "line_profiler") else "")
        return f"{x['instr']:,.0f}{extra}"

    grid("(1) Line-dense loop: instructions per line event (callgrind)",
         "Extra instructions over plain Python per line event: "
         "(I(2N) - I(N)) / line events added, minus the same for plain Python.",
         "profiler", instr_cell, "callgrind", "line")

    def line_cell(d, p, v):
        x = d["line"].get(p, {})
        if p == "plain" or x.get("ratio") is None:
            return None if p != "plain" else "1.00x"
        return (f"{x['ratio']:.2f}x ±{x['spread'] * 100:.0f}%, "
                f"{x['ns']:,.0f} ns/line" if x.get("spread") is not None
                else f"{x['ratio']:.2f}x, {x['ns']:,.0f} ns/line")

    grid("(1) Line-dense loop: wall time",
         "Median ratio to plain Python (± half the min-max spread) and extra "
         "nanoseconds per line event.", "profiler", line_cell, "wall", "line")

    def calls_cell(d, p, v):
        x = d["calls"].get(p, {})
        parts = []
        if x.get("ratio") is not None:
            parts.append(f"{x['ratio']:.3f}x wall" + (
                f" ±{x['spread'] * 100:.0f}%" if x.get("spread") is not None else ""))
        if x.get("instr_ratio") is not None:
            parts.append(f"{x['instr_ratio']:.3f}x instr")
        return ", ".join(parts) or None

    grid("(2) Call-heavy program, one rarely called function profiled",
         "Ratio to plain Python: median wall time, and callgrind instructions "
         "per iteration. yappi, pyinstrument and cProfile cannot be limited "
         "to one function: they profile everything.", "profiler", calls_cell,
         "wall", "calls")

    def async_cell(d, p, v):
        x = d["asyncio"].get(p, {})
        parts = []
        if x.get("ratio") is not None:
            s = f" ±{x['spread'] * 100:.0f}%" if x.get("spread") is not None else ""
            parts.append(f"{x['ratio']:.2f}x{s}, {x['us_per_task']:+.1f} us/task")
        if x.get("instr_ratio") is not None:
            parts.append(f"{x['instr_ratio']:.2f}x instr "
                         f"({x['instr_per_task']:+,.0f}/task)")
        return "; ".join(parts) or None

    n = max((results[v]["wall"].get("asyncio", {}).get("n", 0) for v in vs), default=0)
    grid(f"(3) asyncio, {n:,} tasks alive at once, coroutines profiled",
         "Median wall-time ratio to plain Python and extra microseconds per "
         "task; callgrind instruction ratio and extra instructions per task "
         "(N and 2N tasks, smaller N).",
         "profiler", async_cell, "wall", "asyncio")

    def mem_cell(d, p, v):
        g = d["memory"].get(p, {})
        got = [f"{int(k):,}: {b / 2**20:.1f}" for k, b in g.items() if b is not None]
        return " / ".join(got) + " MB" if got else None

    grid("(4) Memory: peak RSS growth while churning short tasks",
         "Peak RSS during the run minus RSS before it, by number of tasks "
         "(1,000 alive at a time).", "profiler", mem_cell, "memory", "memory")

    for wl, prof, base, unit in BREAKDOWNS:
        key = f"{wl}:{prof}-{base}"
        bd = [v for v in vs if results[v].get("breakdown", {}).get(key)]
        if not bd:
            continue
        out.append(f"\n### Where {prof}'s instructions go: {wl} workload, "
                   f"{prof} minus {base}, per {unit}\n")
        out.append("callgrind self cost per function (`bench/cgdiff.py` on the "
                   "N and 2N runs of each); names with a `.h` are inlined code.\n")
        rows = {}
        for v in bd:
            for k, x in results[v]["breakdown"][key]:
                rows.setdefault(re.sub(r"cpython-3\d+-|3\.1\d", "*", k), {})[v] = x
        order = sorted(rows, key=lambda k: (-max(rows[k].values()), k))
        out.append(table(["function"] + [f"Python {v}" for v in bd],
                         [[f"`{k}`"] + [fmt(rows[k].get(v), "+.1f") for v in bd]
                          for k in order]))
    out.append("")

    notes = [f"- Python {v}: {n}" for v in vs for n in results[v].get("notes", [])]
    out.append("\n### Checks\n")
    out.extend(notes or ["- The line events recorded by the floor hook, lineprof and "
                         "line_profiler in the timed runs equal the count of "
                         "sys.settrace on every Python."])
    return "\n".join(out) + "\n"


def check_events(res: dict) -> None:
    """Note every line hook whose recorded line events differ from sys.settrace's."""
    for wl, w in res["wall"].items():
        expect = round(res["events_per_unit"][wl] * w["n"])
        for p, got in sorted(w["events"].items()):
            if got is not None and abs(got - expect) > 0.01 * expect + 20:
                res["notes"].append(
                    f"{wl}: {p} recorded {got:,} line events; sys.settrace "
                    f"counts about {expect:,}")


# ---------------------------------------------------------------------------


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="smaller sizes and fewer repeats (under 3 minutes)")
    ap.add_argument("--python", action="append", metavar="X.Y",
                    help="a Python version to run (repeatable; default: "
                         + " ".join(PYTHONS) + ")")
    ap.add_argument("--no-callgrind", action="store_true",
                    help="skip the instruction counts")
    ap.add_argument("--refresh", action="store_true",
                    help="upgrade the PyPI profilers in the bench venvs now")
    ap.add_argument("--markdown", default=os.path.join(BUILD, "results.md"),
                    help="where to write the markdown report")
    ap.add_argument("--json", default=os.path.join(BUILD, "results.json"),
                    help="where to write the raw results")
    ap.add_argument("--from-json", metavar="FILE",
                    help="measure nothing: rewrite the report from raw results "
                         "that an earlier run saved")
    args = ap.parse_args(argv)
    if args.from_json:
        with open(args.from_json) as f:
            saved = json.load(f)
        for v, res in saved["results"].items():
            res["derived"] = derive(res)
            res["targets"] = targets(v, res, res["derived"])
            # The callgrind profiles on disk may be of a later run: keep the
            # breakdowns computed when these results were measured.
            res.setdefault("breakdown", {})
        md = report(saved["results"], saved["meta"])
        with open(args.markdown, "w") as f:
            f.write(md)
        log(md)
        return 0
    cfg = QUICK if args.quick else FULL
    start = time.time()
    os.makedirs(BUILD, exist_ok=True)
    use_callgrind = not args.no_callgrind
    if use_callgrind and subprocess.run(["sh", "-c", "command -v valgrind"],
                                        capture_output=True).returncode != 0:
        log("bench: valgrind is MISSING: no instruction counts "
            "(apt-get install valgrind)")
        use_callgrind = False
    meta = {"date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
            "command": " ".join(["python bench/run.py"] + [
                shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])]),
            "mode": ("quick" if args.quick else "full") +
                    ("" if use_callgrind else ", no callgrind"),
            "machine": machine()}

    targets_ = []
    results = {}
    for v in args.python or PYTHONS:
        base = find_python(v)
        if not base:
            log(f"bench: Python {v} is MISSING (not found by scripts/common.sh); "
                f"skipping it")
            continue
        try:
            env = ensure_venv(v, base, args.refresh)
        except RuntimeError as e:
            log(f"bench: Python {v}: {e}; skipping it")
            continue
        floor_dir, cg_requests = build_floor(v, env["python"])
        skip = {p: "missing" for p in env["missing"]}
        if floor_dir is None:
            skip["floor"] = "did not build"
        try:
            cal = calibrate(env["python"])
        except ChildError as e:
            log(f"bench: Python {v}: the workloads do not run ({e}); skipping it")
            continue
        res = {"python": base, "skip": skip, "notes": [],
               "events_per_unit": cal["events_per_unit"],
               "versions": cal["versions"], "wall": {}, "callgrind": {}}
        results[v] = res
        targets_.append({"version": v, "python": env["python"],
                         "floor_dir": floor_dir, "cg_requests": cg_requests,
                         "skip": skip, "results": res})

    if not results:
        log("bench: no usable Python")
        return 1

    for t in targets_:
        v = t["version"]
        log(f"bench: Python {v}: wall time")
        profilers = [p for p in PROFILERS if p not in t["skip"]]
        for wl in ("line", "calls", "asyncio"):
            t0 = time.time()
            t["results"]["wall"][wl] = wall_phase(
                t["python"], t["floor_dir"], wl, cfg["wall"][wl], profilers)
            log(f"  {wl}: {time.time() - t0:.0f} s")

    t0 = time.time()
    pool_phase(targets_, cfg, use_callgrind)
    log(f"bench: callgrind and memory took {time.time() - t0:.0f} s")

    for v, res in results.items():
        check_events(res)
        res["derived"] = derive(res)
        res["targets"] = targets(v, res, res["derived"])
        res["breakdown"] = {f"{wl}:{p}-{b}": breakdown(v, res, wl, p, b)
                            for wl, p, b, _ in BREAKDOWNS}
    meta["duration"] = time.time() - start
    meta["lineprof"] = next((r["versions"].get("lineprof") for r in results.values()),
                            "?")
    md = report(results, meta)
    with open(args.markdown, "w") as f:
        f.write(md)
    with open(args.json, "w") as f:
        json.dump({"meta": meta, "results": results}, f, indent=1, default=str)
    log("")
    log(md)
    log(f"bench: markdown in {os.path.relpath(args.markdown)}, raw numbers in "
        f"{os.path.relpath(args.json)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
