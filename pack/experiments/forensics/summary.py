"""Build an experiment's uniform JSON + sidecar from its repetitions, and the row's verdict metrics.

Metrics (per configuration label: baseline, bs2, compile, eager, streams, cu118, tp2, ...):

    <label>.reps_bit_identical     1 when every repetition's signals have the same sha256 (seed: L2 = 0)
    <label>.runtime_s              per repetition (seconds, prefill + decode, synchronised)
    <label>.runtime_mean_s / .runtime_var_s2   over the repetitions (the seed's "average and variance")
    <label>.l2_hidden_last / .l2_keys_last / .l2_logprobs   mean L2 against the baseline (same machine)
    <label>.first_token_divergence  first decode step whose token differs from the baseline (-1: none)
    <label>.overlap_fraction / .workload_utilisation        exp5, from the profiler trace
    <label>.peak_memory_gib        CUDA only: torch.cuda.max_memory_allocated over the decode
    uniform_json_valid             1 when the written JSON validates against uniform.schema.json
    storage_ratio                  one run's sidecar bytes / the same run in the seed's JSON layout
    prompt_tokens / decode_steps   what was actually decoded
"""

from __future__ import annotations

import json
import os
import statistics
from datetime import datetime, timezone
from pathlib import Path

from ...results import RepResult
from . import analysis, uniform
from . import signals as sigmod

CONVENTIONS = {
    "layer_convention": "layer_k = transformers output_hidden_states[k]: 0 would be the embedding output "
    "(not extracted), k < n_layers the output of decoder block k, k = n_layers the final RMSNorm output",
    "key_convention": "keys of decoder block k's attention after q/k-norm and RoPE, as stored in the KV "
    "cache; all KV heads concatenated head-major",
    "position_convention": "at decode step t (0 = prefill, producing token 0) position -j is absolute "
    "position prompt_len + t - j; with a KV cache positions -2/-3 are the values computed when they were "
    "position -1 (or in the prefill); each vector is stored once",
    "logprob_convention": "log_softmax(float32 logits) top-k at that position; prefill positions -3/-2 from "
    "lm_head applied to the final-norm output",
}


def _fmt_size(n: int | None) -> str:
    if not n:
        return "unknown"
    return f"{n / 1e9:.1f}B" if n >= 1e9 else f"{n / 1e6:.1f}M"


def metadata(p, st: dict, ctx, n_params: int | None) -> dict:
    f = st["facts"]
    return {
        "experiment_type": p.experiment_type,
        "variable_tested": p.variable or "none",
        "model": p.model,
        "model_size": _fmt_size(n_params),
        "architecture": "MoE" if f["n_experts"] else "dense",
        "sequence_length": st["prompt"]["tokens"],
        "decode_steps": p.decode_steps,
        "extraction_config": {
            "layers": st["layers"],
            "positions": st["positions"],
            "hidden_dim": f["hidden_dim"],
            "key_dim": f["key_dim"],
            "top_k_logprobs": p.top_k,
            "n_layers": f["n_layers"],
            "n_kv_heads": f["n_kv_heads"],
            "head_dim": f["head_dim"],
            **CONVENTIONS,
        },
        "date_created": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
        "prompt": {
            "sha256": st["prompt"]["sha256"],
            "prompt_tokens": st["prompt"]["tokens"],
            "document_tokens": st["prompt"]["document_tokens"],
            "document": st["prompt"]["document"],
            "documents": p.documents,
            "request": p.request,
            "chat_template": st["prompt"]["chat_template"],
        },
        "storage": {
            "format": "safetensors-sidecar",
            "dtype": p.dtype,
            "unique_positions": p.decode_steps + max(-x for x in st["positions"]) - 1,
        },
        "pack": {
            "run_id": ctx.run_dir.name,
            "row": ctx.run_dir.parent.name,
            "paper": ctx.run_dir.parents[1].name,
            "signature": st["signature"],
            "baseline_source": st["baseline_source"],
        },
    }


