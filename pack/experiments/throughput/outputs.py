"""What an A/B summary adds besides statistics: the roofline and the seed-style output files.

params.outputs (names inside the run's summary/ folder):

    csv               per-run table of a clean run           (Paper B: mcr_ablation.csv)
    contaminated_csv  the same table when the run is contaminated, kept for audit; {run} is the
                      run's ordinal among this row's runs    (mcr_ablation_run{run}_contaminated.csv)
    summary           means, std, CV, delta (and its interval), variance ratio and test, verdict inputs

params.roofline: false, or {bandwidth_gbs?, device?, bytes_per_token?, model?, position?}. Bytes per
token come from the arms' own `bytes_per_token` metric (the pack's backends), else from
`bytes_per_token`, else from a GGUF `model` ({name} templates filled from params) at `position`.
"""

from __future__ import annotations

import csv
import io
import math
import sys

from ... import fsio
from ...errors import PackError
from ...results import RepResult, RunContext
from . import ab, roofline

DEFAULT_OUTPUTS = {
    "csv": "throughput.csv",
    "contaminated_csv": "throughput_run{run}_contaminated.csv",
    "summary": "throughput_summary.json",
}


def run_ordinal(ctx: RunContext) -> int:
    """This run's 1-based position among the row's run directories (for the contaminated CSV name)."""
    try:
        runs = sorted(p.name for p in ctx.run_dir.parent.iterdir() if p.is_dir())
        return runs.index(ctx.run_dir.name) + 1
    except (OSError, ValueError):
        return 1


def _gguf_bytes_per_token(spec: dict, params: dict) -> float:
    from ...models.gguf import check_gguf
    from ..argv import render_args
    from .roofline import gguf_bytes_per_token

    info = check_gguf(render_args([spec["model"]], params)[0])
    return gguf_bytes_per_token(info, float(spec.get("position", 64)))["total"]


def add_roofline(
    params: dict, ctx: RunContext, reps: list[RepResult], samples, metric: str, out: RepResult
) -> None:
    spec = params.get("roofline", {})
    if spec is False:
        return
    spec = spec or {}
    per_arm = {}
    for a in samples:
        vals = [r.metrics.get(f"{a}.bytes_per_token") for r in reps if r.metrics.get(f"{a}.bytes_per_token")]
        if vals:
            per_arm[a] = float(vals[-1])
    if not per_arm and spec.get("bytes_per_token"):
        per_arm = {a: float(spec["bytes_per_token"]) for a in samples}
    if not per_arm and spec.get("model"):
        try:
            bpt = _gguf_bytes_per_token(spec, params)
        except PackError as e:
            out.info["roofline"] = f"no roofline: {e}"
            return
        per_arm = {a: bpt for a in samples}
    if not per_arm:
        return
    device = spec.get("device") or ctx.device
    try:
        # A process that has not loaded torch (a llama.cpp row) must not load it now: its CUDA libraries
        # clash with llama.cpp's in one process (roofline.measure_cuda_bandwidth_isolated).
        bw = roofline.device_bandwidth(
            device, ctx.cache, spec.get("bandwidth_gbs"), isolate="torch" not in sys.modules
        )
    except Exception as e:  # noqa: BLE001 - no torch/CUDA for the measurement: say so instead of guessing
        for a in per_arm:
            out.not_applicable[f"{a}.roofline_fraction"] = (
                f"device bandwidth could not be measured on {device}: {e}"
            )
        return
    out.metrics["device_bandwidth_gbs"] = round(bw["bytes_per_s"] / 1e9, 3)
    out.info["bandwidth"] = bw | {"device": device}
    for a, bpt in per_arm.items():
        vals = samples[a][metric]
        rl = roofline.roofline(sum(vals) / len(vals), bpt, bw["bytes_per_s"])
        out.metrics[f"{a}.roofline_bound_tok_s"] = float(f"{rl['bound_tok_s']:.6g}")
        out.metrics[f"{a}.roofline_fraction"] = float(f"{rl['fraction']:.4g}")


def _per_arm(metrics: dict, suffix: str) -> dict:
    return {k[: -len(suffix)]: v for k, v in metrics.items() if k.endswith(suffix)}


def write(params: dict, ctx: RunContext, samples, cfg: ab.ABConfig, out: RepResult) -> None:
    """The per-run CSV (named for a clean or a contaminated run) and the summary JSON."""
    contaminated = bool(out.contamination)
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
    m = out.metrics
    lows, highs = _per_arm(m, ".delta_pct_ci_low"), _per_arm(m, ".delta_pct_ci_high")
    summary = {
        "metric": cfg.metric,
        "reference": out.info["ab"].get("reference"),
        "arms": out.info["ab"].get("arms", {}),
        "delta_pct": _per_arm(m, ".delta_pct"),
        "delta_pct_ci": {a: [lows[a], highs.get(a)] for a in lows},
        "confidence": cfg.confidence,
        "variance_ratio": _per_arm(m, ".variance_ratio"),
        "variance_p_brown_forsythe": _per_arm(m, ".variance_p"),
        "variance_ratio_limit": cfg.variance_ratio_limit,
        "clean_band": cfg.clean_band,
        "floor": out.info["ab"].get("floor"),
        "roofline": {k: v for k, v in m.items() if "roofline" in k or k == "device_bandwidth_gbs"},
        "contaminated": contaminated,
        "contamination": out.contamination,
        "warnings": out.info["ab"].get("warnings", []),
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
