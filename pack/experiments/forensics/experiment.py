"""The spine's entry points for the forensics rows (registry key "forensics").

run_rep   one repetition of every configuration of the row. Repetition 1 stores each decode's
          signals (reps/rep-000/signals.safetensors); later repetitions compare theirs with it:
          bit-identical -> only the digest is kept (the seed's "store once"); different -> the
          signals are stored too, the first divergence (step, signal, layer, position, max |diff|)
          is named, and the experiment stops: later configurations and repetitions are not run.
summarize the experiment's uniform JSON + safetensors sidecar (summary/<name>.json), schema-checked,
          with exp0's data as the baseline (from the newest matching run of `baseline_row`, else
          run here), reproducibility, runtime mean/variance, detectability against the baseline,
          and the storage ratio against the seed's JSON layout.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone

from ... import fsio
from ...errors import PackError, require
from ...results import RepResult
from . import configs, runner
from . import signals as sigmod
from .configs import Config
from .extraction import ExtractionSpec, check_positions, resolve_layers

STATE = "forensics_state.json"
Params = configs.Params  # the row's params model (registry.params_model), owned by configs


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")  # UTC, in the seed's timestamp layout


def _threads(p, ctx) -> None:
    torch = require("torch", "hf", "the forensics experiments")
    if ctx.device == "cpu" and p.cpu_threads:
        torch.set_num_threads(int(p.cpu_threads))
    if p.deterministic:
        # Set before the first matmul creates a cuBLAS handle. An op without a deterministic
        # implementation then raises, and that configuration becomes ERROR with the message.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)


def _model_facts(cfg) -> dict:
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    qc = getattr(cfg, "quantization_config", None)
    quant = (
        (qc.get("quant_method") if isinstance(qc, dict) else getattr(qc, "quant_method", None))
        if qc
        else None
    )
    return {
        "n_layers": int(cfg.num_hidden_layers),
        "hidden_dim": int(cfg.hidden_size),
        "n_kv_heads": int(cfg.num_key_value_heads),
        "head_dim": int(head_dim),
        "key_dim": int(cfg.num_key_value_heads * head_dim),
        "n_experts": int(getattr(cfg, "num_experts", 0) or getattr(cfg, "num_local_experts", 0) or 0),
        "quantization": str(quant) if quant else None,
    }


def prepare(p, ctx) -> dict:
    """The run's fixed facts and plan, computed once and kept in run_dir/forensics_state.json."""
    key = ("forensics-state", str(ctx.run_dir))
    if key in ctx.cache:
        return ctx.cache[key]
    path = ctx.run_dir / STATE
    if path.is_file():
        st = json.loads(path.read_text())
        ctx.cache[key] = st
        return st
    torch = require("torch", "hf", "the forensics experiments")
    from ...models.sources import is_synthetic, load_config, resolve_attention

    facts = _model_facts(load_config(p.model))
    layers = resolve_layers(p.layers, facts["n_layers"], p.model)
    positions = check_positions(p.positions)
    if p.prompt_tokens + 8 < max(-x for x in positions):
        raise PackError(f"prompt_tokens {p.prompt_tokens} is too short for positions {list(positions)}")
    tag, hw_name = runner.hardware_tag(ctx.device, ctx.hardware)
    sw = runner.software()
    attention = resolve_attention(p.attention, ctx.device)
    base_quant = facts["quantization"] or {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}.get(
        p.dtype, p.dtype
    )
    base = configs.baseline_settings(attention, base_quant, sw["cuda_version"])
    n_gpus = torch.cuda.device_count() if ctx.device == "cuda" else 0
    facts.update(synthetic=is_synthetic(p.model), cuda_running=sw["cuda_version"])
    planned = configs.plan(p, base, device=ctx.device, n_gpus=n_gpus, model_facts=facts)
    for c in planned:
        c.extra.update(baseline_quantization=base_quant, baseline_attention=attention)
    baseline_source = None
    runnable = any(c.not_applicable is None for c in planned)
    if p.experiment_type != "reference" and runnable:
        baseline_source = find_baseline(p, ctx, f"{tag}|{hw_name}", sw)
        if baseline_source is None and p.experiment_type != "cuda_version":
            planned.insert(
                0,
                Config(
                    "baseline",
                    dict(base),
                    is_baseline=True,
                    extra={
                        "variable_value": base[p.variable] if p.variable else None,
                        "baseline_quantization": base_quant,
                        "baseline_attention": attention,
                    },
                ),
            )
    tok = runner.get_tokenizer(ctx, p)
    prompt = runner.get_prompts(ctx, p, 1)[0]
    st = {
        "hardware_tag": tag,
        "hardware": hw_name,
        "software": sw,
        "attention": attention,
        "facts": facts,
        "layers": list(layers),
        "positions": list(positions),
        "baseline_settings": base,
        "baseline_source": baseline_source,
        "signature": signature(p, f"{tag}|{hw_name}", sw),
        "prompt": {
            "text": prompt.text,
            "sha256": prompt.sha256,
            "tokens": len(prompt.token_ids),
            "document_tokens": prompt.n_doc_tokens,
            "document": prompt.document,
            "chat_template": bool(getattr(tok, "chat_template", None)),
        },
        "configs": [
            {
                "label": c.label,
                "settings": c.settings,
                "is_baseline": c.is_baseline,
                "not_applicable": c.not_applicable,
                "extra": c.extra,
            }
            for c in planned
        ],
        "device": ctx.device,
    }
    fsio.write_text_atomic(ctx.run_dir / STATE, json.dumps(st, indent=2, default=str))
    ctx.cache[key] = st
    return st


