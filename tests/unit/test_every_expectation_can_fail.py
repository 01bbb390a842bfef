"""No check that cannot fail: every expectation in expected/ (all papers), through the real judging code.

For each expectation we build a run record inside its scope, with every repetition just inside its
tolerance and then just outside, and judge it with `verify.judge_metrics` and the row's manifest:
inside must PASS, outside must FAIL. Every tolerance kind is covered (abs/rel at 0.5x and 1.5x the
allowed deviation, decimals one unit in the last place away, range on each side of each bound, exact
with a different value, stat rules with the sample shifted). A declared off-scope weaker rule is
perturbed the same way on a run outside the scope. A failure here names the file and metric.
"""

from __future__ import annotations

import functools
import re
import statistics

import pytest

from pack import expected as exp_mod
from pack.manifest import find_row
from pack.tolerance import Abs, Decimals, Exact, Range, Rel, Stat
from pack.verify import judge_metrics

FILES = exp_mod.expected_files()

# Expectations known to be unable to fail through the judging code, with the reason. Empty: keep it so.
XFAIL: dict[tuple[str, str], str] = {}


@functools.cache
def _load(path):
    ef = exp_mod.load_expected(path)
    return ef, find_row(f"{ef.paper}:{ef.row}")[1]


def _cases():
    for path in FILES:
        ef, _ = _load(path)
        for i, e in enumerate(ef.expectations):
            yield pytest.param(path, i, id=f"{ef.paper}/{ef.row}[{i}]:{e.metric}")


def _concrete(metric: str) -> str:
    """A metric name the glob matches ('*.decode_tok_s' -> 'x.decode_tok_s')."""
    name = re.sub(r"\[!?([^\]])[^\]]*\]", r"\1", metric)
    return name.replace("*", "x").replace("?", "x")


def _in_scope_run(scope) -> dict:
    gpu = (scope.gpu or [None])[0]
    return {
        "scale": (scope.scale or ["full"])[0],
        "hardware": (scope.hardware or ["some-hw"])[0],
        "gpu_models": [] if gpu in (None, "cpu") or "*" in (gpu or "") else [f"NVIDIA {gpu}"],
        "image": (scope.image or [None])[0],
        "params": dict(scope.params or {}),
        "errors": {},
        "not_applicable": {},
        "contamination": [],
    }


def _off_scope_run(scope) -> dict | None:
    run = _in_scope_run(scope)
    if scope.scale:
        run["scale"] = "smoke" if "full" in scope.scale else "full"
    elif scope.gpu:
        run["gpu_models"] = ["NVIDIA NoSuchGPU-0"] if "cpu" in scope.gpu else []
    elif scope.hardware:
        run["hardware"] = "no-such-hardware"
    elif scope.image:
        run["image"] = "no-such-image"
    elif scope.params:
        k = next(iter(scope.params))
        run["params"][k] = ["a value no scope names"]
    else:
        return None
    return run


def _eps(x: float) -> float:
    return max(abs(x) * 1e-6, 1e-9)


def _samples(rule, value, sample):
    """(inside, outside, other metric's sample or None): repetition lists that must PASS and FAIL."""
    if isinstance(rule, Exact):
        other = value + "-changed" if isinstance(value, str) else value + max(1, abs(value) * 1e-3)
        return [[value] * 3], [[other] * 3], None
    if isinstance(rule, (Abs, Rel)):
        allowed = rule.value if isinstance(rule, Abs) else rule.value * abs(value)
        step = allowed if allowed > 0 else _eps(value) * 10
        inside = [[value + 0.5 * allowed] * 3, [value - 0.5 * allowed] * 3]
        return inside, [[value + 1.5 * step] * 3, [value - 1.5 * step] * 3], None
    if isinstance(rule, Decimals):
        unit = 10**-rule.places
        return [[value] * 3], [[value + unit] * 3, [value - unit] * 3], None
    if isinstance(rule, Range):
        inside, outside = [], []
        lo, hi = rule.min, rule.max
        for b, sign in ((lo, 1), (hi, -1)):
            if b is None:
                continue
            e = min(_eps(b) * 1e3, (hi - lo) / 4 if lo is not None and hi is not None and hi > lo else 1e9)
            inside.append([b + sign * e] * 3)
            outside.append([b - sign * e] * 3)
            if rule.exclusive:
                outside.append([b] * 3)
        return inside, outside, None
    if isinstance(rule, Stat):
        base = list(sample) if rule.against_metric is None else [10.0, 10.2, 9.9, 10.1, 10.05]
        spread = statistics.pstdev(base) or 1.0
        shifted = [v + 20 * spread + abs(statistics.fmean(base)) * 0.5 + 1 for v in base]
        lower = [v - (s - v) for v, s in zip(base, shifted, strict=True)]
        same = list(base)
        if rule.expect == "no-difference":
            return [same], [shifted, lower], base
        if rule.expect == "greater":
            return [shifted], [same, lower], base
        return [lower], [same, shifted], base
    raise AssertionError(f"no perturbation written for tolerance kind {rule.kind}: add one here")


