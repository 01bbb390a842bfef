"""Rules at the edges of floating point: an overflowing aggregate, band or variance never passes and never
crashes the verifier (ERROR with a sentence); decimals rounds any finite float at any allowed place."""

from __future__ import annotations

import math
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from pack.tolerance import AGGREGATES, Tolerance

RULE = TypeAdapter(Tolerance)
BIG = sys.float_info.max * 0.95  # finite; two of them overflow a sum


def outcome(rule: dict, expected, values, aggregate="mean", reference=None) -> str:
    try:
        chk = RULE.validate_python(rule).check(expected, values, aggregate, reference)
    except (TypeError, ValueError) as e:  # what the verifier turns into ERROR
        return f"ERROR {e}"
    return "PASS" if chk.passed else "FAIL"


@pytest.mark.parametrize("aggregate", ["mean", "median"])
@pytest.mark.parametrize(
    "rule",
    [
        {"kind": "abs", "value": 1.0},
        {"kind": "rel", "value": 0.5},
        {"kind": "range", "min": 1e300},
        {"kind": "range", "max": 1.0},
    ],
)
def test_an_aggregate_that_overflows_never_passes(rule, aggregate):
    got = outcome(rule, 1e300, [BIG, BIG], aggregate)
    assert got.startswith("ERROR") and "overflows" in got


def test_a_band_that_overflows_to_infinity_is_refused_not_passed():
    got = outcome({"kind": "rel", "value": 1e300}, 1e10, [1e300])
    assert got.startswith("ERROR") and "overflows" in got


def test_a_welch_test_whose_variance_overflows_does_not_say_no_difference():
    got = outcome({"kind": "stat"}, None, [1e308, -1e308, 1e308], reference=[1.0, 1.1, 1.2])
    assert got.startswith("ERROR") and "overflows" in got


@pytest.mark.parametrize("places", [0, 4, 15])
@pytest.mark.parametrize("v", [1e300, -1.7e308, 5e-324, 123456789012345678.5])
def test_decimals_rounds_huge_and_tiny_numbers(v, places):
    assert outcome({"kind": "decimals", "places": places}, v, [v]) == "PASS"


def test_decimals_half_way_cases_round_half_up_in_decimal():
    assert outcome({"kind": "decimals", "places": 2}, 2.68, [2.675]) == "PASS"
    assert outcome({"kind": "decimals", "places": 2}, 2.67, [2.675]) == "FAIL"
    assert outcome({"kind": "decimals", "places": 4}, 6.1235, [6.12345]) == "PASS"


finite = st.floats(allow_nan=False, allow_infinity=False)
bad = st.sampled_from([math.nan, math.inf, -math.inf])
rules = st.sampled_from(
    [
        {"kind": "abs", "value": 1e-3},
        {"kind": "rel", "value": 0.05},
        {"kind": "range", "min": -1e308, "max": 1e308},
        {"kind": "decimals", "places": 3},
        {"kind": "exact"},
    ]
)


@settings(max_examples=80, deadline=None)
@given(
    rule=rules,
    expected=finite,
    values=st.lists(finite, min_size=1, max_size=5),
    aggregate=st.sampled_from(AGGREGATES),
)
def test_no_finite_input_crashes_a_rule(rule, expected, values, aggregate):
    outcome(rule, expected, values, aggregate)  # PASS, FAIL or ERROR with a sentence: never an exception


@settings(max_examples=60, deadline=None)
@given(
    rule=rules,
    expected=finite,
    values=st.lists(finite, min_size=0, max_size=4),
    nan=bad,
    at=st.integers(0, 4),
    aggregate=st.sampled_from(AGGREGATES),
)
def test_a_non_finite_repetition_never_passes(rule, expected, values, nan, at, aggregate):
    values.insert(min(at, len(values)), nan)
    assert outcome(rule, expected, values, aggregate) != "PASS"


@pytest.mark.parametrize(
    "pattern, model, ok",
    [
        ("L4", "NVIDIA L40S", False),
        ("L40S", "NVIDIA L4", False),
        ("A10", "NVIDIA A100-SXM4-80GB", False),
        ("A10", "NVIDIA A10G", False),
        ("A100", "NVIDIA A100-SXM4-80GB", True),
        ("L4", "NVIDIA L4", True),
        ("RTX 4060", "NVIDIA GeForce RTX 4060 Ti", False),
        ("RTX 4060", "NVIDIA GeForce RTX 4060 Laptop GPU", False),
        ("RTX 3080", "NVIDIA GeForce RTX 3080 Ti", False),
        ("GTX 1650", "NVIDIA GeForce GTX 1650 SUPER", False),
        ("H100", "NVIDIA H100 NVL", False),
        ("H100", "NVIDIA H100 80GB HBM3", True),
        ("RTX 4060", "NVIDIA GeForce RTX 4060", True),
        ("RTX 4060*", "NVIDIA GeForce RTX 4060 Ti", True),
        ("4060", "NVIDIA GeForce RTX 4060", False),
    ],
)
def test_gpu_scope_never_matches_another_model(pattern, model, ok):
    from pack.tolerance import gpu_matches

    assert gpu_matches(pattern, [model]) is ok
