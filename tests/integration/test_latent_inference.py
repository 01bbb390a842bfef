"""Seed 002 Ablation 5 on a real (tiny) transformers decoder: text prompt vs soft-token prefixes."""

import time

import pytest

from pack.experiments import latent_inference
from pack.results import CACHE, RunContext


def test_text_vs_soft_tokens_on_cpu(tmp_path):
    ctx = RunContext(
        run_dir=tmp_path,
        rep_dir=tmp_path,
        rep_index=0,
        reps=1,
        scale="smoke",
        seed=0,
        device="cpu",
        hardware="cpu",
        deadline=time.monotonic() + 600,
        cache=CACHE,
    )
    res = latent_inference.run_rep(
        {
            "model": "synthetic:tiny-llama",
            "n_samples": 4,
            "max_new_tokens": 3,
            "batch_sizes": [1, 4],
            "soft_tokens": [64, 32],
            "prompt_tokens": 150,
        },
        ctx,
    )
    assert res.errors == {}
    m = res.metrics
    anchor = m["latent64.prompt_tokens"] - 64
    assert m["text.prompt_tokens"] == 150 and anchor > 0 and m["latent32.prompt_tokens"] == 32 + anchor
    for cfg in ("text", "latent64", "latent32"):
        for b in (1, 4):
            assert m[f"{cfg}.b{b}.ms_per_sample"] > 0 and m[f"{cfg}.b{b}.samples_per_s"] > 0
    # tiny-llama: 4 layers x 2 KV heads x 32 dims x 2 (K and V) x 4 bytes = 2 KiB per token and sequence;
    # the returned cache holds the prompt and all but the last generated token
    assert m["text.b4.kv_cache_mb"] == pytest.approx(4 * (150 + 3 - 1) * 2048 / 2**20)
    assert m["latent32.b4.kv_cache_mb"] < m["latent64.b4.kv_cache_mb"] < m["text.b4.kv_cache_mb"]
    # Ablation 2's KV-cache savings, read from the cache a prefill returns (equal to the formula here)
    assert m["kv_bytes_per_token"] == 2048
    assert m["latent64.kv_tokens_saved"] == 150 - m["latent64.prompt_tokens"]
    assert m["latent32.kv_saved_mb"] == pytest.approx((150 - 32 - anchor) * 2048 / 2**20)
    assert "latent64.b1.speedup" in m
    assert "no CUDA device" in res.not_applicable["text.b1.peak_mem_gb"]
    assert (tmp_path / "inference_table.json").is_file()


def test_params_are_checked_before_the_model_loads(tmp_path):
    from pack.errors import ManifestError

    ctx = RunContext(
        run_dir=tmp_path,
        rep_dir=tmp_path,
        rep_index=0,
        reps=1,
        scale="smoke",
        seed=0,
        device="cpu",
        hardware="cpu",
        deadline=time.monotonic() + 600,
        cache=CACHE,
    )
    with pytest.raises(
        ManifestError, match=r"'params.batch_sizes\[0\]': Input should be greater than or equal to 1"
    ):
        latent_inference.run_rep({"model": "synthetic:tiny-llama", "batch_sizes": [0]}, ctx)
    with pytest.raises(
        ManifestError, match=r"unknown key 'params.max_new_token'; did you mean 'max_new_tokens'"
    ):
        latent_inference.run_rep({"model": "synthetic:tiny-llama", "max_new_token": 3}, ctx)