def configuration(
    p, st: dict, c: dict, status: str, reason: str | None, entries: list, provider: str
) -> dict:
    s, sw = c["settings"], st["software"]
    runtimes = [e["runtime_s"] for _, e in entries]
    facts = entries[0][1].get("facts", {}) if entries else {}
    div = next((e["divergence"] for _, e in entries if e.get("divergence")), None)
    return {
        "config_id": f"{st['hardware_tag']}_{c['label']}",
        "label": c["label"],
        "is_baseline": c["is_baseline"],
        "hardware": st["hardware"],
        "hardware_tag": st["hardware_tag"],
        "device": st["device"],
        "provider": provider,
        "variable_value": c["extra"].get("variable_value"),
        "cuda_version": sw["cuda_version"],
        "torch_version": sw["torch_version"],
        "transformers_version": sw["transformers_version"],
        "flash_attn_version": sw["flash_attn_version"],
        "python_version": sw["python_version"],
        "fixed_params": {
            "compile": s["compile"],
            "attention_impl": s["attention_impl"],
            "quantization": str(s["quantization"]),
            "tp_size": s["tp_size"],
            "ep_size": s["ep_size"],
            "concurrent_streams": s["concurrent_streams"],
            "batch_size": s["batch_size"],
            "cuda_version": s["cuda_version"],
            "dtype": p.dtype,
            "cpu_threads": p.cpu_threads if st["device"] == "cpu" else None,
        },
        "status": status,
        "reason": reason,
        "reps": len(entries),
        "runtime_mean_s": statistics.fmean(runtimes) if runtimes else None,
        "runtime_variance_s2": statistics.variance(runtimes)
        if len(runtimes) > 1
        else 0.0
        if runtimes
        else None,
        "first_divergence": div,
        "model_info": facts.get("model_info", {}),
        "facts": {k: v for k, v in facts.items() if k != "model_info"},
    }


def _storage_ratio(doc: dict, tensors: dict) -> tuple[float, int, int] | None:
    """(ratio, sidecar bytes, seed-json bytes) for the first run that carries signals."""
    from safetensors.torch import save as st_save

    run = next((r for r in doc["runs"] if r.get("signals_key")), None)
    if run is None:
        return None
    key = run["signals_key"]
    one = {n: t for n, t in tensors.items() if n.startswith(key + "/")}
    side = len(st_save(one))
    single = {**doc, "runs": [dict(run)]}
    expanded = uniform.expand(single, one, all_reps=True)["runs"][0]
    seed_bytes = len(json.dumps(expanded["decode_steps"]).encode())
    return side / seed_bytes, side, seed_bytes


