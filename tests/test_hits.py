"""Hits: lineprof's per-line hit counts equal CPython's own 'line' events.

For each target in truth_cases.py the workload runs twice: under
``sys.settrace`` (counting 'line' events of frames whose f_code is a target
code object) and under lineprof. The per-line hit counts must be equal, as
a dict over every line of every target, on every interpreter.
"""

import pytest

import truth_cases
from conftest import hits_only, profile_calls, settrace_hits


def diff(truth, got):
    """Return a readable list of the lines where the two counts differ."""
    keys = sorted(set(truth) | set(got))
    return [f"{name}:{line} settrace={truth.get((name, line), 0)} "
            f"lineprof={got.get((name, line), 0)}"
            for name, line in keys if truth.get((name, line), 0) != got.get((name, line), 0)]


@pytest.mark.parametrize("name", truth_cases.all_case_names())
def test_hits_equal_settrace_line_events(name):
    funcs, body = truth_cases.CASES[name]
    truth = settrace_hits(funcs, body)
    assert truth, "the workload must run some profiled lines"
    got = hits_only(profile_calls(funcs, body))
    assert got == truth, "\n".join(diff(truth, got))


@pytest.mark.parametrize("name", ["loop_workload", "generator_workload", "coroutine_workload"])
def test_hits_are_stable_across_runs(name):
    """Two profiled runs of the same workload give the same counts (no state leaks between profilers)."""
    funcs, body = truth_cases.CASES[name]
    first = hits_only(profile_calls(funcs, body))
    second = hits_only(profile_calls(funcs, body))
    assert first == second
