"""Execute one configuration: the right model (loaded once per load-affecting setting, kept in
the process-wide cache), the right prompts, and the variable's mechanism (batch, torch.compile,
attention implementation, quantized checkpoint, concurrent stream, TP/EP under torchrun).
"""

from __future__ import annotations

import contextlib
import platform
import re
import time
from pathlib import Path

from ...errors import PackError
from . import prompts as prompts_mod
from .configs import Config, Params
from .extraction import ExtractionSpec, Signals, greedy_decode


class ConfigFailed(Exception):
    """This configuration failed (e.g. torch.compile); the others still run. str() is the sentence."""


def hardware_tag(device: str, fallback: str) -> tuple[str, str]:
    """(short tag for config ids, full hardware name):
    ("H100", "NVIDIA H100 80GB HBM3") or ("cpu", cpu model)."""
    if device == "cuda":
        import torch

        name = torch.cuda.get_device_name(0)
        m = re.search(
            r"(A100|H100|H200|H20|B200|L40S|L40|L4|A10G|A10|A6000|V100|T4|RTX ?\d{4}|GTX ?\d{4})", name
        )
        tag = (m.group(1) if m else name).replace(" ", "")
        return re.sub(r"[^A-Za-z0-9.\-]", "", tag), name
    from ...provenance import cpu_facts

    return re.sub(r"[^A-Za-z0-9.\-]", "", fallback) or "cpu", cpu_facts()["model"]


def software() -> dict:
    import torch
    import transformers

    from ...provenance import package_version

    return {
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
        "cuda_version": torch.version.cuda,
        "flash_attn_version": package_version("flash-attn"),
        "python_version": platform.python_version(),
    }


def model_key(p: Params, device: str, attention: str, quant: str | None) -> tuple:
    return ("forensics-model", p.model, p.model_seed, p.dtype, device, attention, quant)


def get_model(ctx, p: Params, *, attention: str, quant: str | None = None):
    """A LoadedModel from ctx.cache, loading it (and counting the load) only on a miss."""
    from ...models.sources import load_causal_lm

    key = model_key(p, ctx.device, attention, quant)
    if key in ctx.cache:
        return ctx.cache[key]
    qconf, spec = None, p.model
    if quant is not None:
        spec, qconf = _quant_source(p, quant)
    t0 = time.perf_counter()
    loaded = load_causal_lm(
        spec,
        dtype=p.dtype,
        device=ctx.device,
        attention=attention,
        seed=p.model_seed,
        quantization_config=qconf,
    )
    from ...models.sources import weights_fingerprint

    loaded.info["load_s"] = round(time.perf_counter() - t0, 3)
    loaded.info["weights_fingerprint"] = weights_fingerprint(loaded.model)
    loaded.info["n_params"] = int(sum(t.numel() for t in loaded.model.parameters()))
    ctx.cache[key] = loaded
    totals = ctx.cache.setdefault("forensics-loads", {})
    totals[str(ctx.run_dir)] = totals.get(str(ctx.run_dir), 0) + 1
    ctx.log(f"loaded {spec} ({attention}{', ' + quant if quant else ''}) in {loaded.info['load_s']:.2f}s")
    return loaded


def loads_this_run(ctx) -> int:
    return ctx.cache.get("forensics-loads", {}).get(str(ctx.run_dir), 0)


def _quant_source(p: Params, method: str):
    """(model spec, quantization_config) for a quantized variant; why_not() has ruled out the impossible."""
    ckpt = (p.quantization_checkpoints or {}).get(method)
    if ckpt:
        return ckpt, None  # a pre-quantized checkpoint carries its own quantization_config
    if method in (
        "bnb",
        "bnb-nf4",
        "bnb-int8",
    ):  # quantized while loading (a synthetic model has no checkpoint)
        import torch
        from transformers import BitsAndBytesConfig

        if method == "bnb-int8":
            return p.model, BitsAndBytesConfig(load_in_8bit=True)
        return p.model, BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=getattr(torch, p.dtype)
        )
    raise PackError(f"no {method} checkpoint configured")