def build_summary(p, ctx, st: dict, reps: list[RepResult], spec) -> RepResult:
    res = RepResult()
    provider = os.environ.get("PACK_PROVIDER") or p.provider or "local"
    rep_tensors: dict[int, dict] = {}

    def rep_file(i: int) -> dict:
        if i not in rep_tensors:
            f = ctx.rep_folder(i) / "signals.safetensors"
            rep_tensors[i] = sigmod.load(f) if f.is_file() else {}
        return rep_tensors[i]

    configurations, runs, tensors = [], [], {}
    n_params = None
    for c in st["configs"]:
        label = c["label"]
        cid = f"{st['hardware_tag']}_{label}"
        entries = [
            (i, r.info["configs"][label]) for i, r in enumerate(reps) if label in r.info.get("configs", {})
        ]
        digests = {e["digest"] for _, e in entries}
        if c["not_applicable"]:
            status, reason = "not_applicable", c["not_applicable"]
        elif not entries:
            status = "error"
            reason = next(
                (r.errors[label] for r in reps if label in r.errors), "no repetition produced signals"
            )
        elif len(digests) > 1:
            status, reason = "non_deterministic", "repetitions differ; see first_divergence"
        else:
            status, reason = "ok", None
        configurations.append(configuration(p, st, c, status, reason, entries, provider))
        if not entries:
            continue
        n_params = n_params or entries[0][1].get("facts", {}).get("model_info", {}).get("n_params")
        first_key = None
        for i, e in entries:
            key = f"{cid}/rep{i}" if e["stored"] else first_key
            if e["stored"]:
                for n, t in rep_file(i).items():
                    if n.startswith(label + "/"):
                        tensors[key + n[len(label) :]] = t
                first_key = first_key or key
            runs.append(
                {
                    "config_id": cid,
                    "rep_id": i,
                    "timestamp": e["timestamp"],
                    "runtime_seconds": round(e["runtime_s"], 6),
                    "prompt_text": st["prompt"]["text"],
                    "signals_key": key,
                    "signals_sha256": e["digest"],
                    "bit_identical_to_rep0": e["digest"] == entries[0][1]["digest"],
                    "generated_token_ids": e["tokens"],
                    "decode_steps": [
                        {"step": t, "token_id": tid, "token_text": txt}
                        for t, (tid, txt) in enumerate(zip(e["tokens"], e["token_texts"], strict=True))
                    ],
                }
            )
        res.metrics[f"{label}.reps_bit_identical"] = int(len(entries) == ctx.reps and len(digests) == 1)
        rts = [e["runtime_s"] for _, e in entries]
        res.metrics[f"{label}.runtime_mean_s"] = statistics.fmean(rts)
        res.metrics[f"{label}.runtime_var_s2"] = statistics.variance(rts) if len(rts) > 1 else 0.0
        peaks = [e.get("facts", {}).get("peak_memory_gib") for _, e in entries]
        if any(x is not None for x in peaks):
            res.metrics[f"{label}.peak_memory_gib"] = max(x for x in peaks if x is not None)
        ov = entries[0][1].get("facts", {}).get("overlap")
        if ov:
            res.metrics[f"{label}.overlap_fraction"] = ov["overlap_fraction"]
            res.metrics[f"{label}.workload_utilisation"] = ov["workload_utilisation"]
        for i, e in entries:
            if e.get("divergence"):
                res.errors[f"{label}.determinism"] = (
                    f"repetition {i + 1} differs from repetition 1 at step "
                    f"{e['divergence']['step']} ({e['divergence']['signal']})"
                )
    imported = _import_baseline(st, configurations, runs, tensors)
    doc = {
        "schema": uniform.SCHEMA_ID,
        "experiment_metadata": metadata(p, st, ctx, n_params),
        "configurations": configurations,
        "runs": runs,
    }
    if imported:
        doc["experiment_metadata"]["pack"]["baseline_imported_from"] = imported
    path = uniform.write(ctx.rep_dir, doc, tensors)
    doc = json.loads(path.read_text())
    problems = uniform.validate(doc)
    res.metrics["uniform_json_valid"] = int(not problems)
    if problems:
        res.info["schema_problems"] = problems[:20]
        ctx.log(f"uniform JSON does not validate: {problems[0]}")
    res.metrics["prompt_tokens"] = st["prompt"]["tokens"]
    res.metrics["decode_steps"] = p.decode_steps
    ratio = _storage_ratio(doc, tensors)
    if ratio:
        res.metrics["storage_ratio"], res.info["sidecar_bytes"], res.info["seed_json_bytes"] = ratio
    else:
        res.not_applicable["storage_ratio"] = "no configuration produced signals on this machine"
    _detectability(res, doc, tensors, ctx.rep_dir)
    res.info["uniform_json"] = path.name
    return res


def _import_baseline(st: dict, configurations: list, runs: list, tensors: dict) -> str | None:
    """Copy exp0's baseline configuration, runs and tensors into this experiment (the seed's fused JSON)."""
    src = st.get("baseline_source")
    if not src:
        return None
    doc0, t0 = uniform.read(Path(src["json"]))
    have = {c["config_id"] for c in configurations}
    for c in doc0["configurations"]:
        if not c.get("is_baseline") or c["config_id"] in have:
            continue
        c = dict(c, imported_from=src["run_id"])
        configurations.insert(0, c)
        mine = [r for r in doc0["runs"] if r["config_id"] == c["config_id"]]
        runs[:0] = mine
        for r in mine:
            key = r.get("signals_key")
            for n, t in t0.items():
                if key and n.startswith(key + "/"):
                    tensors[n] = t
    return src["run_id"]


def _detectability(res: RepResult, doc: dict, tensors: dict, out_dir: Path) -> None:
    exp = analysis.Experiment(doc, tensors)
    rep = exp.report()
    for hw_rows in rep["within_hardware_detectability"].values():
        for label, row in hw_rows.items():
            d = row["distance"]
            for metric, sig in (
                ("l2_hidden_last", "hidden_states/last"),
                ("l2_keys_last", "key_vectors/last"),
                ("l2_logprobs", "logprobs"),
            ):
                if sig in d:
                    res.metrics[f"{label}.{metric}"] = d[sig]["mean"]
            res.metrics[f"{label}.first_token_divergence"] = d["first_token_divergence"]
    from ... import fsio
    from .report import jsonable, markdown

    fsio.write_json_atomic(out_dir / "analysis.json", jsonable(rep))
    fsio.write_text_atomic(out_dir / "analysis.md", markdown([rep], title=f"Forensics: {rep['experiment']}"))
