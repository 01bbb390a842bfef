"""A/B statistics and the statistical contamination reasons (pack.experiments.throughput.ab)."""

import math

import pytest

from pack.errors import ManifestError
from pack.experiments.throughput import ab
from pack.experiments.throughput.params import ab_config

# Paper B's seed: clean baseline 39.28 ± 0.05 tok/s; the contaminated run's variance ratio was 21x.
# Three repetitions m - s, m, m + s have a sample std of exactly s.
BASE = [39.234, 39.280, 39.326]  # std 0.046
NOISY_21X = [39.070, 39.280, 39.490]  # std 0.210: (0.210 / 0.046)^2 = 20.8x

pytestmark = pytest.mark.throughput


def spread(std, mean=39.28, decimals=4):
    return [round(mean - std, decimals), mean, round(mean + std, decimals)]


def _samples(a, b):
    return {
        "baseline": {"decode_tok_s": a, "prefill_ms": [12.3] * len(a)},
        "mcr": {"decode_tok_s": b, "prefill_ms": [12.0] * len(b)},
    }


def test_arm_stats_mean_std_cv():
    s = ab.arm_stats([39.0, 40.0, 41.0])
    assert s.n == 3 and s.mean == pytest.approx(40.0)
    assert s.std == pytest.approx(1.0) and s.cv == pytest.approx(0.025)
    assert ab.arm_stats([5.0]).std == 0.0
    assert ab.arm_stats([]).n == 0 and math.isnan(ab.arm_stats([]).mean)


def test_resolution_floor_is_the_print_step_and_the_timer_tick():
    assert ab.decimal_step([39.28, 39.2, 40.0]) == pytest.approx(0.01)
    assert ab.decimal_step([39.234]) == pytest.approx(0.001) and ab.decimal_step([39.0]) == 1.0
    # "39.28 tok/s" (2 decimals), ggml's microsecond timer, 32 tokens: the print step dominates.
    printed = ab.resolution_std([39.28, 39.28], 1e-6, 32)
    assert printed == pytest.approx(math.hypot(0.01, 39.28**2 * 1e-6 / 32) / math.sqrt(12))
    assert printed == pytest.approx(0.00289, rel=1e-2)
    # The timer term alone: r^2 dt / n / sqrt(12); a coarse 1 ms timer over 32 tokens at 39.28 tok/s.
    timer_only = ab.resolution_std([39.28 + math.pi * 1e-5], 1e-3, 32)  # a raw float: no print step
    assert timer_only == pytest.approx(39.28**2 * 1e-3 / 32 / math.sqrt(12), rel=1e-3)


def test_seed_21x_variance_is_seen_as_21x_and_is_contamination():
    # The old 1 % CV floor (0.39 tok/s) read this as 0.9975x; the resolution floor leaves it alone.
    res = ab.summarize_ab(_samples(BASE, NOISY_21X), ab.ABConfig(reference="baseline", tokens_timed=32), [])
    assert res.metrics["mcr.variance_ratio"] == pytest.approx((0.210 / 0.046) ** 2, rel=1e-3)
    assert len(res.reasons) == 1 and "beyond the row's limit of 5x" in res.reasons[0]
    assert "arm 'mcr' scatters" in res.reasons[0] and "Brown-Forsythe p" in res.reasons[0]
    assert res.info["arms"]["mcr"]["variance_band"] == "contaminated"


@pytest.mark.parametrize("ratio", [1.0, 1.25, 1.5])
def test_seed_clean_band_1x_to_1_5x_is_clean(ratio):
    arm = spread(0.046 * math.sqrt(ratio) - 1e-5)
    res = ab.summarize_ab(_samples(BASE, arm), ab.ABConfig(tokens_timed=32), [])
    assert res.metrics["mcr.variance_ratio"] == pytest.approx(ratio, rel=2e-3)
    assert res.reasons == []
    assert res.info["arms"]["mcr"]["variance_band"].startswith("clean")


def test_limit_holds_either_way_and_between_band_and_limit_is_not_contamination():
    res = ab.summarize_ab(_samples(NOISY_21X, BASE), ab.ABConfig(), [])
    assert "arm 'baseline' scatters" in res.reasons[0]
    res = ab.summarize_ab(_samples(BASE, spread(0.046 * math.sqrt(3.0))), ab.ABConfig(), [])
    assert res.reasons == [] and res.info["arms"]["mcr"]["variance_band"].startswith("between")
    res = ab.summarize_ab(_samples(BASE, spread(0.046 * math.sqrt(5.2))), ab.ABConfig(), [])
    assert len(res.reasons) == 1


