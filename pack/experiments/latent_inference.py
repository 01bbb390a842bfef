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
    c.b<b>.kv_cache_mb              KV-cache size at the end of generation (analytic: 2 x layers x
                                    kv heads x head dim x tokens x batch x bytes per value)
    c.b<b>.peak_mem_gb              torch.cuda.max_memory_allocated during generation (CUDA only)
    c.b<b>.extra_mem_gb             that peak minus the memory held before generation (activations + KV)
    latent<k>.b<b>.speedup          text ms_per_sample / latent ms_per_sample
    latent<k>.b<b>.mem_reduction_pct  1 - latent peak / text peak, in percent (CUDA only)

params: model, dtype, seed, n_samples, prompts ("synthetic" or a GSM8K JSONL), prompt_tokens,
        soft_tokens [64, 32], anchor, batch_sizes [1, 4, 8], max_new_tokens, warmup (1)
"""

from __future__ import annotations

import json
import math
import time

from ..errors import ManifestError, require
from ..results import RepResult, RunContext


def _prompt_ids(tok, params: dict, n: int) -> list[list[int]]:
    """n prompts of exactly prompt_tokens tokens (a question repeated until long enough, then cut)."""
    from .wire_compression import load_prompts

    want = int(params.get("prompt_tokens", 150))
    out = []
    for text in load_prompts(str(params.get("prompts", "synthetic")), n, int(params.get("seed", 1234))):
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


def run_rep(params: dict, ctx: RunContext) -> RepResult:
    torch = require("torch", "hf", "the inference benchmark")
    batch_sizes = [int(b) for b in params.get("batch_sizes", [1, 4, 8])]
    soft = [int(k) for k in params.get("soft_tokens", [64, 32])]
    if any(b < 1 for b in batch_sizes) or any(k < 1 for k in soft):
        raise ManifestError("params.batch_sizes and params.soft_tokens must be positive integers")
    n = int(params.get("n_samples", 100))
    new = int(params.get("max_new_tokens", 256))
    if "model" not in params:
        raise ManifestError("the inference benchmark needs params.model (e.g. synthetic:tiny-llama)")
    from .ecmoe import model_io

    model, tok, _ = model_io.load_model(params, ctx)
    dev = model.get_input_embeddings().weight.device
    dtype = model.get_input_embeddings().weight.dtype
    cuda = dev.type == "cuda"
    emb = model.get_input_embeddings()
    gen = torch.Generator(device="cpu").manual_seed(int(params.get("seed", 1234)))
    with torch.no_grad():
        std = float(emb.weight.float().std())
    anchor = tok(params.get("anchor", "Answer: "), add_special_tokens=False).input_ids
    texts = torch.tensor(_prompt_ids(tok, params, n), dtype=torch.long)
    configs = {"text": None} | {f"latent{k}": k for k in soft}
    res = RepResult()
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
                    return model.generate(**inputs, attention_mask=mask, max_new_tokens=new, min_new_tokens=new,
                                          do_sample=False, pad_token_id=pad)

            for _ in range(int(params.get("warmup", 1))):
                run(chunks[0])
            if cuda:
                torch.cuda.synchronize(dev)
                torch.cuda.reset_peak_memory_stats(dev)
                before = torch.cuda.memory_allocated(dev)
            t0 = time.perf_counter()
            for rows in chunks:
                out = run(rows)
            if cuda:
                torch.cuda.synchronize(dev)
            wall = time.perf_counter() - t0
            produced = out.shape[1] - (length if k is None else 0)
            if produced != new:
                res.errors[f"{name}.b{b}"] = f"generated {produced} tokens instead of the pinned {new}"
                continue
            pre = f"{name}.b{b}"
            res.metrics[f"{pre}.ms_per_sample"] = 1000.0 * wall / n
            res.metrics[f"{pre}.samples_per_s"] = n / wall
            res.metrics[f"{pre}.kv_cache_mb"] = kv_cache_bytes(model.config, length + new, b, dtype.itemsize) / 2**20
            row = {"config": name, "batch": b, "prompt_tokens": length, "ms_per_sample": res.metrics[f"{pre}.ms_per_sample"],
                   "samples_per_s": res.metrics[f"{pre}.samples_per_s"], "kv_cache_mb": res.metrics[f"{pre}.kv_cache_mb"]}
            if cuda:
                peak = torch.cuda.max_memory_allocated(dev)
                res.metrics[f"{pre}.peak_mem_gb"] = peak / 1e9
                res.metrics[f"{pre}.extra_mem_gb"] = (peak - before) / 1e9
                row |= {"peak_mem_gb": peak / 1e9, "extra_mem_gb": (peak - before) / 1e9}
            else:
                res.not_applicable[f"{pre}.peak_mem_gb"] = "peak GPU memory is read from torch.cuda; this run had no CUDA device"
            table.append(row)
            ctx.log(f"{pre}: {row['ms_per_sample']:.1f} ms/sample, {row['samples_per_s']:.2f} samples/s")
    for k in soft:
        for b in batch_sizes:
            t, lt = f"text.b{b}", f"latent{k}.b{b}"
            if f"{t}.ms_per_sample" in res.metrics and f"{lt}.ms_per_sample" in res.metrics:
                res.metrics[f"{lt}.speedup"] = res.metrics[f"{t}.ms_per_sample"] / res.metrics[f"{lt}.ms_per_sample"]
            if f"{t}.peak_mem_gb" in res.metrics and f"{lt}.peak_mem_gb" in res.metrics:
                res.metrics[f"{lt}.mem_reduction_pct"] = 100.0 * (1 - res.metrics[f"{lt}.peak_mem_gb"] / res.metrics[f"{t}.peak_mem_gb"])
            elif not cuda:
                res.not_applicable[f"{lt}.mem_reduction_pct"] = "needs peak GPU memory (CUDA only)"
    res.info = {"n_samples": n, "max_new_tokens": new, "device": str(dev), "dtype": str(dtype),
                "gpu": torch.cuda.get_device_name(dev) if cuda else None}
    (ctx.rep_dir / "inference_table.json").write_text(json.dumps(table, indent=2))
    if any(not math.isfinite(v) for v in res.metrics.values() if isinstance(v, float)):
        res.errors["__nonfinite__"] = "a timing came out non-finite"
    return res
