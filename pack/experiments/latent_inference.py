"""Seed 002, Ablation 5 — inference cost of a text prompt versus soft-token prefixes.

The receiver generates the same number of tokens from three inputs:

    text       the full text prompt: `prompt_tokens` tokens of a GSM8K question (the seed's ~150)
    latent64   64 soft tokens (inputs_embeds) + the anchor "Answer: " as text tokens
    latent32   32 soft tokens + the anchor

at batch sizes 1, 4 and 8. Soft tokens are random vectors at the embedding table's scale: the cost
of a forward depends on the shapes, not on what the bridge put in them, so no trained bridge is
needed to measure it (quality is Ablations 1-4's business). Generation length is pinned
(min_new_tokens = max_new_tokens) so every configuration does the same decode work.

metrics, per configuration c and batch size b:
    c.prompt_tokens                 tokens the receiver reads before generating
    c.b<b>.ms_per_sample            wall time of all batches / samples (after one warm-up batch)
    c.b<b>.samples_per_s            throughput
    c.b<b>.kv_cache_mb              KV-cache bytes of the first batch at the end of generation, read
                                    from the cache generate returns (prompt + new tokens - 1: the last
                                    token's keys and values are never computed)
    c.b<b>.peak_mem_gb              torch.cuda.max_memory_allocated during generation (CUDA only)
    c.b<b>.extra_mem_gb             that peak minus the memory held before generation (activations + KV)
    latent<k>.b<b>.speedup          text ms_per_sample / latent ms_per_sample
    latent<k>.b<b>.mem_reduction_pct  1 - latent peak / text peak, in percent (CUDA only)

Ablation 2's "KV cache savings (tokens saved x 0.5 MB)", measured rather than taken from the plan:
    kv_bytes_per_token              bytes of the receiver's KV cache per token, read from the cache
                                    object a prefill actually returns (its key and value tensors),
                                    checked against 2 x layers x kv heads x head dim x dtype bytes
    latent<k>.kv_tokens_saved       text prompt tokens - latent prompt tokens (soft tokens + anchor)
    latent<k>.kv_saved_mb           tokens saved x kv_bytes_per_token, in MiB, per sequence
The plan's 0.5 MB per token is 2 x 32 layers x 32 heads x 128 x 2 bytes: Llama-3.1-8B has 8 KV
heads (grouped-query attention), so its bf16 cache holds 0.125 MiB per token.

params (`Params`): model, dtype, seed, n_samples, prompts ("synthetic" or a GSM8K JSONL), prompt_tokens,
        soft_tokens [64, 32], anchor, batch_sizes [1, 4, 8], max_new_tokens, warmup (1)
"""

from __future__ import annotations

import json
import math
import time
from typing import Annotated, Literal

from pydantic import Field, StrictInt

from ..errors import ManifestError, require
from ..results import RepResult, RunContext
from ..strict import PositiveInt, Strict
from .params import parse


class Params(Strict):
    """An inference-cost row's params (the one owner of them)."""

    model: str
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    device_map: str | None = None
    seed: StrictInt = 1234
    prompts: str = "synthetic"
    n_samples: PositiveInt = 100
    prompt_tokens: PositiveInt = 150
    soft_tokens: list[PositiveInt] = [64, 32]
    anchor: str = "Answer: "
    batch_sizes: list[PositiveInt] = [1, 4, 8]
    max_new_tokens: PositiveInt = 256
    warmup: Annotated[StrictInt, Field(ge=0)] = 1


def _prompt_ids(tok, p: Params) -> list[list[int]]:
    """p.n_samples prompts of exactly p.prompt_tokens tokens (a question repeated until long enough)."""
    from .wire_compression import load_prompts

    want = p.prompt_tokens
    out = []
    for text in load_prompts(p.prompts, p.n_samples, p.seed):
        ids = tok(text, add_special_tokens=False).input_ids
        if not ids:
            raise ManifestError("params.prompts: a prompt tokenized to nothing")
        while len(ids) < want:
            ids = ids + ids
        out.append(ids[:want])
    return out


