"""The transformers throughput backend: the same A/B statistics and contamination checks as the
llama.cpp backend, for machines without llama-cpp-python (the H100/H200 test machines).

params:
    model: synthetic:tiny-llama | synthetic:mid-llama | a save_pretrained directory
    dtype: float32 on CPU, bfloat16 on CUDA (default);  attn_implementation: sdpa (default)
    arms, prompt, n_decode (32), warmup (1), ppl_reps (1), ppl_ctx (256), ppl_chunks (4), seed (0),
    cpu_threads (1): torch intra-op threads on the CPU
    ab, outputs, roofline, gpu_watch, cpu_watch      as in llamacpp.py / harness.py

Per arm and repetition: prefill_ms and decode_tok_s from the harness's clock around the forward
passes (CUDA-synchronised before and after; there is no engine clock to compare with, so no
harness_overhead_pct), bytes_per_token, and ppl / nll / ppl_tokens on the repetitions < ppl_reps.
Decoding is greedy (temperature 0) with a KV cache, EOS ignored.
"""

from __future__ import annotations

import hashlib
import math
import time

from ...errors import PackError, require
from ...results import RepResult, RunContext
from ...strict import Strict
from ..params import parse
from . import harness, roofline
from .params import ThroughputParams


class ArmSettings(Strict):
    """An arm's own model settings (each defaults to the row's)."""

    model: str | None = None
    dtype: str | None = None
    attn_implementation: str | None = None
    seed: int | None = None


class Params(ThroughputParams, ArmSettings):
    """A `throughput_hf` row's params (see the module doc): the one place that knows its keys."""

    arms: dict[str, ArmSettings | None] | None = None
    seed: int = 0
    ppl_ctx: int = 256
    ppl_chunks: int = 4
    cpu_threads: int = 1


def _sync(device: str):
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def _load(arm: str, spec: dict, params: dict, ctx: RunContext) -> dict:
    torch = require("torch", "hf", "the transformers throughput backend")
    model_spec = str(spec.get("model", params.get("model", "synthetic:tiny-llama")))
    device = ctx.device
    dtype = spec.get("dtype", params.get("dtype", "bfloat16" if device == "cuda" else "float32"))
    attn = spec.get("attn_implementation", params.get("attn_implementation", "sdpa"))
    seed = int(spec.get("seed", params.get("seed", 0)))
    key = ("hf-throughput", model_spec, device, dtype, attn, seed)
    if key in ctx.cache:
        return ctx.cache[key]
    if device == "cpu":
        # Intra-op threads buy a small model nothing, and OpenMP barriers on a shared CPU cost 10x.
        torch.set_num_threads(int(params.get("cpu_threads", 1)))
    t0 = time.perf_counter()
    if model_spec.startswith("synthetic:"):
        from ...models import synthetic

        model = synthetic.build_model(
            model_spec.split(":", 1)[1], seed=seed, dtype=dtype, device=device, attn_implementation=attn
        )
        tok = synthetic.build_tokenizer()
    else:
        transformers = require("transformers", "hf", "the transformers throughput backend")
        from pathlib import Path

        if not Path(model_spec).is_dir():
            raise PackError(
                f"model directory {model_spec} (params.model of arm '{arm}') does not exist; "
                "give a save_pretrained checkpoint or synthetic:<name>"
            )
        model = (
            transformers.AutoModelForCausalLM.from_pretrained(
                model_spec, dtype=getattr(torch, dtype), attn_implementation=attn
            )
            .to(device)
            .eval()
        )
        tok = transformers.AutoTokenizer.from_pretrained(model_spec)
    ctx.count("model_loads")
    n_params = sum(p.numel() for p in model.parameters())
    ctx.log(
        f"arm {arm}: built {model_spec} ({n_params / 1e6:.1f} M params, {dtype}, {device}) "
        f"in {time.perf_counter() - t0:.2f}s"
    )
    ctx.provenance.setdefault("models", {})[model_spec] = {
        "params": n_params,
        "dtype": dtype,
        "attn": attn,
        "seed": seed,
    }
    entry = {"model": model, "tok": tok, "device": device, "warm": False}
    ctx.cache[key] = entry
    return entry