def signature(p, hw_name: str, sw: dict) -> str:
    """Same model, prompt, extraction and machine kind ("<tag>|<name>"): a baseline that stands in for
    this run's. CUDA and torch versions are excluded (exp6 compares exactly those); they are recorded
    per config."""
    return configs.signature_hash({**p.baseline_signature(), "hardware": hw_name})


def find_baseline(p, ctx, hw_name: str, sw: dict) -> dict | None:
    """The newest complete run of p.baseline_row in this runs tree with the same signature."""
    if not p.baseline_row:
        return None
    from ...run_record import RunRecordError, RunStatus
    from ...rundir import runs_of
    from .uniform import file_stem

    want = signature(p, hw_name, sw)
    for rd in runs_of(ctx.run_dir.parents[1] / p.baseline_row):
        try:
            complete = rd.record.status == RunStatus.complete
            stp = json.loads((rd.path / STATE).read_text())
        except (RunRecordError, OSError, ValueError):
            continue
        doc_path = rd.summary_dir / f"{file_stem('reference')}.json"
        if complete and stp.get("signature") == want and doc_path.is_file():
            return {"run_dir": str(rd.path), "run_id": rd.name, "json": str(doc_path)}
    return None


def spec_of(p, st) -> ExtractionSpec:
    return ExtractionSpec(
        layers=tuple(st["layers"]), positions=tuple(st["positions"]), top_k=p.top_k, steps=p.decode_steps
    )


def _stopped(ctx) -> str | None:
    """Why an earlier repetition of this run stopped the experiment, if one did."""
    for rep in ctx.previous:
        if (rep.info or {}).get("stopped"):
            return rep.info["stopped"]
    return None


def _reference(ctx, label: str):
    """Repetition 1's signals of a configuration (None if repetition 1 did not store it)."""
    f = ctx.rep_folder(0) / "signals.safetensors"
    key = ("forensics-rep0", str(f))
    if key not in ctx.cache:
        ctx.cache[key] = sigmod.load(f) if f.is_file() else {}
    try:
        return sigmod.from_tensors(ctx.cache[key], label)
    except KeyError:
        return None


def _token_texts(tok, ids) -> list[str]:
    out = []
    for i in ids:
        try:
            out.append(tok.decode([int(i)]))
        except Exception:  # an id beyond the tokenizer's vocabulary (a synthetic model's larger vocab)
            out.append(f"<id {int(i)}>")
    return out


def _distributed(ctx, p, cfg: Config, spec, st) -> tuple:
    prompt = runner.get_prompts(ctx, p, 1)[0]
    report = runner.run_distributed(ctx, p, cfg, spec, list(prompt.token_ids), st["attention"])
    r = ctx.rep_index
    f = ctx.run_dir / "distributed" / cfg.label / f"rep-{r:03d}.safetensors"
    rep = report["reps"][r]
    sig = sigmod.from_tensors(
        sigmod.load(f), cfg.label, prompt_len=len(prompt.token_ids), runtime_s=rep["runtime_s"]
    )
    facts = {k: report[k] for k in ("world_size", "backend", "load_s", "model_loads_per_rank")}
    facts["model_info"] = report.get("model_info", {})
    return sig, facts, rep["timestamp"]


