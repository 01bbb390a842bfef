"""Judging one metric stays in the rule language (issue 11): verify chooses, expected/ is read in one
call (expected.lookup), and every rule decision — scope, description, check — is tolerance.py's.
A profiler hook records which pack modules the call enters, in order."""

from __future__ import annotations

import sys

from pack import verify
from pack.expected import ExpectedFile
from pack.manifest import Row
from pack.results import RepResult
from pack.run import aggregate

ROW = Row.model_validate(
    {
        "id": "r",
        "cell": "c",
        "experiment": "command",
        "target": {"hardware": "cpu"},
        "metrics": {"tok_s": {"tolerance": {"kind": "rel", "value": 0.05}}},
    }
)


def modules_entered(fn):
    """fn's result, and the pack modules its frames ran in (in order, consecutive repeats folded)."""
    seq: list[str] = []

    def hook(frame, event, arg):
        if event in ("call", "return"):
            f = frame if event == "call" else frame.f_back
            mod = f.f_globals.get("__name__", "") if f else ""
            if mod.startswith("pack.") and (not seq or seq[-1] != mod):
                seq.append(mod)

    sys.setprofile(hook)
    try:
        result = fn()
    finally:
        sys.setprofile(None)
    return result, seq


def test_one_metric_is_judged_by_one_lookup_and_the_rule_language():
    ef = ExpectedFile.model_validate(
        {
            "paper": "p",
            "row": "r",
            "expectations": [
                {"metric": "tok_s", "value": 39.28, "scope": {"gpu": ["L40S"]}, "source": {"seed": "s.txt"}}
            ],
        }
    )
    reps = [RepResult(metrics={"tok_s": v}) for v in (39.0, 39.5)]
    run = {"scale": "full", "gpu_models": ["NVIDIA L40S"], "metrics": aggregate(reps, None), "errors": {}}
    verify.judge_metric("tok_s", run, ROW, ef)  # imports and caches out of the way
    mv, seq = modules_entered(lambda: verify.judge_metric("tok_s", run, ROW, ef))
    assert mv.verdict == "PASS", mv.why
    assert set(seq) == {"pack.verify", "pack.expected", "pack.tolerance"}
    assert seq.count("pack.expected") == 1  # expected.lookup: expectations, rules in force, spec
    assert seq.count("pack.tolerance") <= 3  # Scope.mismatch, Rule.describe, Rule.check