def greedy_decode(model, ids, n_decode: int, device: str) -> dict:
    """Prefill ids [1, L], then n_decode greedy steps with the KV cache; times in ms and tok/s."""
    import torch

    with torch.inference_mode():
        _sync(device)
        t0 = time.perf_counter()
        out = model(input_ids=ids, use_cache=True)
        cache = out.past_key_values
        nxt = out.logits[:, -1].argmax(-1, keepdim=True)
        _sync(device)
        t1 = time.perf_counter()
        toks = []
        for _ in range(n_decode):
            out = model(input_ids=nxt, past_key_values=cache, use_cache=True)
            cache = out.past_key_values
            nxt = out.logits[:, -1].argmax(-1, keepdim=True)
            toks.append(nxt)
        _sync(device)
        t2 = time.perf_counter()
    generated = torch.cat(toks, dim=1)[0].tolist() if toks else []
    return {
        "prefill_ms": round((t1 - t0) * 1000.0, 4),
        "decode_tok_s": round(n_decode / (t2 - t1), 4),
        "prompt_tokens": int(ids.shape[1]),
        "_tokens": generated,
    }


def perplexity(model, ids, n_ctx: int, max_chunks: int) -> dict:
    """Same scoring as llamacpp.perplexity: chunks of n_ctx, second half scored, float64 log-softmax."""
    import torch

    chunks = min(ids.shape[1] // n_ctx, max_chunks)
    if chunks < 1:
        raise PackError(
            f"the perplexity text has {ids.shape[1]} tokens, fewer than one context of {n_ctx}; "
            "use a smaller params.ppl_ctx"
        )
    first, nll_sum, count = n_ctx // 2, 0.0, 0
    with torch.inference_mode():
        for c in range(chunks):
            chunk = ids[:, c * n_ctx : (c + 1) * n_ctx]
            logits = model(input_ids=chunk).logits[0, first : n_ctx - 1].double()
            targets = chunk[0, first + 1 : n_ctx]
            nll_sum += float(torch.nn.functional.cross_entropy(logits, targets, reduction="sum"))
            count += int(targets.numel())
    nll = nll_sum / count
    return {"ppl": math.exp(nll), "nll": nll, "ppl_tokens": count}


class Backend:
    @staticmethod
    def own_gpu_processes() -> int:
        import sys

        torch = sys.modules.get("torch")
        return int(bool(torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized()))

    @staticmethod
    def _ids(entry, text: str):
        import torch

        ids = entry["tok"](text, add_special_tokens=False)["input_ids"]
        return torch.tensor([ids], device=entry["device"])

    @staticmethod
    def prepare(arm: str, spec: dict, params: dict, ctx: RunContext) -> None:
        entry = _load(arm, spec, params, ctx)
        if not entry["warm"]:
            ids = Backend._ids(entry, params.get("prompt", harness.DEFAULT_PROMPT))
            for _ in range(int(params.get("warmup", 1))):
                greedy_decode(entry["model"], ids, int(params.get("n_decode", 32)), entry["device"])
            entry["warm"] = True

    @staticmethod
    def measure(arm: str, spec: dict, params: dict, ctx: RunContext) -> dict:
        entry = _load(arm, spec, params, ctx)
        n_decode = int(params.get("n_decode", 32))
        ids = Backend._ids(entry, params.get("prompt", harness.DEFAULT_PROMPT))
        res = greedy_decode(entry["model"], ids, n_decode, entry["device"])
        generated = res.pop("_tokens")
        res["greedy_tokens_sha"] = hashlib.sha256(",".join(map(str, generated)).encode()).hexdigest()[:16]
        res["bytes_per_token"] = round(
            roofline.hf_bytes_per_token(entry["model"], ids.shape[1] + n_decode / 2)["total"], 1
        )
        ctx.log(f"arm {arm}: prefill {res['prefill_ms']:.2f} ms, {res['decode_tok_s']:.2f} tok/s")
        if ctx.rep_index < int(params.get("ppl_reps", 1)):
            text, sha = harness.ppl_text(params)
            ppl = perplexity(
                entry["model"],
                Backend._ids(entry, text),
                int(params.get("ppl_ctx", 256)),
                int(params.get("ppl_chunks", 4)),
            )
            ctx.provenance.setdefault(
                "ppl_text", {"source": params.get("ppl_text", "builtin"), "sha256": sha}
            )
            res.update(ppl=round(ppl["ppl"], 8), nll=round(ppl["nll"], 10), ppl_tokens=ppl["ppl_tokens"])
        return res


def run_rep(params: dict, ctx: RunContext) -> RepResult:
    parse(Params, params, "throughput_hf")
    return harness.run_rep(Backend, params, ctx)


def summarize(params: dict, ctx: RunContext, reps: list[RepResult]) -> RepResult:
    return harness.summarize(params, ctx, reps)