def get_tokenizer(ctx, p: Params):
    """The baseline model's tokenizer: every configuration decodes the same prompt token ids."""
    from ...models.sources import load_tokenizer

    key = ("forensics-tokenizer", p.model)
    if key not in ctx.cache:
        ctx.cache[key] = load_tokenizer(p.model)
    return ctx.cache[key]


def get_prompts(ctx, p: Params, batch_size: int) -> list[prompts_mod.Prompt]:
    key = ("forensics-prompts", p.model, p.prompt_tokens, batch_size, str(p.documents), p.request)
    if key not in ctx.cache:
        ctx.cache[key] = prompts_mod.build_batch(
            get_tokenizer(ctx, p), p.prompt_tokens, batch_size, documents=p.documents, request=p.request
        )
    return ctx.cache[key]


def get_compiled(ctx, p: Params, loaded, attention: str):
    """torch.compile(model), once per loaded model; compilation itself happens at the first call."""
    import torch

    key = ("forensics-compiled", p.compile_backend) + model_key(p, ctx.device, attention, None)
    if key not in ctx.cache:
        ctx.cache[key] = torch.compile(loaded.model, backend=p.compile_backend)
        ctx.cache.setdefault("forensics-compiles", {})[str(ctx.run_dir)] = 1
    return ctx.cache[key]


