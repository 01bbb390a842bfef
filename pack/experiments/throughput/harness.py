"""What every throughput backend shares: interleaved arms under the GPU watch, and the summary.

A backend module (llamacpp.py, hf.py) provides

    measure(arm: str, spec: dict, params: dict, ctx) -> dict   metrics of one arm, one repetition
    own_gpu_processes() -> int                                  GPU processes this run accounts for

and delegates `run_rep` / `summarize` here. Per repetition the arms run once each, in declared
order (A B A B ... over the repetitions; params.ab.order: alternate gives A B, B A, ...). The summary
adds the A/B statistics (ab.py), the NVML reasons gathered per repetition (contamination.py), the
roofline (roofline.py) and the seed's output files (params.outputs):

    csv               per-run table of a clean run           (Paper B: mcr_ablation.csv)
    contaminated_csv  the same table when the run is contaminated, kept for audit; {run} is the
                      run's ordinal among this row's runs    (mcr_ablation_run{run}_contaminated.csv)
    summary           means, std, CV, delta, variance ratio, verdict inputs (mcr_ablation_summary.json)
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import os
from pathlib import Path

from ... import fsio
from ...errors import PackError
from ...results import RepResult, RunContext
from . import ab, roofline
from .contamination import CpuWatch, GpuWatch

DEFAULT_PROMPT = "Hello, the quick brown fox jumps over the lazy dog and runs into the night"
DEFAULT_OUTPUTS = {"csv": "throughput.csv", "contaminated_csv": "throughput_run{run}_contaminated.csv",
                   "summary": "throughput_summary.json"}
PER_RUN_FIELDS = ("decode_tok_s", "prefill_ms", "decode_wall_tok_s", "prefill_wall_ms", "harness_overhead_pct")


def ppl_text(params: dict) -> tuple[str, str]:
    """(text, sha256 of its UTF-8 bytes)."""
    src = params.get("ppl_text", "builtin")
    if src == "builtin":
        from ...data.documents import generate_document

        text = "\n\n".join(generate_document(i, n_words=1500) for i in range(4))
    else:
        p = Path(os.path.expandvars(str(src))).expanduser()
        if not p.is_file():
            raise PackError(f"perplexity text {p} (params.ppl_text) does not exist; give a UTF-8 text file or 'builtin'")
        text = p.read_text(encoding="utf-8")
    return text, hashlib.sha256(text.encode()).hexdigest()


def arms_of(params: dict) -> dict[str, dict]:
    arms = params.get("arms") or {"baseline": {}}
    return {name: dict(spec or {}) for name, spec in arms.items()}


def watch_for(params: dict, ctx: RunContext, own) -> GpuWatch:
    w = params.get("gpu_watch") or {}
    return GpuWatch(int(w.get("gpu", 0)), interval_s=float(w.get("interval_s", 0.2)), own_gpu_processes=own,
                    idle_check=bool(w.get("idle_check", True)) and ctx.rep_index == 0,
                    settle_s=float(w.get("settle_s", 1.5)), idle_util_limit=float(w.get("idle_util_limit", 10.0)))


def run_rep(backend, params: dict, ctx: RunContext) -> RepResult:
    """One repetition: every arm once, interleaved, under the GPU watch."""
    cfg = ab.ABConfig.from_params(params.get("ab"))
    arms = arms_of(params)
    result = RepResult()
    # Load (and warm) every arm's model before the watch: a load is not part of the measurement.
    for arm in arms:
        try:
            backend.prepare(arm, arms[arm], params, ctx)
        except PackError as e:
            result.errors[arm] = str(e)
    cpu_limit = float((params.get("cpu_watch") or {}).get("limit_cores", 0.5))
    with watch_for(params, ctx, backend.own_gpu_processes) as watch, \
            CpuWatch(enabled=ctx.device == "cpu", limit_cores=cpu_limit) as cpu:
        for arm in ab.arm_order(list(arms), ctx.rep_index, cfg.order):
            if arm in result.errors:
                continue
            try:
                metrics = backend.measure(arm, arms[arm], params, ctx)
            except PackError as e:
                result.errors[arm] = str(e)
                continue
            for k, v in metrics.items():
                result.metrics[f"{arm}.{k}"] = v
    note_contamination(result, watch.reasons() + cpu.reasons(), ctx)
    result.info["gpu_watch"] = watch.record()
    result.info["cpu_watch"] = cpu.record()
    return result


def note_contamination(result: RepResult, reasons: list[str], ctx: RunContext) -> None:
    """Keep a repetition's reasons in its info; summarize() merges them over the repetitions."""
    result.info["contamination"] = reasons
    if reasons:
        ctx.log("contamination: " + "; ".join(reasons))


def merge_reasons(reps: list[RepResult]) -> list[str]:
    """One reason per kind (its first three words) over all repetitions, with how often it was seen."""
    kinds: dict[str, list[str]] = {}
    for r in reps:
        for reason in (r.info or {}).get("contamination", []) + list(r.contamination):
            kinds.setdefault(" ".join(reason.split()[:3]), []).append(reason)
    out = []
    for texts in kinds.values():
        out.append(texts[0] + (f" (in {len(texts)} of {len(reps)} repetitions)" if len(reps) > 1 else ""))
    return out


