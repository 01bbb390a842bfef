"""A/B statistics and the statistical contamination reasons (pack.experiments.throughput.ab)."""

import math

import pytest

from pack.errors import ManifestError
from pack.experiments.throughput import ab


def test_arm_stats_mean_std_cv():
    s = ab.arm_stats([39.0, 40.0, 41.0])
    assert s["n"] == 3 and s["mean"] == pytest.approx(40.0)
    assert s["std"] == pytest.approx(1.0) and s["cv"] == pytest.approx(0.025)
    assert ab.arm_stats([5.0])["std"] == 0.0
    assert ab.arm_stats([])["n"] == 0 and math.isnan(ab.arm_stats([])["mean"])


def test_variance_ratio_uses_the_cv_floor_so_two_quiet_arms_compare_as_1x():
    quiet_a = ab.arm_stats([39.28, 39.281, 39.279])
    quiet_b = ab.arm_stats([39.23, 39.2301, 39.2299])  # 10x less scatter, both far below 1% CV
    assert ab.variance_ratio(quiet_a, quiet_b, min_cv=0.01) == pytest.approx(1.0, rel=1e-2)
    assert ab.variance_ratio(quiet_a, quiet_b, min_cv=0.0) == pytest.approx(0.01, rel=0.05)
    noisy = ab.arm_stats([30.0, 39.0, 48.0])  # CV ~23%
    assert ab.variance_ratio(quiet_a, noisy) > 100


def _samples(a, b):
    return {"baseline": {"decode_tok_s": a, "prefill_ms": [12.3] * len(a)},
            "mcr": {"decode_tok_s": b, "prefill_ms": [12.0] * len(b)}}


def test_clean_seed_numbers_give_delta_and_no_reason():
    cfg = ab.ABConfig(reference="baseline", floor=38, floor_gpu=("RTX 4060",))
    metrics, reasons, info = ab.summarize_ab(_samples([39.27, 39.28, 39.29], [39.22, 39.23, 39.24]), cfg,
                                             ["NVIDIA GeForce RTX 4060"])
    assert reasons == []
    assert metrics["mcr.delta_pct"] == pytest.approx(-0.1273, abs=1e-3)  # the seed's -0.13 %
    assert metrics["mcr.variance_ratio"] == pytest.approx(1.0, rel=1e-2)
    assert metrics["mcr.prefill_ms_delta_pct"] == pytest.approx(100 * (12.0 - 12.3) / 12.3, abs=1e-3)
    assert info["floor"]["applies"] is True


def test_variance_beyond_limit_names_the_noisy_arm_either_way():
    cfg = ab.ABConfig()
    _, reasons, _ = ab.summarize_ab(_samples([39.3, 39.2, 39.3], [30.0, 41.0, 36.0]), cfg, [])
    assert len(reasons) == 1 and "beyond the row's limit of 5x" in reasons[0] and "arm 'mcr' scatters" in reasons[0]
    _, reasons, _ = ab.summarize_ab(_samples([30.0, 41.0, 36.0], [39.3, 39.2, 39.3]), cfg, [])
    assert "arm 'baseline' scatters" in reasons[0]


def test_floor_applies_only_on_its_gpu():
    cfg = ab.ABConfig(floor=38, floor_gpu=("RTX 4060",))
    slow = _samples([37.9, 37.9, 37.9], [37.8, 37.8, 37.8])
    _, reasons, _ = ab.summarize_ab(slow, cfg, ["NVIDIA GeForce RTX 4060 Laptop GPU"])
    assert sum("under the row's floor of 38" in r for r in reasons) == 2
    _, reasons, info = ab.summarize_ab(slow, cfg, ["NVIDIA H100 80GB HBM3"])
    assert reasons == [] and "holds on RTX 4060" in info["floor"]["why_not"]
    _, reasons, _ = ab.summarize_ab(slow, ab.ABConfig(floor=38), [])  # no GPU scope: everywhere
    assert len(reasons) == 2


def test_reference_cv_flags_arms_noisier_than_the_clean_run_on_its_gpu():
    # The seed: clean 39.28 ± 0.05 tok/s (CV 0.127 %); a 21x variance is a CV of about 0.58 %.
    cfg = ab.ABConfig.from_params({"reference_cv": {"value": 0.05 / 39.28, "gpu": ["RTX 4060"]}})
    hit = _samples([39.0, 38.6, 39.05], [39.0, 38.6, 39.05])  # both arms equally hit: between-arm ratio 1x
    metrics, reasons, _ = ab.summarize_ab(hit, cfg, ["NVIDIA GeForce RTX 4060"])
    assert metrics["mcr.variance_ratio"] == pytest.approx(1.0)
    assert sum("the clean reference's (CV 0.127%)" in r for r in reasons) == 2
    assert metrics["baseline.variance_vs_clean"] > 5
    quiet = _samples([39.27, 39.28, 39.30], [39.22, 39.24, 39.23])
    assert ab.summarize_ab(quiet, cfg, ["NVIDIA GeForce RTX 4060"])[1] == []
    _, reasons, info = ab.summarize_ab(hit, cfg, ["NVIDIA L40S"])  # another GPU: its own noise, not judged
    assert reasons == [] and "holds on RTX 4060" in info["clean_reference"]["why_not"]


def test_config_from_params_and_unknown_key():
    cfg = ab.ABConfig.from_params({"metric": "decode_tok_s", "floor": {"value": 38, "gpu": ["RTX 4060"]},
                                   "extra_metrics": ["prefill_ms"]})
    assert cfg.floor == 38 and cfg.floor_gpu == ("RTX 4060",) and cfg.extra_metrics == ("prefill_ms",)
    assert ab.ABConfig.from_params({"floor": 10}).floor == 10.0
    with pytest.raises(ManifestError, match="variance_ratio_limt"):
        ab.ABConfig.from_params({"variance_ratio_limt": 5})


def test_arm_order_interleaves_and_alternates():
    assert [ab.arm_order(["a", "b"], i) for i in range(3)] == [["a", "b"]] * 3
    assert [ab.arm_order(["a", "b"], i, "alternate") for i in range(3)] == [["a", "b"], ["b", "a"], ["a", "b"]]


def test_table_lists_runs_in_measured_order():
    rows = ab.table(_samples([1.0, 2.0], [3.0, 4.0]), "decode_tok_s")
    assert [(r["run"], r["arm"], r["decode_tok_s"]) for r in rows] == [(1, "baseline", 1.0), (1, "mcr", 3.0),
                                                                       (2, "baseline", 2.0), (2, "mcr", 4.0)]