def _dynamo_graphs() -> int:
    """Graphs dynamo has compiled in this process so far (its own counter)."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def _compiled_or_fail(compiling: bool):
    """Within (when compiling): hitting dynamo's recompile limit raises instead of silently running the
    frame eagerly, which would measure eager numerics under the compile label."""
    if not compiling:
        return contextlib.nullcontext()
    import torch._dynamo.config as dynamo_config

    return dynamo_config.patch(fail_on_recompile_limit_hit=True)


def _decode_config(ctx, p: Params, cfg: Config, loaded, ids, spec, artifacts: Path, facts: dict) -> Signals:
    """One timed decode of cfg (compiled first, outside the timing, when cfg compiles); facts filled in."""
    s = cfg.settings
    model = loaded.model
    if s["compile"]:  # an unknown backend fails here, a failing compilation in the warm-up below
        model = get_compiled(ctx, p, loaded, s["attention_impl"])
        warm = ("forensics-compile-warm", id(model), tuple(ids.shape))
        if warm not in ctx.cache:  # compile outside the timed repetitions; record how long it took
            t0, graphs0 = time.perf_counter(), _dynamo_graphs()
            greedy_decode(model, ids, spec)
            ctx.cache[warm] = (round(time.perf_counter() - t0, 3), _dynamo_graphs() - graphs0)
            seconds, graphs = ctx.cache[warm]
            ctx.log(
                f"{cfg.label}: torch.compile ({p.compile_backend}) warm-up took {seconds:.1f}s "
                f"({graphs} graphs)"
            )
        facts["compile_warmup_s"], facts["compile_graphs"] = ctx.cache[warm]
    graphs0 = _dynamo_graphs() if s["compile"] else 0
    decode = lambda sync=None: greedy_decode(model, ids, spec, synchronize=sync)  # noqa: E731
    if s["concurrent_streams"]:
        from .streams import run_concurrent

        trace = artifacts / f"{cfg.label}.trace.json.gz" if ctx.rep_index == 0 else None
        sig, extra = run_concurrent(
            decode, size=p.streams.matmul_size, duty_cycle=float(p.streams.duty_cycle), trace_path=trace
        )
        facts.update(extra)
    else:
        sig = decode()
    if s["compile"] and _dynamo_graphs() > graphs0:  # this repetition's runtime includes compilation
        facts["recompiled_graphs"] = _dynamo_graphs() - graphs0
        ctx.log(f"{cfg.label}: this repetition compiled {facts['recompiled_graphs']} new graphs")
    return sig


def run_config(ctx, p: Params, cfg: Config, spec: ExtractionSpec, *, artifacts: Path) -> tuple[Signals, dict]:
    """Decode the reference prompt under cfg's settings; return its signals and facts to record."""
    import torch

    s = cfg.settings
    quant = None if s["quantization"] == cfg.extra.get("baseline_quantization") else s["quantization"]
    try:
        loaded = get_model(ctx, p, attention=s["attention_impl"], quant=quant)
    except PackError as e:
        if cfg.is_baseline or quant is None and s["attention_impl"] == cfg.extra.get("baseline_attention"):
            raise  # the baseline model itself cannot load: nothing in this row can run
        raise ConfigFailed(f"loading the {cfg.label} variant failed: {e}") from None
    facts: dict = {"model_info": {k: v for k, v in loaded.info.items() if k != "checkpoint"}}
    batch = get_prompts(ctx, p, s["batch_size"])
    device = next(loaded.model.parameters()).device
    ids = torch.tensor([pr.token_ids for pr in batch], device=device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    try:
        with _compiled_or_fail(s["compile"]):
            sig = _decode_config(ctx, p, cfg, loaded, ids, spec, artifacts, facts)
    except PackError:
        raise
    except Exception as e:
        if type(e).__name__ == "FailOnRecompileLimitHit":
            import torch._dynamo.config as dynamo_config

            raise ConfigFailed(
                f"torch.compile hit dynamo's recompile limit ({dynamo_config.recompile_limit}): the "
                "remaining decode steps would have run eagerly, so this configuration would not measure "
                "torch.compile (TORCH_LOGS=recompiles names the guard that keeps failing)"
            ) from e
        what = "torch.compile" if s["compile"] else "decoding"
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise ConfigFailed(f"{what} failed: {type(e).__name__}: {first[:300]}") from e
    if device.type == "cuda":
        facts["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 3)
    if s["batch_size"] > 1:
        facts["batch_documents"] = [pr.document for pr in batch]
    return sig, facts


def run_distributed(
    ctx, p: Params, cfg: Config, spec: ExtractionSpec, prompt_ids: list[int], attention: str
) -> dict:
    """Run all repetitions of a TP/EP configuration in one torchrun launch (at rep 0); later reps
    read the stored results. Returns rank 0's report: {reps: [{runtime_s, digest, ...}], ...}."""
    from ...models.sources import init_device_for, is_synthetic, synthetic_checkpoint
    from . import distributed

    job_dir = ctx.run_dir / "distributed" / cfg.label
    report = job_dir / "report.json"
    if report.is_file():
        import json

        return json.loads(report.read_text())
    if ctx.rep_index != 0:
        raise ConfigFailed(f"no torchrun results for {cfg.label} from repetition 1 (resume from the start)")
    if is_synthetic(p.model):  # written once by the parent, so ranks do not race to create it
        synthetic_checkpoint(
            p.model.split(":", 1)[1],
            dtype=p.dtype,
            seed=p.model_seed,
            init_device=init_device_for(ctx.device),
        )
    mode = "tp" if p.experiment_type == "tensor_parallel" else "ep"
    n = int(cfg.variable_value)
    job = {
        "model": p.model,
        "model_seed": p.model_seed,
        "dtype": p.dtype,
        "attention": attention,
        "mode": mode,
        "size": n,
        "label": cfg.label,
        "input_ids": [list(prompt_ids)],
        "layers": list(spec.layers),
        "positions": list(spec.positions),
        "top_k": spec.top_k,
        "steps": spec.steps,
        "reps": ctx.reps,
        "device": ctx.device,
        "cpu_threads": p.cpu_threads,
        "out_dir": str(job_dir),
    }
    try:
        rep = distributed.launch(job, job_dir, nproc=n, timeout_s=ctx.seconds_left() - 5, log=ctx.log)
    except PackError as e:
        raise ConfigFailed(str(e)) from None
    totals = ctx.cache.setdefault("forensics-loads", {})
    totals[str(ctx.run_dir)] = totals.get(str(ctx.run_dir), 0) + 1  # one load per rank, in one launch
    return rep
