"""Signals, first divergence, the uniform JSON (schema, expansion, merge) and the analysis maths,
on hand-made tensors with known distances (no model)."""

from __future__ import annotations

import copy
import json
import math

import pytest

torch = pytest.importorskip("torch")

from pack.errors import PackError  # noqa: E402
from pack.experiments.forensics import analysis, uniform  # noqa: E402
from pack.experiments.forensics import signals as sigmod  # noqa: E402
from pack.experiments.forensics.extraction import ExtractionSpec, Signals  # noqa: E402

pytestmark = pytest.mark.forensics

SPEC = ExtractionSpec(layers=(1, 2), positions=(-3, -2, -1), top_k=4, steps=5)  # P = 7
H, KD = 8, 4


def fake_signals(seed: int = 0) -> Signals:
    g = torch.Generator().manual_seed(seed)
    P = SPEC.n_unique
    return Signals(
        tokens=torch.arange(5, dtype=torch.int64),
        hidden={k: torch.randn(P, H, generator=g).bfloat16() for k in SPEC.layers},
        keys={k: torch.randn(P, KD, generator=g).bfloat16() for k in SPEC.layers},
        top_ids=torch.arange(P * 4, dtype=torch.int64).reshape(P, 4),
        top_logprobs=-torch.arange(P * 4, dtype=torch.float32).reshape(P, 4) / 10,
        prompt_len=20,
    )


def shifted(sig: Signals, delta: float) -> Signals:
    """Every hidden-state and key element moved by delta: the vector L2 is |delta| * sqrt(dim)."""
    s = copy.deepcopy(sig)
    s.hidden = {k: (v.float() + delta).bfloat16() for k, v in s.hidden.items()}
    s.keys = {k: (v.float() + delta).bfloat16() for k, v in s.keys.items()}
    return s


def test_digest_is_bit_exact_and_prefix_independent():
    a, b = fake_signals(), fake_signals()
    assert sigmod.digest(a) == sigmod.digest(b)
    assert sigmod.from_tensors(sigmod.to_tensors(a, "x/rep0"), "x/rep0").hidden[2].equal(a.hidden[2])
    b.keys[2].view(torch.int16)[6, 3] += 1  # one bf16 ulp
    assert sigmod.digest(a) != sigmod.digest(b)


def test_first_divergence_names_step_signal_layer_and_position():
    a = fake_signals()
    assert sigmod.first_divergence(a, copy.deepcopy(a), SPEC) is None
    b = copy.deepcopy(a)
    b.keys[2][4, 0] += 0.5  # unique row 4 = step 2, position -1 (D=3)
    b.hidden[1][6, 0] += 1.0  # later: step 4
    d = sigmod.first_divergence(a, b, SPEC)
    assert (d.step, d.signal, d.layer, d.position) == (2, "key_vectors", 2, -1)
    assert d.max_abs_diff == pytest.approx(0.5, rel=0.02)
    c = copy.deepcopy(a)
    c.hidden[1][1, 3] += 0.25  # prefill position -2
    d = sigmod.first_divergence(a, c, SPEC)
    assert (d.step, d.signal, d.layer, d.position) == (0, "hidden_states", 1, -2)
    t = copy.deepcopy(a)
    t.tokens[3] = 99
    d = sigmod.first_divergence(a, t, SPEC)
    assert (d.step, d.signal) == (3, "token") and "3 vs 99" in d.sentence()
    json.dumps(d.to_json())  # strict JSON: no NaN