def test_two_arms_quieter_than_the_resolution_compare_as_1x():
    res = ab.summarize_ab(_samples([39.28] * 3, [39.23] * 3), ab.ABConfig(tokens_timed=32), [])
    assert res.metrics["mcr.variance_ratio"] == pytest.approx(1.0) and res.reasons == []


def test_delta_interval_and_variance_test_are_reported_and_reproducible():
    samples = _samples(BASE, [v - 0.05 for v in BASE])
    res = ab.summarize_ab(samples, ab.ABConfig(), [])
    m = res.metrics
    assert m["mcr.delta_pct"] == pytest.approx(-0.1273, abs=1e-3)  # the seed's -0.13 %
    assert m["mcr.delta_pct_ci_low"] < m["mcr.delta_pct"] < m["mcr.delta_pct_ci_high"]
    assert m["mcr.delta_pct_ci_low"] < 0 < m["mcr.delta_pct_ci_high"]  # 3 reps at 0.046 cannot resolve 0.05
    shifted = ab.summarize_ab(_samples(BASE, [v - 0.3 for v in BASE]), ab.ABConfig(), []).metrics
    assert shifted["mcr.delta_pct_ci_high"] < 0  # 0.3 tok/s apart: the interval excludes 0
    assert ab.summarize_ab(samples, ab.ABConfig(), []).metrics == m  # fixed seed: the same interval
    assert m["mcr.variance_p"] == pytest.approx(1.0)  # identical scatter
    assert 0 < ab.summarize_ab(_samples(BASE, NOISY_21X), ab.ABConfig(), []).metrics["mcr.variance_p"] < 1
    # With 10 repetitions a 21x variance is significant (Brown-Forsythe); with 3 it cannot be.
    base10 = [39.28 + 0.046 * x for x in (-1.5, -1, -0.5, -0.2, 0, 0, 0.2, 0.5, 1, 1.5)]
    noisy10 = [39.28 + 0.21 * x for x in (-1.5, -1, -0.5, -0.2, 0, 0, 0.2, 0.5, 1, 1.5)]
    assert ab.summarize_ab(_samples(base10, noisy10), ab.ABConfig(), []).metrics["mcr.variance_p"] < 0.05


def test_single_repetitions_have_no_variance_ratio():
    res = ab.summarize_ab(_samples([39.28], [39.23]), ab.ABConfig(), [])
    assert "mcr.variance_ratio" not in res.metrics and "mcr.delta_pct_ci_low" not in res.metrics
    assert res.metrics["mcr.delta_pct"] == pytest.approx(-0.1273, abs=1e-3) and res.reasons == []


def test_floor_applies_only_on_its_gpu():
    cfg = ab.ABConfig(floor={"value": 38, "gpu": ["RTX 4060"]})
    slow = _samples([37.9, 37.9, 37.9], [37.8, 37.8, 37.8])
    res = ab.summarize_ab(slow, cfg, ["NVIDIA GeForce RTX 4060"])
    assert sum("under the row's floor of 38" in r for r in res.reasons) == 2
    res = ab.summarize_ab(slow, cfg, ["NVIDIA H100 80GB HBM3"])
    assert res.reasons == [] and "holds on RTX 4060" in res.info["floor"]["why_not"]
    assert len(ab.summarize_ab(slow, ab.ABConfig(floor=38), []).reasons) == 2  # no GPU scope: everywhere
    # The one exact matcher (pack.tolerance.gpu_matches), never a substring: an L4 floor is not an L40S's.
    l4 = ab.ABConfig(floor={"value": 38, "gpu": ["L4"]})
    assert ab.summarize_ab(slow, l4, ["NVIDIA L40S"]).reasons == []
    assert len(ab.summarize_ab(slow, l4, ["NVIDIA L4"]).reasons) == 2
    on_cpu = ab.ABConfig(floor={"value": 38, "gpu": ["cpu"]})
    assert len(ab.summarize_ab(slow, on_cpu, []).reasons) == 2