def run_ordinal(ctx: RunContext) -> int:
    """This run's 1-based position among the row's run directories (for the contaminated CSV name)."""
    try:
        runs = sorted(p.name for p in ctx.run_dir.parent.iterdir() if p.is_dir())
        return runs.index(ctx.run_dir.name) + 1
    except (OSError, ValueError):
        return 1


def summarize(params: dict, ctx: RunContext, reps: list[RepResult], *, arms: list[str] | None = None,
              fields: tuple[str, ...] = PER_RUN_FIELDS) -> RepResult:
    """A/B statistics, contamination verdict inputs, roofline and the output files, over all reps."""
    from ... import gpuinfo

    cfg = ab.ABConfig.from_params(params.get("ab"))
    arms = arms or list(arms_of(params))
    fields = tuple(dict.fromkeys((cfg.metric, *fields)))
    samples = ab.collect(reps, arms, list(fields))
    samples = {a: {f: v for f, v in fs.items() if v} for a, fs in samples.items() if fs.get(cfg.metric)}
    gpu_models = [g["name"] for g in gpuinfo.gpus()]
    metrics, reasons, info = ab.summarize_ab(samples, cfg, gpu_models)
    earlier = merge_reasons(reps)
    out = RepResult(metrics=metrics, contamination=earlier + reasons, info={"ab": info})
    _roofline(params, ctx, reps, samples, cfg.metric, out)
    contaminated = bool(out.contamination)
    _write_outputs(params, ctx, samples, cfg, out, contaminated)
    return out


def _roofline(params, ctx, reps, samples, metric, out: RepResult) -> None:
    spec = params.get("roofline", {})
    if spec is False:
        return
    per_arm = {}
    for a in samples:
        vals = [r.metrics.get(f"{a}.bytes_per_token") for r in reps if r.metrics.get(f"{a}.bytes_per_token")]
        if vals:
            per_arm[a] = float(vals[-1])
    if not per_arm and isinstance(spec, dict) and spec.get("bytes_per_token"):
        per_arm = {a: float(spec["bytes_per_token"]) for a in samples}
    if not per_arm:
        return
    device = (spec or {}).get("device") or ctx.device
    try:
        bw = roofline.device_bandwidth(device, ctx.cache, (spec or {}).get("bandwidth_gbs"))
    except Exception as e:  # no torch/CUDA for the measurement: say so instead of guessing
        for a in per_arm:
            out.not_applicable[f"{a}.roofline_fraction"] = f"device bandwidth could not be measured on {device}: {e}"
        return
    out.metrics["device_bandwidth_gbs"] = round(bw["bytes_per_s"] / 1e9, 3)
    out.info["bandwidth"] = bw | {"device": device}
    for a, bpt in per_arm.items():
        vals = samples[a][metric]
        rl = roofline.roofline(sum(vals) / len(vals), bpt, bw["bytes_per_s"])
        out.metrics[f"{a}.roofline_bound_tok_s"] = float(f"{rl['bound_tok_s']:.6g}")
        out.metrics[f"{a}.roofline_fraction"] = float(f"{rl['fraction']:.4g}")


def _write_outputs(params, ctx, samples, cfg, out: RepResult, contaminated: bool) -> None:
    names = DEFAULT_OUTPUTS | (params.get("outputs") or {})
    rows = ab.table(samples, cfg.metric)
    if rows:
        name = names["contaminated_csv"].format(run=run_ordinal(ctx)) if contaminated else names["csv"]
        cols = list(dict.fromkeys(k for r in rows for k in r))
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        fsio.write_text_atomic(ctx.rep_dir / name, buf.getvalue())
        out.info["csv"] = name
    summary = {
        "metric": cfg.metric, "reference": out.info["ab"].get("reference"),
        "arms": out.info["ab"].get("arms", {}),
        "delta_pct": {k.split(".")[0]: v for k, v in out.metrics.items() if k.endswith(".delta_pct")},
        "variance_ratio": {k.split(".")[0]: v for k, v in out.metrics.items() if k.endswith(".variance_ratio")},
        "variance_ratio_limit": cfg.variance_ratio_limit, "min_cv": cfg.min_cv,
        "floor": out.info["ab"].get("floor"),
        "roofline": {k: v for k, v in out.metrics.items() if "roofline" in k or k == "device_bandwidth_gbs"},
        "contaminated": contaminated,
        "contamination": out.contamination,
        "advice": "close co-resident GPU work and rerun" if contaminated else None,
    }
    fsio.write_json_atomic(ctx.rep_dir / names["summary"], _finite(summary))


def _finite(x):
    """JSON without NaN/Infinity (strict parsers reject them): non-finite floats become null."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite(v) for v in x]
    return x