def kv_cache_bytes(config, tokens: int, batch: int, bytes_per_value: int) -> int:
    layers = config.num_hidden_layers
    kv_heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    return 2 * layers * kv_heads * head_dim * tokens * batch * bytes_per_value


def cache_nbytes(cache) -> int:
    """Bytes held by a transformers KV cache (Cache object with .layers, or legacy tuples of tensors)."""
    layers = getattr(cache, "layers", None)
    if layers is not None:
        tensors = [
            t for layer in layers for t in (getattr(layer, "keys", None), getattr(layer, "values", None))
        ]
    else:
        tensors = [t for pair in cache for t in pair]
    return sum(t.numel() * t.element_size() for t in tensors if t is not None)


def measured_kv_bytes_per_token(torch, model, ids) -> int:
    """One prefill of `ids` [1, T]: the returned cache's bytes / T (what a cache holds, not a formula)."""
    with torch.inference_mode():
        out = model(input_ids=ids, use_cache=True)
    total = cache_nbytes(out.past_key_values)
    if total % ids.shape[1]:
        raise ManifestError(
            f"the KV cache holds {total} bytes for {ids.shape[1]} tokens, not a whole number per token"
        )
    return total // ids.shape[1]


def run_rep(params: dict, ctx: RunContext) -> RepResult:
    torch = require("torch", "hf", "the inference benchmark")
    p = parse(Params, params, "latent_inference")
    batch_sizes, soft, n, new = p.batch_sizes, p.soft_tokens, p.n_samples, p.max_new_tokens
    params = p.model_dump()
    from .ecmoe import model_io

    model, tok, _ = model_io.load_model(params, ctx)
    dev = model.get_input_embeddings().weight.device
    dtype = model.get_input_embeddings().weight.dtype
    cuda = dev.type == "cuda"
    emb = model.get_input_embeddings()
    gen = torch.Generator(device="cpu").manual_seed(p.seed)
    with torch.no_grad():
        std = float(emb.weight.float().std())
    anchor = tok(p.anchor, add_special_tokens=False).input_ids
    texts = torch.tensor(_prompt_ids(tok, p), dtype=torch.long)
    configs = {"text": None} | {f"latent{k}": k for k in soft}
    res = RepResult()
    per_token = measured_kv_bytes_per_token(torch, model, texts[:1].to(dev))
    analytic = kv_cache_bytes(model.config, 1, 1, dtype.itemsize)
    if (
        per_token != analytic
    ):  # a cache layout this formula does not describe: say so, keep the measured figure
        res.info["kv_bytes_per_token_analytic"] = analytic
        ctx.log(
            f"KV cache: measured {per_token} B/token, 2 x layers x kv heads x head dim x bytes gives "
            f"{analytic}"
        )
    res.metrics["kv_bytes_per_token"] = per_token
    table = []
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    for name, k in configs.items():
        if k is None:
            make = lambda rows: {"input_ids": texts[rows].to(dev)}  # noqa: E731
            length = texts.shape[1]
        else:
            latents = (torch.randn((n, k, emb.weight.shape[1]), generator=gen) * std).to(dtype)
            anchor_ids = torch.tensor([anchor] * n, dtype=torch.long)

            def make(rows, _lat=latents, _anc=anchor_ids):
                with torch.no_grad():
                    return {"inputs_embeds": torch.cat([_lat[rows].to(dev), emb(_anc[rows].to(dev))], dim=1)}

            length = k + len(anchor)
        res.metrics[f"{name}.prompt_tokens"] = length
        for b in batch_sizes:
            chunks = [list(range(i, min(i + b, n))) for i in range(0, n, b)]

            def run(rows, make=make):
                inputs = make(rows)
                first = next(iter(inputs.values()))
                mask = torch.ones(first.shape[:2], dtype=torch.long, device=dev)
                with torch.inference_mode():
                    return model.generate(
                        **inputs,
                        attention_mask=mask,
                        max_new_tokens=new,
                        min_new_tokens=new,
                        do_sample=False,
                        pad_token_id=pad,
                        return_dict_in_generate=True,
                    )

            for _ in range(p.warmup):
                run(chunks[0])
            if cuda:
                torch.cuda.synchronize(dev)
                torch.cuda.reset_peak_memory_stats(dev)
                before = torch.cuda.memory_allocated(dev)
            t0 = time.perf_counter()
            first_cache = None
            for rows in chunks:
                out = run(rows)
                if first_cache is None:  # the first batch is a full one (b sequences, or all n if fewer)
                    first_cache = cache_nbytes(out.past_key_values)
            if cuda:
                torch.cuda.synchronize(dev)
            wall = time.perf_counter() - t0
            produced = out.sequences.shape[1] - (length if k is None else 0)
            if produced != new:
                res.errors[f"{name}.b{b}"] = f"generated {produced} tokens instead of the pinned {new}"
                continue
            pre = f"{name}.b{b}"
            res.metrics[f"{pre}.ms_per_sample"] = 1000.0 * wall / n
            res.metrics[f"{pre}.samples_per_s"] = n / wall
            res.metrics[f"{pre}.kv_cache_mb"] = first_cache / 2**20
            row = {
                "config": name,
                "batch": b,
                "prompt_tokens": length,
                "ms_per_sample": res.metrics[f"{pre}.ms_per_sample"],
                "samples_per_s": res.metrics[f"{pre}.samples_per_s"],
                "kv_cache_mb": res.metrics[f"{pre}.kv_cache_mb"],
            }
            if cuda:
                peak = torch.cuda.max_memory_allocated(dev)
                res.metrics[f"{pre}.peak_mem_gb"] = peak / 1e9
                res.metrics[f"{pre}.extra_mem_gb"] = (peak - before) / 1e9
                row |= {"peak_mem_gb": peak / 1e9, "extra_mem_gb": (peak - before) / 1e9}
            else:
                res.not_applicable[f"{pre}.peak_mem_gb"] = (
                    "peak GPU memory is read from torch.cuda; this run had no CUDA device"
                )
            table.append(row)
            ctx.log(f"{pre}: {row['ms_per_sample']:.1f} ms/sample, {row['samples_per_s']:.2f} samples/s")
    for k in soft:
        saved = res.metrics["text.prompt_tokens"] - res.metrics[f"latent{k}.prompt_tokens"]
        res.metrics[f"latent{k}.kv_tokens_saved"] = saved
        res.metrics[f"latent{k}.kv_saved_mb"] = saved * per_token / 2**20
        for b in batch_sizes:
            t, lt = f"text.b{b}", f"latent{k}.b{b}"
            if f"{t}.ms_per_sample" in res.metrics and f"{lt}.ms_per_sample" in res.metrics:
                res.metrics[f"{lt}.speedup"] = (
                    res.metrics[f"{t}.ms_per_sample"] / res.metrics[f"{lt}.ms_per_sample"]
                )
            if f"{t}.peak_mem_gb" in res.metrics and f"{lt}.peak_mem_gb" in res.metrics:
                res.metrics[f"{lt}.mem_reduction_pct"] = 100.0 * (
                    1 - res.metrics[f"{lt}.peak_mem_gb"] / res.metrics[f"{t}.peak_mem_gb"]
                )
            elif not cuda:
                res.not_applicable[f"{lt}.mem_reduction_pct"] = "needs peak GPU memory (CUDA only)"
    res.info = {
        "n_samples": n,
        "max_new_tokens": new,
        "device": str(dev),
        "dtype": str(dtype),
        "gpu": torch.cuda.get_device_name(dev) if cuda else None,
    }
    (ctx.rep_dir / "inference_table.json").write_text(json.dumps(table, indent=2))
    if any(not math.isfinite(v) for v in res.metrics.values() if isinstance(v, float)):
        res.errors["__nonfinite__"] = "a timing came out non-finite"
    return res