def make_doc(entries) -> tuple[dict, dict]:
    """entries: (hardware_tag, label, is_baseline, [Signals per repetition])."""
    tensors, confs, runs = {}, [], []
    for hw, label, is_base, reps in entries:
        cid = f"{hw}_{label}"
        confs.append(
            {
                "config_id": cid,
                "label": label,
                "is_baseline": is_base,
                "hardware": f"NVIDIA {hw}",
                "hardware_tag": hw,
                "provider": "test",
                "variable_value": label,
                "cuda_version": "12.8",
                "torch_version": "2",
                "transformers_version": "5",
                "flash_attn_version": None,
                "python_version": "3.11",
                "status": "ok",
                "fixed_params": {
                    "compile": False,
                    "attention_impl": "sdpa",
                    "quantization": "bf16",
                    "tp_size": 1,
                    "ep_size": 1,
                    "concurrent_streams": False,
                    "batch_size": 1,
                    "cuda_version": "12.8",
                },
            }
        )
        d0 = sigmod.digest(reps[0])
        for i, sig in enumerate(reps):
            d = sigmod.digest(sig)
            key = f"{cid}/rep{i}" if d != d0 or i == 0 else f"{cid}/rep0"
            tensors.update(sigmod.to_tensors(sig, key))
            runs.append(
                {
                    "config_id": cid,
                    "rep_id": i,
                    "timestamp": "2026-01-01 00:00:00",
                    "runtime_seconds": 1.0,
                    "prompt_text": "p",
                    "signals_key": key,
                    "signals_sha256": d,
                    "bit_identical_to_rep0": d == d0,
                    "decode_steps": [
                        {"step": t, "token_id": int(x), "token_text": "t"}
                        for t, x in enumerate(sig.tokens.tolist())
                    ],
                }
            )
    doc = {
        "schema": uniform.SCHEMA_ID,
        "experiment_metadata": {
            "experiment_type": "batch_size",
            "variable_tested": "batch_size",
            "model": "m",
            "model_size": "1M",
            "architecture": "MoE",
            "sequence_length": 20,
            "decode_steps": SPEC.steps,
            "extraction_config": {
                "layers": list(SPEC.layers),
                "positions": list(SPEC.positions),
                "hidden_dim": H,
                "key_dim": KD,
                "top_k_logprobs": 4,
            },
            "date_created": "2026-01-01 00:00:00",
            "prompt": {"sha256": "abc"},
            "storage": {},
        },
        "configurations": confs,
        "runs": runs,
    }
    return doc, tensors


def test_schema_accepts_compact_and_expanded_and_rejects_broken_documents():
    base = fake_signals()
    doc, tensors = make_doc([("H100", "baseline", True, [base, base, base])])
    assert uniform.validate(doc) == []
    seed = uniform.expand(doc, tensors)
    assert uniform.validate(seed) == []
    runs = seed["runs"]
    # the seed's rule: bit-identical repetitions -> vectors only in the last one
    assert [("hidden_states" in r["decode_steps"][0]) for r in runs] == [False, False, True]
    assert runs[0]["signals_identical_to_rep"] == 2
    assert len(runs[2]["decode_steps"][0]["hidden_states"]["layer_2"]["pos_-1"]) == H
    broken = copy.deepcopy(seed)
    del broken["runs"][2]["decode_steps"][1]["key_vectors"]
    assert any("runs/2" in p for p in uniform.validate(broken))
    bad_meta = copy.deepcopy(doc)
    bad_meta["experiment_metadata"]["date_created"] = "yesterday"
    assert any("date_created" in p for p in uniform.validate(bad_meta))


def test_seed_json_round_trips_to_the_same_vectors():
    a = fake_signals(1)
    doc, tensors = make_doc([("H100", "baseline", True, [a, a])])
    seed = uniform.expand(doc, tensors, all_reps=True)
    loaded = json.loads(json.dumps(seed))
    back = uniform.tensors_from_seed_json(loaded)
    key = loaded["runs"][1]["signals_key"]
    assert torch.equal(back[f"{key}/hidden_states/layer_1"], a.hidden[1].float())
    assert torch.equal(back[f"{key}/logprobs/log_probs"], a.top_logprobs)
    # position -2 at step t is position -1 at step t-1: stored once, expanded twice
    s = seed["runs"][0]["decode_steps"]
    assert s[3]["hidden_states"]["layer_1"]["pos_-2"] == s[2]["hidden_states"]["layer_1"]["pos_-1"]


