"""The rule language (pack/tolerance.py): GPU scope matching, non-finite repetitions, decimal rounding."""

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from pack.tolerance import Check, Scope, Stat, Tolerance, gpu_matches, round_decimal
from pack.verify import MetricVerdict, RowVerdict

T = TypeAdapter(Tolerance)


@pytest.mark.parametrize(
    "patterns,models,ok",
    [
        (["A100"], ["NVIDIA A100-SXM4-80GB"], True),
        (["a100"], ["NVIDIA A100-SXM4-80GB"], True),
        (["A10"], ["NVIDIA A100-SXM4-80GB"], False),
        (["A10"], ["NVIDIA A10"], True),
        (["L4"], ["NVIDIA L40S"], False),
        (["L4"], ["NVIDIA L4"], True),
        (["L40S"], ["NVIDIA L40S"], True),
        (["RTX 4060"], ["NVIDIA GeForce RTX 4060 Laptop GPU"], False),  # another GPU (256 vs 272 GB/s)
        (["RTX 4060*"], ["NVIDIA GeForce RTX 4060 Laptop GPU"], True),  # a glob means the family
        (["RTX 406"], ["NVIDIA GeForce RTX 4060"], False),
        (["GeForce RTX 4060"], ["NVIDIA GeForce RTX 4060"], True),
        (["T4"], ["Tesla T4"], True),
        (["NVIDIA H100"], ["NVIDIA H100 80GB HBM3"], True),
        (["H100"], ["NVIDIA H100_PCIE"], True),
        (["H10"], ["NVIDIA H100 80GB HBM3"], False),
        (["*4060*"], ["NVIDIA GeForce RTX 4060"], True),
        (["L4*"], ["NVIDIA L40S"], True),  # an explicit glob is the user's choice
        (["A100-*"], ["NVIDIA A100"], False),
        (["cpu"], [], True),
        (["CPU"], [], True),
        (["cpu"], ["NVIDIA L4"], False),
        (["L4"], [], False),
        ([], ["NVIDIA L4"], False),
        ("L4", ["NVIDIA L4"], True),
    ],
)
def test_gpu_matches(patterns, models, ok):
    assert gpu_matches(patterns, models) is ok


def test_scope_gpu_matches_and_mismatch_use_the_same_rule():
    s = Scope(gpu=["L4"])
    assert not s.gpu_matches(["NVIDIA L40S"]) and s.gpu_matches(["NVIDIA L4"])
    assert "L4" in s.mismatch({"gpu_models": ["NVIDIA L40S"]})
    assert Scope().gpu_matches(["anything"])


NUMERIC_RULES = [
    ({"kind": "abs", "value": 0.1}, 1.0),
    ({"kind": "rel", "value": 0.05}, 1.0),
    ({"kind": "range", "min": 0, "max": 2}, None),
    ({"kind": "decimals", "places": 2}, 1.0),
    ({"kind": "exact"}, 1.0),
]


@pytest.mark.parametrize("rule,expected", NUMERIC_RULES)
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("aggregate", ["mean", "median", "min", "max", "first", "last"])
def test_a_non_finite_repetition_never_passes(rule, expected, bad, aggregate):
    values = [1.0, 1.0, bad, 1.0, 1.0]  # median/first/last/min would all ignore it
    chk = T.validate_python(rule).check(expected, values, aggregate)
    assert not chk.passed and "non-finite" in chk.why
    assert (
        T.validate_python(rule).check(expected, [1.0] * 5, aggregate).passed
    )  # the same rule passes otherwise


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_stat_rules_refuse_non_finite_samples_on_either_side(bad):
    rule = T.validate_python({"kind": "stat", "expect": "no-difference"})
    ok = [1.0, 1.1, 0.9, 1.05]
    assert rule.check(None, ok, "mean", ok).passed
    assert not rule.check(None, ok + [bad], "mean", ok).passed
    assert not rule.check(None, ok, "mean", ok + [bad]).passed


def test_stat_against_metric_is_parsed_once_and_typed():
    assert T.validate_python({"kind": "stat", "against": "metric:base.tok_s"}).against_metric == "base.tok_s"
    assert T.validate_python({"kind": "stat"}).against_metric is None
    with pytest.raises(ValidationError):
        Stat(kind="stat", against="metric:")


@pytest.mark.parametrize(
    "v,places,want",
    [
        (2.675, 2, "2.68"),  # binary round() gives 2.67: the double is 2.67499999...
        (6.12345, 4, "6.1235"),
        (0.125, 2, "0.13"),  # half up, not half even
        (1.0, 4, "1.0000"),
        (-2.675, 2, "-2.68"),
    ],
)
def test_decimals_round_half_up_in_decimal(v, places, want):
    assert str(round_decimal(v, places)) == want


def test_decimals_rule_uses_decimal_rounding():
    rule = T.validate_python({"kind": "decimals", "places": 2})
    assert rule.check(2.68, [2.675], "mean").passed  # binary round(2.675, 2) == 2.67 would FAIL this
    assert not rule.check(2.67, [2.675], "mean").passed


@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6), st.integers(0, 6))
def test_decimals_rule_agrees_with_itself(v, places):
    rule = T.validate_python({"kind": "decimals", "places": places})
    assert rule.check(v, [v], "mean").passed


@pytest.mark.parametrize(
    "rule",
    [
        {"kind": "rel", "value": float("nan")},
        {"kind": "abs", "value": float("inf")},
        {"kind": "abs", "value": "0.1"},
        {"kind": "range", "min": float("-inf")},
        {"kind": "range", "max": 1e400},
        {"kind": "stat", "alpha": float("nan")},
        {"kind": "decimals", "places": 2.5},
        {"kind": "abs", "value": True},
    ],
)
def test_numbers_that_would_switch_a_rule_off_are_refused(rule):
    with pytest.raises(ValidationError):
        T.validate_python(rule)


def test_every_rule_describes_itself_and_returns_a_check():
    for rule, expected in NUMERIC_RULES + [({"kind": "stat"}, None)]:
        r = T.validate_python(rule)
        assert r.describe()
        chk = r.check(expected, [1.0, 1.0], "mean", [1.0, 1.0])
        assert isinstance(chk, Check) and chk.why


def test_range_band_is_one_sided():
    assert T.validate_python({"kind": "range", "min": 70}).check(None, [80.0]).band == (70, None)


def test_json_of_a_verdict_with_nan_is_valid_json():
    mv = MetricVerdict(metric="m", verdict="FAIL", measured=math.nan, values=[1.0, math.inf], expected=1.0)
    rv = RowVerdict(
        paper="p",
        row="r",
        run_id="x",
        run_dir="d",
        scale="smoke",
        hardware="cpu",
        gpu_models=[],
        verdict="FAIL",
        why="",
        metrics=[mv],
    )
    text = json.dumps(rv.to_json(), allow_nan=False)
    m = json.loads(text)["metrics"][0]
    assert m["measured"] is None and m["values"] == [1.0, None] and "measured=nan" in m["non_finite"]
