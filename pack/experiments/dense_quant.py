"""ECMoE Task 2's quantization on a dense model: the hidden states entering every MLP block.

Seed 004's Task 2 quantizes the dispatch states entering each MoE block (absmax / zero-point, one
scale per token, 8 / 4 / 2 bits) and reports reconstruction error and perplexity. A dense Llama has
no dispatch, but its MLP input is the same kind of tensor (the post-attention, RMS-normed residual
stream), so the same code (ecmoe/quantize.py, ecmoe/hooks.py) measures what the same compression
does to a trained model's real activations. One model load per process; one clean pass gives the
baseline perplexity and, through a StateWatcher, MSE / cosine / SNR of every (method, bits); then one
hooked pass per (method, bits) gives its perplexity.

The text is a real, offline file (default: the Apache-2.0 license Debian ships): absent is an error,
its path and sha256 are recorded in the run, and `text_sha256` pins it when given. It is cut into
`chunks` non-overlapping windows of `ctx_tokens` tokens; perplexity is exp(mean NLL) over every
next-token prediction inside the windows.

metrics: baseline.ppl  baseline.nll  n_tokens  n_mlp_blocks  text_sha256
         <method>_int<bits>.{mse, cosine, snr_db, ppl, ppl_delta}     (delta = ppl - baseline.ppl)
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError

from ..errors import ManifestError, PackError
from ..results import RepResult, RunContext
from ..strict import Strict

DEFAULT_TEXT = "/usr/share/common-licenses/Apache-2.0"


class Params(Strict):
    model: str
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    attention: Literal["sdpa", "eager"] = "sdpa"
    text: str = DEFAULT_TEXT
    text_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    ctx_tokens: int = Field(default=512, ge=16, le=8192)
    chunks: int = Field(default=4, ge=1)
    methods: list[Literal["absmax", "zeropoint"]] = ["absmax", "zeropoint"]
    bits: list[Literal[2, 4, 8]] = [8, 4, 2]
    cpu_threads: int | None = Field(default=None, ge=1)


def parse(params: dict) -> Params:
    try:
        return Params.model_validate(params)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(x) for x in err["loc"]) or "(params)"
        raise ManifestError(f"params.{where}: {err['msg']} (got {err.get('input')!r})") from None


def read_text(p: Params) -> tuple[str, dict]:
    path = Path(p.text).expanduser()
    if not path.is_file():
        raise PackError(
            f"the evaluation text {path} (params.text) does not exist on this machine; Debian ships it "
            "in the base-files package, or point params.text at another UTF-8 file"
        )
    raw = path.read_bytes()
    sha = hashlib.sha256(raw).hexdigest()
    if p.text_sha256 and sha != p.text_sha256:
        raise PackError(
            f"the evaluation text {path} has sha256 {sha[:16]}…, not params.text_sha256 "
            f"{p.text_sha256[:16]}…; it is another version of the file, so the numbers would not compare"
        )
    return raw.decode("utf-8"), {"path": str(path), "sha256": sha, "bytes": len(raw)}


def mlp_blocks(model) -> list[tuple[str, object]]:
    blocks = [(n, m) for n, m in model.named_modules() if n.endswith(".mlp") and not hasattr(m, "experts")]
    if not blocks:
        raise PackError(
            f"{type(model).__name__} has no dense '.mlp' blocks; this row needs a dense decoder "
            "such as Llama (an MoE model belongs to the ecmoe_task2 experiment)"
        )
    return blocks


def _model(p: Params, ctx: RunContext):
    from ..models.sources import load_causal_lm

    key = ("dense_quant.model", p.model, p.dtype, p.attention, ctx.device)
    if key not in ctx.cache:
        loaded = load_causal_lm(p.model, dtype=p.dtype, device=ctx.device, attention=p.attention)
        ctx.count("model_loads")
        ctx.cache[key] = loaded
    return ctx.cache[key]


def windows(tok, text: str, p: Params) -> list[list[int]]:
    ids = tok(text, add_special_tokens=False)["input_ids"]
    n = min(p.chunks, len(ids) // p.ctx_tokens)
    if n < 1:
        raise PackError(
            f"the text has {len(ids)} tokens, fewer than one window of params.ctx_tokens = "
            f"{p.ctx_tokens}; lower ctx_tokens or use a longer text"
        )
    return [ids[i * p.ctx_tokens : (i + 1) * p.ctx_tokens] for i in range(n)]


def evaluate(model, chunks: list[list[int]], device: str) -> dict:
    """exp(mean NLL) over every next-token prediction in the windows (float64 sum, fp32 logits)."""
    import torch
    import torch.nn.functional as F

    nll_sum, count = 0.0, 0
    with torch.inference_mode():
        for chunk in chunks:
            ids = torch.tensor([chunk], device=device)
            logits = model(input_ids=ids, use_cache=False).logits[0, :-1].float()
            nll_sum += float(F.cross_entropy(logits, ids[0, 1:], reduction="sum").double())
            count += ids.shape[1] - 1
    nll = nll_sum / count
    return {"ppl": math.exp(nll), "nll": nll, "n_tokens": count}


def run_rep(params: dict, ctx: RunContext) -> RepResult:
    from .ecmoe.hooks import StateWatcher, attach_compression
    from .ecmoe.task2 import tag

    p = parse(params)
    if p.cpu_threads and ctx.device == "cpu":
        import torch

        torch.set_num_threads(p.cpu_threads)
    text, text_facts = read_text(p)
    loaded = _model(p, ctx)
    model, tok = loaded.model, loaded.tokenizer
    ctx.provenance.setdefault("model", {k: v for k, v in loaded.info.items() if k != "checkpoint"})
    ctx.provenance["text"] = text_facts
    blocks = mlp_blocks(model)
    chunks = windows(tok, text, p)
    device = str(next(model.parameters()).device)
    configs = [(m, b) for m in p.methods for b in p.bits]
    watcher = StateWatcher(configs, max_tokens=10**9)
    with watcher.attach(blocks):
        base = evaluate(model, chunks, device)
    stats = watcher.summary()
    res = RepResult(info={"text": text_facts, "windows": len(chunks), "ctx_tokens": p.ctx_tokens})
    res.metrics.update(
        {
            "baseline.ppl": base["ppl"],
            "baseline.nll": base["nll"],
            "n_tokens": base["n_tokens"],
            "n_mlp_blocks": len(blocks),
            "text_sha256": text_facts["sha256"],
        }
    )
    ctx.log(f"baseline ppl {base['ppl']:.4f} over {base['n_tokens']} tokens of {text_facts['path']}")
    table = []
    for method, bits in configs:
        t = tag(method, bits)
        for name, value in stats[(method, bits)].items():
            res.metrics[f"{t}.{name}"] = value
        with attach_compression(blocks, method, bits, "compressed"):
            out = evaluate(model, chunks, device)
        res.metrics[f"{t}.ppl"] = out["ppl"]
        res.metrics[f"{t}.ppl_delta"] = out["ppl"] - base["ppl"]
        ctx.log(
            f"{t}: snr {stats[(method, bits)]['snr_db']:.2f} dB, ppl {out['ppl']:.4f} "
            f"({out['ppl'] - base['ppl']:+.4f})"
        )
        table.append({"method": method, "bits": bits, "ppl": out["ppl"], **stats[(method, bits)]})
    (ctx.rep_dir / "dense_quant.json").write_text(
        json.dumps({"baseline": base, "text": text_facts, "rows": table}, indent=2, default=float)
    )
    return res