def variable_never_runs(p, configs: list[dict]) -> str | None:
    """Why no configuration of the experiment's variable can run here (e.g. exp3 without a quantization
    backend, exp5 on a CPU), or None. A reference experiment has no variable and always applies."""
    variable = [c for c in configs if not c["is_baseline"]]
    if p.variable is None or not variable or any(c["not_applicable"] is None for c in variable):
        return None
    reasons = sorted({str(c["not_applicable"]) for c in variable})
    return f"no configuration of the variable '{p.variable}' can run here: " + "; ".join(reasons)


def run_rep(params: dict, ctx) -> RepResult:
    p = configs.parse(params)
    _threads(p, ctx)
    st = prepare(p, ctx)
    spec = spec_of(p, st)
    tok = runner.get_tokenizer(ctx, p)
    res = RepResult(info={"configs": {}})
    stop = _stopped(ctx)
    tensors: dict = {}
    row_na = variable_never_runs(p, st["configs"])
    if row_na:
        res.not_applicable["__row__"] = row_na  # verify: the row is NOT-APPLICABLE, never PASS on bookkeeping
    for c in st["configs"]:
        label = c["label"]
        if c["not_applicable"]:
            res.not_applicable[label] = c["not_applicable"]
            continue
        if stop:
            res.errors[label] = f"not run: {stop}"
            continue
        cfg = Config(label, c["settings"], c["is_baseline"], None, c["extra"])
        stamp = _now()
        try:
            if cfg.settings["tp_size"] > 1 or cfg.settings["ep_size"] > 1:
                sig, facts, stamp = _distributed(ctx, p, cfg, spec, st)
            else:
                sig, facts = runner.run_config(ctx, p, cfg, spec, artifacts=ctx.rep_dir)
        except runner.ConfigFailed as e:
            res.errors[label] = str(e)
            ctx.log(f"{label}: {e}")
            continue
        d = sigmod.digest(sig)
        entry = {
            "digest": d,
            "runtime_s": sig.runtime_s,
            "timestamp": stamp,
            "tokens": sig.tokens.tolist(),
            "token_texts": _token_texts(tok, sig.tokens.tolist()),
            "facts": facts,
            "stored": False,
        }
        ref = _reference(ctx, label) if ctx.rep_index > 0 else None
        if ref is None:
            tensors.update(sigmod.to_tensors(sig, label))
            entry["stored"] = True
        elif sigmod.digest(ref) != d:
            div = sigmod.first_divergence(ref, sig, spec)
            tensors.update(sigmod.to_tensors(sig, label))
            entry.update(stored=True, divergence=div.to_json() if div else None)
            stop = (
                f"configuration {label} is non-deterministic: repetition {ctx.rep_index + 1} differs from "
                f"repetition 1 at {div.sentence() if div else 'an unlocated tensor'}; experiment stopped"
            )
            ctx.log(stop)
        res.metrics[f"{label}.runtime_s"] = round(sig.runtime_s, 6)
        res.info["configs"][label] = entry
        ctx.log(f"{label}: {sig.runtime_s:.3f}s, tokens {sig.tokens.tolist()[:8]}..., sha256 {d[:12]}")
    if tensors:
        sigmod.save(
            tensors,
            ctx.rep_dir / "signals.safetensors",
            metadata={"depth": str(spec.depth), "steps": str(spec.steps)},
        )
    res.info["stopped"] = stop
    ctx.counters["model_loads"] = runner.loads_this_run(ctx)
    return res


def summarize(params: dict, ctx, reps: list[RepResult]) -> RepResult:
    from .summary import build_summary

    p = configs.parse(params)
    st = prepare(p, ctx)
    out = build_summary(p, ctx, st, reps, spec_of(p, st))
    ctx.counters["model_loads"] = runner.loads_this_run(ctx)
    ctx.log(
        f"model loads in this run: {ctx.counters['model_loads']} (process-wide cache; "
        f"one per model and load-affecting setting)"
    )
    return out