def test_reference_cv_flags_arms_noisier_than_the_clean_run_on_its_gpu():
    # The seed: clean 39.28 ± 0.05 tok/s (CV 0.127 %); a 21x variance is a CV of about 0.58 %.
    cfg = ab_config({"ab": {"reference_cv": {"value": 0.05 / 39.28, "gpu": ["RTX 4060"]}}})
    hit = _samples([39.0, 38.6, 39.05], [39.0, 38.6, 39.05])  # both arms equally hit: between-arm ratio 1x
    res = ab.summarize_ab(hit, cfg, ["NVIDIA GeForce RTX 4060"])
    assert res.metrics["mcr.variance_ratio"] == pytest.approx(1.0)
    assert sum("the clean reference's (CV 0.127%)" in r for r in res.reasons) == 2
    assert res.metrics["baseline.variance_vs_clean"] > 5
    quiet = _samples([39.27, 39.28, 39.30], [39.22, 39.24, 39.23])
    assert ab.summarize_ab(quiet, cfg, ["NVIDIA GeForce RTX 4060"]).reasons == []
    res = ab.summarize_ab(hit, cfg, ["NVIDIA L40S"])  # another GPU: its own noise, not judged
    assert res.reasons == [] and "holds on RTX 4060" in res.info["clean_reference"]["why_not"]


def test_config_from_params_and_unknown_key():
    cfg = ab_config(
        {
            "ab": {
                "metric": "decode_tok_s",
                "floor": {"value": 38, "gpu": ["RTX 4060"]},
                "extra_metrics": ["prefill_ms"],
                "order": "alternate",
            }
        }
    )
    assert cfg.floor.value == 38 and cfg.floor.gpu == ("RTX 4060",) and cfg.extra_metrics == ("prefill_ms",)
    assert ab_config({"ab": {"floor": 10}}).floor.value == 10.0 and ab_config({}) == ab.ABConfig()
    with pytest.raises(
        ManifestError,
        match="unknown key 'params.ab.variance_ratio_limt'; did you mean 'variance_ratio_limit'",
    ):
        ab_config({"ab": {"variance_ratio_limt": 5}})
    with pytest.raises(ManifestError, match="params.ab.order"):
        ab_config({"ab": {"order": "shuffled"}})
    with pytest.raises(ManifestError, match="params.ab.variance_ratio_limit"):
        ab_config({"ab": {"variance_ratio_limit": "5"}})  # a number, never a string


def test_table_lists_runs_in_measured_order():
    rows = ab.table(_samples([1.0, 2.0], [3.0, 4.0]), "decode_tok_s")
    assert [(r["run"], r["arm"], r["decode_tok_s"]) for r in rows] == [
        (1, "baseline", 1.0),
        (1, "mcr", 3.0),
        (2, "baseline", 2.0),
        (2, "mcr", 4.0),
    ]


# Shaped like llama.cpp's A/A null re-run on an H200 (paperB:llamacpp-null-mid, rep_warmup 1, 2026-12-02:
# mcr CV 0.085 %, baseline CV 0.41 % from one repetition at 601.39 among nine at 608.45-610.13); these
# ten-value series are made up around those figures (CV 0.06 % and 0.42 %), not the run's own values.
H200_MCR = [609.31, 609.52, 608.83, 609.95, 609.40, 609.71, 609.12, 609.60, 608.98, 609.44]
H200_BASE = [609.02, 601.39, 608.45, 609.88, 610.13, 609.30, 608.97, 609.66, 609.20, 608.71]


def test_one_transient_repetition_among_ten_is_a_warning_not_contamination():
    res = ab.summarize_ab(_samples(H200_BASE, H200_MCR), ab.ABConfig(tokens_timed=256), [])
    both_ways = max(res.metrics["mcr.variance_ratio"], 1 / res.metrics["mcr.variance_ratio"])
    assert both_ways > 5  # the plain ratio is reported as measured
    assert res.reasons == []
    assert "one transient" in res.info["arms"]["mcr"]["variance_band"]
    assert "repetition 2 (601.39)" in res.info["warnings"][0]
    kept, dropped = ab.sustained_ratio(H200_BASE, H200_MCR, 0.0, 0.0)
    assert dropped == 1 and max(kept, 1 / kept) < 5  # inside the limit without it


def test_a_sustained_inflation_over_ten_repetitions_is_still_contamination():
    # three repetitions of ten disturbed: leaving the widest out still leaves the arm far noisier
    noisy = list(H200_MCR)
    for i, d in ((1, -7.0), (4, 6.0), (7, -5.5)):
        noisy[i] += d
    res = ab.summarize_ab(_samples(H200_MCR, noisy), ab.ABConfig(tokens_timed=256), [])
    assert len(res.reasons) == 1 and "without its widest repetition" in res.reasons[0]
    assert res.info.get("warnings") is None


def test_three_repetitions_are_judged_plainly():
    # leaving one of three out says nothing about a quiet scatter: the seed's 21x stays one reason
    assert ab.sustained_ratio(BASE, NOISY_21X) == (
        ab.variance_ratio(ab.arm_stats(BASE), ab.arm_stats(NOISY_21X)),
        None,
    )