def test_analysis_distances_snr_and_cross_hardware():
    base = fake_signals(2)
    doc, tensors = make_doc(
        [
            ("A100", "baseline", True, [base, base, base]),
            ("A100", "bs2", False, [shifted(base, 0.5)] * 3),
            ("H100", "baseline", True, [shifted(base, 0.125)] * 3),
            ("H100", "bs2", False, [shifted(base, 0.625)] * 3),
        ]
    )
    rep = analysis.Experiment(doc, tensors).report()
    assert not rep["one_hardware_kind"] and rep["hardware"] == ["A100", "H100"]
    assert all(r["bit_identical"] and r["max"] == 0 for r in rep["reproducibility"].values())
    within = rep["within_hardware_detectability"]["A100"]["bs2"]["distance"]
    assert within["hidden_states/layer_1"]["mean"] == pytest.approx(0.5 * math.sqrt(H), rel=0.02)
    assert within["key_vectors/last"]["mean"] == pytest.approx(0.5 * math.sqrt(KD), rel=0.02)
    assert within["logprobs"]["mean"] == 0 and within["first_token_divergence"] == -1
    noise = rep["noise"]["hidden_states/layer_1"]  # mean over labels of A100 vs H100 = 0.125 * sqrt(H)
    assert noise == pytest.approx(0.125 * math.sqrt(H), rel=0.05)
    snr = rep["within_hardware_detectability"]["A100"]["bs2"]["snr"]["hidden_states/layer_1"]
    assert snr == pytest.approx(4.0, rel=0.05)
    assert (
        rep["within_hardware_detectability"]["A100"]["bs2"]["classification"]["hidden_states/layer_1"]
        == "Moderate"
    )
    cross = rep["cross_hardware_detectability"]["A100->H100"]["variants"]["bs2"]["ratio"][
        "hidden_states/layer_1"
    ]
    assert cross == pytest.approx(3.0, rel=0.05)  # |0.5-0.125| / 0.125
    row = analysis.summary_row(rep)
    assert row["headline"]["detectability"] == "Moderate"


def test_one_hardware_kind_reports_within_only_and_non_determinism():
    base = fake_signals(3)
    wobble = copy.deepcopy(base)
    wobble.hidden[2][5, 1] += 0.5
    doc, tensors = make_doc(
        [
            ("H100", "baseline", True, [base, wobble, base]),
            ("H100", "eager", False, [shifted(base, 0.25)] * 3),
        ]
    )
    rep = analysis.Experiment(doc, tensors).report()
    assert rep["one_hardware_kind"] and rep["cross_hardware_baseline"] == {} and rep["noise"] == {}
    assert not rep["reproducibility"]["H100_baseline"]["bit_identical"]
    row = analysis.summary_row(rep)
    assert row["headline"]["snr"] is None and row["headline"]["max_signal_l2"] > 0


def test_merge_concatenates_machines_and_refuses_mismatches():
    base = fake_signals(4)
    a = make_doc([("A100", "baseline", True, [base] * 3)])
    b = make_doc([("H100", "baseline", True, [shifted(base, 0.1)] * 3)])
    doc, tensors = uniform.merge([a, b, a], variable="cuda_version", experiment_type="cuda_version")
    assert [c["config_id"] for c in doc["configurations"]] == [
        "A100_baseline",
        "H100_baseline",
    ]  # a given twice: kept once
    assert doc["configurations"][0]["variable_value"] == "12.8"
    assert uniform.validate(doc) == []
    other = copy.deepcopy(b)
    other[0]["experiment_metadata"]["decode_steps"] = 30
    with pytest.raises(PackError, match="decode_steps differs"):
        uniform.merge([a, other])
    clash = make_doc([("A100", "baseline", True, [shifted(base, 1.0)] * 3)])
    with pytest.raises(PackError, match="different signals"):
        uniform.merge([a, clash])


def test_snr_bars_never_draw_a_missing_value_as_a_small_one():
    from pack.experiments.forensics.report import bar_values

    floor, heights, labels = bar_values([None, 1.007, 0.0, 0.784])
    assert floor == pytest.approx(0.0784)
    assert labels == ["n/a", "1.007", "0", "0.784"]
    assert heights == [floor, 1.007, floor, 0.784]  # the n/a bar is drawn empty (no colour) at the floor
    assert bar_values([None])[2] == ["n/a"]