def _judge(run, row, ef, metric, values, other):
    metrics = {metric: {"values": values, "n": len(values)}}
    nums = [float(v) for v in values if isinstance(v, (int, float))]
    if len(nums) == len(values):
        metrics[metric].update(
            mean=statistics.fmean(nums),
            median=statistics.median(nums),
            min=min(nums),
            max=max(nums),
            std=statistics.stdev(nums) if len(nums) > 1 else 0.0,
        )
    if other is not None:
        metrics[other[0]] = {"values": other[1], "n": len(other[1])}
    vs = {v.metric: v for v in judge_metrics({**run, "metrics": metrics}, row, ef)}
    return vs[metric]


def _assert_can_fail(ef, row, e, rule, run, where):
    metric = _concrete(e.metric)
    assert rule is not None, f"{where}: no tolerance in force for {e.metric}"
    if rule.needs_value:
        assert e.value is not None, f"{where}: a {rule.kind} rule with no expected value"
    if isinstance(rule, Stat) and rule.against_metric is None:
        assert e.values and len(e.values) >= 2, (
            f"{where}: a stat rule against 'expected' with no 'values' sample"
        )
    inside, outside, base = _samples(rule, e.value, e.values)
    other = (rule.against_metric, base) if isinstance(rule, Stat) and rule.against_metric else None
    one = exp_mod.ExpectedFile(paper=ef.paper, row=ef.row, expectations=[e])
    for values in inside:
        v = _judge(run, row, one, metric, values, other)
        assert v.verdict == "PASS", (
            f"{where}: {values[:2]}… should PASS under {v.rule}: {v.verdict} — {v.why}"
        )
        assert v.basis in ("paper", "reference", "harness"), f"{where}: no basis on a checked metric"
    for values in outside:
        v = _judge(run, row, one, metric, values, other)
        assert v.verdict == "FAIL", (
            f"{where}: {values[:2]}… should FAIL under {v.rule}: {v.verdict} — {v.why}"
        )


@pytest.mark.parametrize("path,index", list(_cases()))
def test_expectation_passes_just_inside_and_fails_just_outside(path, index):
    ef, row = _load(path)
    e = ef.expectations[index]
    if (ef.paper, ef.row) in XFAIL:
        pytest.xfail(XFAIL[(ef.paper, ef.row)])
    where = f"{path}: expectation {index} ({e.metric})"
    run = _in_scope_run(e.scope)
    assert e.scope.mismatch(run) is None, f"{where}: test could not build a run inside scope {e.scope}"
    _assert_can_fail(ef, row, e, exp_mod.rule_for(e, row, _concrete(e.metric)), run, where)
    if e.off_scope is not None:
        off = _off_scope_run(e.scope)
        assert off is not None, (
            f"{where}: an off_scope rule on an expectation that holds everywhere never applies"
        )
        _assert_can_fail(ef, row, e, e.off_scope, off, where + " (off-scope rule)")


def test_the_walk_covers_every_file_and_every_tolerance_kind():
    assert len(FILES) >= 30
    kinds = set()
    for path in FILES:
        ef, row = _load(path)
        kinds |= {exp_mod.rule_for(e, row, _concrete(e.metric)).kind for e in ef.expectations}
    assert {"exact", "abs", "rel", "decimals", "range"} <= kinds, kinds


@pytest.mark.parametrize("expect", ["no-difference", "greater", "less"])
@pytest.mark.parametrize("against", ["expected", "metric:base.tok_s"])
@pytest.mark.parametrize("test", ["welch", "mannwhitney"])
def test_stat_rules_can_fail_through_the_same_walk(expect, against, test):
    """expected/ holds no stat rule today; the walk's stat perturbation is exercised here so one added
    tomorrow is covered by the same code."""
    from pack.manifest import Row

    rule = {"kind": "stat", "test": test, "expect": expect, "against": against}
    row = Row.model_validate(
        {
            "id": "r",
            "cell": "c",
            "experiment": "command",
            "target": {"hardware": "cpu"},
            "metrics": {"arm.tok_s": {"tolerance": rule}},
        }
    )
    e = {"metric": "arm.tok_s", "source": {"seed": "000.txt"}, "scope": {"gpu": ["L40S"]}}
    if against == "expected":
        e["values"] = [39.2, 39.3, 39.15, 39.28, 39.31, 39.22]
    ef = exp_mod.ExpectedFile.model_validate({"paper": "p", "row": "r", "expectations": [e]})
    x = ef.expectations[0]
    _assert_can_fail(ef, row, x, exp_mod.rule_for(x, row, x.metric), _in_scope_run(x.scope), "synthetic stat")
