"""A/B statistics for throughput arms and the statistical half of the contamination verdict.

Arms run interleaved (A B A B ...) so slow drift (clock ramps, thermal soak, a neighbour's job)
hits every arm alike. Over the repetitions of each arm:

    mean, std (sample, n-1), cv = std / mean
    delta_pct       = 100 * (mean_arm - mean_ref) / mean_ref
    variance_ratio  = var_eff(arm) / var_eff(ref),  std_eff = max(std, min_cv * mean)

The floor on the coefficient of variation (default 1 %, timing noise on a quiet GPU) keeps two
quiet arms at 1x instead of a ratio of two tiny numbers (3 runs of llama.cpp can agree to 0.01 %).
Paper B's seed: a clean re-run sits at 1x to 1.5x, the contaminated run was 21x, the limit is 5x.

A run is CONTAMINATED (a rerun, not a failure) when, per reason, every one is named:
  - max(variance_ratio, 1/variance_ratio) exceeds the row's limit,
  - an arm's variance is above `limit` times a clean reference run's, (cv / reference_cv)^2
    (reference_cv: Paper B's clean run scattered ±0.05 tok/s around 39.28, CV 0.13 %),
  - an arm's mean throughput is under the row's floor,
the last two only on the GPU they were measured on; plus the NVML and CPU reasons of contamination.py.

Interleaving puts slow drift on every arm alike, so a load that hits all arms equally leaves the
between-arm ratio near 1x (an A/A re-run under load shows it): the absolute checks (clean reference
CV, floor, other processes, throttling) are what catch it.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ABConfig:
    """params.ab of a throughput or command row.

    metric: the per-arm field compared (e.g. decode_tok_s); higher is better for the floor.
    reference: the clean reference arm (default: the first arm).
    floor: {value: 38, gpu: ["RTX 4060"]} (gpu omitted: everywhere) or a bare number.
    """

    metric: str = "decode_tok_s"
    reference: str | None = None
    variance_ratio_limit: float = 5.0
    min_cv: float = 0.01
    floor: float | None = None
    floor_gpu: tuple[str, ...] = ()
    reference_cv: float | None = None  # a clean run's CV (std/mean) on reference_gpu
    reference_gpu: tuple[str, ...] = ()
    order: str = "interleaved"  # or "alternate": A B, B A, A B ... (cancels a fixed first-arm bias)
    extra_metrics: tuple[str, ...] = field(default_factory=lambda: ("prefill_ms",))

    @classmethod
    def from_params(cls, raw: dict | None) -> ABConfig:
        raw = dict(raw or {})
        floor = raw.pop("floor", None)
        kw = {}
        if isinstance(floor, dict):
            kw["floor"] = None if floor.get("value") is None else float(floor["value"])
            kw["floor_gpu"] = tuple(floor.get("gpu") or ())
        elif floor is not None:
            kw["floor"] = float(floor)
        ref_cv = raw.pop("reference_cv", None)
        if isinstance(ref_cv, dict):
            kw["reference_cv"] = None if ref_cv.get("value") is None else float(ref_cv["value"])
            kw["reference_gpu"] = tuple(ref_cv.get("gpu") or ())
        elif ref_cv is not None:
            kw["reference_cv"] = float(ref_cv)
        if "extra_metrics" in raw:
            raw["extra_metrics"] = tuple(raw["extra_metrics"])
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(raw) - known)
        if unknown:
            from ...errors import ManifestError

            raise ManifestError(f"params.ab has unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**raw, **kw)


def arm_order(arms: list[str], rep_index: int, order: str = "interleaved") -> list[str]:
    """The arms of one repetition: declared order, or reversed on odd repetitions for 'alternate'."""
    if order == "alternate" and rep_index % 2 == 1:
        return list(reversed(arms))
    return list(arms)


def arm_stats(values: list[float]) -> dict:
    """n, mean, std (n-1), cv (std/mean; 0 for a single value)."""
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not vals:
        return {"n": 0, "mean": float("nan"), "std": float("nan"), "cv": float("nan")}
    mean = statistics.fmean(vals)
    std = statistics.stdev(vals) if len(vals) > 1 else 0.0
    return {"n": len(vals), "mean": mean, "std": std, "cv": std / mean if mean else float("nan")}


def _var_eff(s: dict, min_cv: float) -> float:
    return max(s["std"], min_cv * abs(s["mean"])) ** 2


def variance_ratio(ref: dict, arm: dict, min_cv: float = 0.01) -> float:
    """var_eff(arm) / var_eff(ref) with the CV floor; nan when either side has no values."""
    if ref["n"] == 0 or arm["n"] == 0:
        return float("nan")
    denom = _var_eff(ref, min_cv)
    return _var_eff(arm, min_cv) / denom if denom > 0 else float("nan")


def _scoped(value, gpus: tuple[str, ...], gpu_models: list[str], what: str) -> tuple[bool, str]:
    """(applies, why not): a floor or a clean CV measured on one GPU means nothing on another."""
    if value is None:
        return False, f"no {what} set"
    if not gpus:
        return True, ""
    models = [m.lower() for m in gpu_models] or ["cpu"]
    if any(g.lower() in m for g in gpus for m in models):
        return True, ""
    return False, f"{what} {value:g} holds on {', '.join(gpus)}; this run had {', '.join(gpu_models) or 'no GPU'}"


def floor_applies(cfg: ABConfig, gpu_models: list[str]) -> tuple[bool, str]:
    return _scoped(cfg.floor, cfg.floor_gpu, gpu_models, "floor")


def summarize_ab(samples: dict[str, dict[str, list[float]]], cfg: ABConfig, gpu_models: list[str]) -> tuple[dict, list[str], dict]:
    """(metrics, contamination reasons, info) over all repetitions.

    samples: arm -> field -> values over repetitions, e.g. {"baseline": {"decode_tok_s": [39.2, 39.3]}}.
    Metrics: <arm>.<metric>_std / _cv for every arm; <arm>.delta_pct and <arm>.variance_ratio for
    every arm but the reference; the same delta for each extra metric (<arm>.<extra>_delta_pct).
    """
    arms = [a for a in samples if samples[a].get(cfg.metric)]
    metrics: dict = {}
    reasons: list[str] = []
    info: dict = {"metric": cfg.metric, "arms": {}}
    if not arms:
        return metrics, reasons, info
    ref = cfg.reference if cfg.reference in arms else arms[0]
    info["reference"] = ref
    stats = {a: arm_stats(samples[a][cfg.metric]) for a in arms}
    m = cfg.metric
    for a in arms:
        s = stats[a]
        metrics[f"{a}.{m}_std"] = round(s["std"], 6)
        metrics[f"{a}.{m}_cv"] = round(s["cv"], 6)
        info["arms"][a] = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in s.items()}
    ref_s = stats[ref]
    for a in arms:
        if a == ref:
            continue
        s = stats[a]
        delta = 100.0 * (s["mean"] - ref_s["mean"]) / ref_s["mean"] if ref_s["mean"] else float("nan")
        ratio = variance_ratio(ref_s, s, cfg.min_cv)
        metrics[f"{a}.delta_pct"] = round(delta, 4)
        metrics[f"{a}.variance_ratio"] = round(ratio, 4)
        if math.isfinite(ratio) and ratio > 0 and max(ratio, 1 / ratio) > cfg.variance_ratio_limit:
            noisy = a if ratio > 1 else ref
            reasons.append(f"variance ratio {a}/{ref} of {m} is {ratio:.2f}x, beyond the row's limit of "
                           f"{cfg.variance_ratio_limit:g}x (arm '{noisy}' scatters: CV {stats[noisy]['cv']:.2%})")
        for extra in cfg.extra_metrics:
            xa, xr = arm_stats(samples[a].get(extra, [])), arm_stats(samples[ref].get(extra, []))
            if xa["n"] and xr["n"] and xr["mean"]:
                metrics[f"{a}.{extra}_delta_pct"] = round(100.0 * (xa["mean"] - xr["mean"]) / xr["mean"], 4)
    ref_ok, ref_why = _scoped(cfg.reference_cv, cfg.reference_gpu, gpu_models, "clean reference CV")
    info["clean_reference"] = {"cv": cfg.reference_cv, "applies": ref_ok, "why_not": ref_why or None}
    if ref_ok and cfg.reference_cv > 0:
        # Against a fixed clean CV there is no second noisy sample, so no floor: with 3 runs, a clean
        # arm exceeds 5x only with probability P(chi2_2 > 10) = 0.7 %.
        for a in arms:
            if stats[a]["n"] < 2:
                continue
            r = (stats[a]["cv"] / cfg.reference_cv) ** 2
            metrics[f"{a}.variance_vs_clean"] = round(r, 4)
            if r > cfg.variance_ratio_limit:
                reasons.append(f"arm '{a}' CV {stats[a]['cv']:.3%} is a variance {r:.1f}x the clean reference's "
                               f"(CV {cfg.reference_cv:.3%}), beyond the limit of {cfg.variance_ratio_limit:g}x")
    applies, why_not = floor_applies(cfg, gpu_models)
    info["floor"] = {"value": cfg.floor, "applies": applies, "why_not": why_not or None}
    if applies:
        for a in arms:
            if stats[a]["mean"] < cfg.floor:
                reasons.append(f"arm '{a}' mean {m} {stats[a]['mean']:.2f} is under the row's floor of {cfg.floor:g}"
                               + (f" on {', '.join(gpu_models)}" if gpu_models else ""))
    return metrics, reasons, info


def collect(reps, arms: list[str], fields: list[str]) -> dict[str, dict[str, list[float]]]:
    """arm -> field -> values from RepResults whose metrics are named '<arm>.<field>'."""
    out: dict[str, dict[str, list[float]]] = {a: {f: [] for f in fields} for a in arms}
    for r in reps:
        for a in arms:
            for f in fields:
                v = r.metrics.get(f"{a}.{f}")
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    out[a][f].append(float(v))
    return out


def table(samples: dict[str, dict[str, list[float]]], metric: str) -> list[dict]:
    """Per-run rows (run, arm, value) in the interleaved order they were measured."""
    rows = []
    n = max((len(v.get(metric, [])) for v in samples.values()), default=0)
    for i in range(n):
        for arm, fields in samples.items():
            vals = fields.get(metric, [])
            if i < len(vals):
                row = {"run": i + 1, "arm": arm}
                for f, fv in fields.items():
                    row[f] = fv[i] if i < len(fv) else ""
                rows.append(row)
    return rows
