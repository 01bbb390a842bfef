"""A/B statistics for throughput arms and the statistical half of the contamination verdict.

Arms run interleaved (A B A B ...) so slow drift (clock ramps, thermal soak, a neighbour's job)
hits every arm alike. Over the repetitions of each arm:

    mean, std (sample, n-1), cv = std / mean
    delta_pct       = 100 * (mean_arm - mean_ref) / mean_ref, with a bootstrap confidence interval
    variance_ratio  = var_eff(arm) / var_eff(ref),  std_eff = max(std, resolution_std)
    variance_p      = Brown-Forsythe test (Levene, center=median) of equal variances

The floor is the measurement's own resolution, not a percentage (a 1 % CV floor turned the seed's
21x contaminated run into 1x: its noisy arm scattered at 0.53 %). A decode rate r = n / T read off a
timer of tick dt carries a quantisation error of T, uniform over one tick: std dt / sqrt(12), so
std(r) = r^2 * dt / (n * sqrt(12)) (dr/dT = -r^2 / n; "timer resolution / tokens timed", in tok/s).
A value printed or recorded with d decimals carries a uniform rounding error of 10^-d: std
10^-d / sqrt(12). The two are independent, so

    resolution_std = sqrt((10^-d)^2 + (r^2 dt / n)^2) / sqrt(12)

Below it two arms cannot be told apart, so an arm never counts as quieter than that. For Paper B's
engine line ("39.28 tok/s", 2 decimals, ggml's microsecond timer, 32 tokens) it is 0.0029 tok/s, far
under the clean run's 0.05, so the seed's 21x stays 21x.

Paper B's seed: "a clean re-run sits at 1x to 1.5x" (`clean_band`, reported per arm) and "if the
variance ratio is much greater than 5x ... you have background-load contamination" (the limit).
A run is CONTAMINATED (a rerun, not a failure) when, per reason, every one is named:
  - max(variance_ratio, 1/variance_ratio) exceeds the row's limit, and still does with the noisier
    arm's most influential repetition left out (sustained_ratio): a background load is sustained, and
    a quiet engine's single transient must not pass for one. On an H200 (2026-12-02) llama.cpp's arms
    scattered by CV 0.085 % and 0.41 %, the latter from one repetition 1.2 % low among ten: 23x
    plainly, about 1x without it. Only an arm of TRANSIENT_MIN_REPS (5) or more repetitions can show
    a transient; the seed's 21x over three is judged as it stands. The plain ratio stays the
    reported metric; a transient is a warning in the summary and on stderr,
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
from typing import Literal

from pydantic import field_validator

from ...strict import Number, Strict
from ...tolerance import gpu_matches


class OnGpu(Strict):
    """A value that holds on the named GPUs only ({value: 38, gpu: [RTX 4060]}; no gpu: everywhere)."""

    value: Number | None = None
    gpu: tuple[str, ...] = ()


class ABConfig(Strict):
    """params.ab of a throughput or command row (the one place that knows its keys).

    metric: the per-arm field compared (e.g. decode_tok_s); higher is better for the floor.
    reference: the clean reference arm (default: the first arm).
    floor / reference_cv: {value, gpu} or a bare number (everywhere).
    timer_resolution_s, tokens_timed: the rate metric's timer tick and tokens per measurement, for
    the resolution floor (tokens_timed defaults to the row's params.n_decode).
    """

    metric: str = "decode_tok_s"
    reference: str | None = None
    variance_ratio_limit: Number = 5.0
    clean_band: Number = 1.5
    timer_resolution_s: Number = 1e-6  # ggml_time_us (llama.cpp) ticks in microseconds
    tokens_timed: int | None = None
    floor: OnGpu | None = None
    reference_cv: OnGpu | None = None  # a clean run's CV (std/mean) on its GPU
    order: Literal["interleaved", "alternate"] = "interleaved"  # alternate: A B, B A, ...: no first-arm bias
    extra_metrics: tuple[str, ...] = ("prefill_ms",)
    confidence: Number = 0.95
    bootstrap_resamples: int = 9999
    bootstrap_seed: int = 0

    @field_validator("floor", "reference_cv", mode="before")
    @classmethod
    def _bare_number(cls, v):
        return {"value": v} if isinstance(v, (int, float)) and not isinstance(v, bool) else v


@dataclass(frozen=True)
class ArmStats:
    n: int
    mean: float
    std: float
    cv: float


@dataclass(frozen=True)
class ABSummary:
    """What summarize_ab found: metrics for the run, contamination reasons, details for the summary file."""

    metrics: dict = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    info: dict = field(default_factory=dict)


def arm_stats(values: list[float]) -> ArmStats:
    """n, mean, std (n-1), cv (std/mean; 0 for a single value)."""
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not vals:
        return ArmStats(0, float("nan"), float("nan"), float("nan"))
    mean = statistics.fmean(vals)
    std = statistics.stdev(vals) if len(vals) > 1 else 0.0
    return ArmStats(len(vals), mean, std, std / mean if mean else float("nan"))


def decimal_step(values: list[float], max_decimals: int = 12) -> float:
    """10^-d for the fewest decimals d that write every value exactly (0.01 for 39.28); 0 for none."""
    for d in range(max_decimals + 1):
        if all(abs(round(v, d) - v) <= 1e-9 * max(1.0, abs(v)) for v in values):
            return 10.0**-d
    return 0.0


def resolution_std(
    values: list[float], timer_resolution_s: float = 0.0, tokens_timed: int | None = None
) -> float:
    """Std of a rate's quantisation noise: recorded decimals and timer tick, each uniform (see module doc)."""
    vals = [float(v) for v in values if math.isfinite(float(v))]
    if not vals:
        return 0.0
    rate = statistics.fmean(vals)
    timer = rate * rate * timer_resolution_s / tokens_timed if tokens_timed else 0.0
    return math.hypot(decimal_step(vals), timer) / math.sqrt(12.0)


def variance_ratio(ref: ArmStats, arm: ArmStats, floor_ref: float = 0.0, floor_arm: float = 0.0) -> float:
    """var_eff(arm) / var_eff(ref), std_eff = max(std, floor); nan unless both arms have 2+ values."""
    if ref.n < 2 or arm.n < 2:
        return float("nan")
    denom = max(ref.std, floor_ref) ** 2
    return max(arm.std, floor_arm) ** 2 / denom if denom > 0 else float("nan")


TRANSIENT_MIN_REPS = 5


def sustained_ratio(
    ref: list[float], arm: list[float], floor_ref: float = 0.0, floor_arm: float = 0.0
) -> tuple[float, int | None]:
    """The variance ratio arm/ref once the noisier arm's most influential repetition is left out.

    Returns (ratio, index left out). A background load is sustained; a ratio that falls back under the
    limit without one repetition rests on a single transient, which the direct signals (NVML, CPU) judge.
    The noisier arm needs TRANSIENT_MIN_REPS values (else the plain ratio, index None): only with four
    or more others left is there a quiet scatter to call one repetition a transient against.
    """
    plain = variance_ratio(arm_stats(ref), arm_stats(arm), floor_ref, floor_arm)
    if not math.isfinite(plain) or plain <= 0:
        return plain, None
    noisy_is_arm = plain >= 1
    noisy = arm if noisy_is_arm else ref
    if len(noisy) < TRANSIENT_MIN_REPS:
        return plain, None
    best, best_i = plain, None
    for i in range(len(noisy)):
        rest = noisy[:i] + noisy[i + 1 :]
        r = (
            variance_ratio(arm_stats(ref), arm_stats(rest), floor_ref, floor_arm)
            if noisy_is_arm
            else variance_ratio(arm_stats(rest), arm_stats(arm), floor_ref, floor_arm)
        )
        if max(r, 1 / r) < max(best, 1 / best):
            best, best_i = r, i
    return best, best_i


def brown_forsythe_p(a: list[float], b: list[float]) -> float:
    """p-value of equal variances (Levene's test about the median); nan when undefined."""
    if len(a) < 2 or len(b) < 2:
        return float("nan")
    import warnings

    from scipy import stats

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # identical values: scipy warns and returns nan, which we report
        return float(stats.levene(a, b, center="median").pvalue)


def delta_pct_ci(arm: list[float], ref: list[float], cfg: ABConfig) -> tuple[float, float]:
    """Percentile bootstrap interval of delta_pct (fixed seed); BCa's jackknife is unstable at 3 reps."""
    if len(arm) < 2 or len(ref) < 2:
        return float("nan"), float("nan")
    import inspect

    import numpy as np
    from scipy import stats

    def delta(a, r, axis=-1):
        mr = np.mean(r, axis=axis)
        return 100.0 * (np.mean(a, axis=axis) - mr) / mr

    if "rng" in inspect.signature(stats.bootstrap).parameters:  # scipy >= 1.15 names it rng
        seed = {"rng": np.random.default_rng(cfg.bootstrap_seed)}
    else:
        seed = {"random_state": cfg.bootstrap_seed}
    res = stats.bootstrap(
        (np.asarray(arm), np.asarray(ref)),
        delta,
        vectorized=True,
        paired=False,
        confidence_level=cfg.confidence,
        n_resamples=cfg.bootstrap_resamples,
        method="percentile",
        **seed,
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _scoped(scoped: OnGpu | None, gpu_models: list[str], what: str) -> tuple[bool, str]:
    """(applies, why not): a floor or a clean CV measured on one GPU means nothing on another."""
    if scoped is None or scoped.value is None:
        return False, f"no {what} set"
    if not scoped.gpu or gpu_matches(scoped.gpu, gpu_models):  # the one GPU matcher (exact, "cpu": no GPU)
        return True, ""
    return False, (
        f"{what} {scoped.value:g} holds on {', '.join(scoped.gpu)}; "
        f"this run had {', '.join(gpu_models) or 'no GPU'}"
    )


def floor_applies(cfg: ABConfig, gpu_models: list[str]) -> tuple[bool, str]:
    return _scoped(cfg.floor, gpu_models, "floor")


def _r(x: float, digits: int = 6) -> float:
    return round(x, digits) if math.isfinite(x) else x


def summarize_ab(
    samples: dict[str, dict[str, list[float]]], cfg: ABConfig, gpu_models: list[str]
) -> ABSummary:
    """Statistics and contamination reasons over all repetitions.

    samples: arm -> field -> values over repetitions, e.g. {"baseline": {"decode_tok_s": [39.2, 39.3]}}.
    Metrics: <arm>.<metric>_std / _cv for every arm; for every arm but the reference <arm>.delta_pct,
    .delta_pct_ci_low/_high, .variance_ratio and .variance_p (when defined: 2+ values per arm), and
    each extra metric's delta (<arm>.<extra>_delta_pct).
    """
    arms = [a for a in samples if samples[a].get(cfg.metric)]
    out = ABSummary(info={"metric": cfg.metric, "arms": {}})
    if not arms:
        return out
    metrics, reasons, info = out.metrics, out.reasons, out.info
    ref = cfg.reference if cfg.reference in arms else arms[0]
    info["reference"] = ref
    m = cfg.metric
    vals = {a: samples[a][m] for a in arms}
    stats = {a: arm_stats(vals[a]) for a in arms}
    timer = cfg.timer_resolution_s if m.endswith("tok_s") else 0.0  # the timer term is a rate's
    floor = {a: resolution_std(vals[a], timer, cfg.tokens_timed) for a in arms}
    for a in arms:
        s = stats[a]
        metrics[f"{a}.{m}_std"] = _r(s.std)
        metrics[f"{a}.{m}_cv"] = _r(s.cv)
        info["arms"][a] = {
            "n": s.n,
            "mean": _r(s.mean),
            "std": _r(s.std),
            "cv": _r(s.cv),
            "resolution_std": float(f"{floor[a]:.4g}"),
        }
    ref_s = stats[ref]
    for a in arms:
        if a == ref:
            continue
        s = stats[a]
        delta = 100.0 * (s.mean - ref_s.mean) / ref_s.mean if ref_s.mean else float("nan")
        metrics[f"{a}.delta_pct"] = _r(delta, 4)
        low, high = delta_pct_ci(vals[a], vals[ref], cfg)
        ratio = variance_ratio(ref_s, s, floor[ref], floor[a])
        p = brown_forsythe_p(vals[a], vals[ref])
        for name, v in (
            (f"{a}.delta_pct_ci_low", low),
            (f"{a}.delta_pct_ci_high", high),
            (f"{a}.variance_ratio", ratio),
            (f"{a}.variance_p", p),
        ):
            if math.isfinite(v):
                metrics[name] = round(v, 4)
        if not math.isfinite(ratio) or ratio <= 0:
            info["arms"][a]["variance_ratio"] = "undefined: each arm needs 2 or more repetitions"
        else:
            both_ways = max(ratio, 1 / ratio)
            band = (
                "clean (the seed's 1x-1.5x)"
                if both_ways <= cfg.clean_band
                else "contaminated"
                if both_ways > cfg.variance_ratio_limit
                else f"between the seed's clean band ({cfg.clean_band:g}x) and its limit "
                f"({cfg.variance_ratio_limit:g}x)"
            )
            info["arms"][a]["variance_band"] = band
            if both_ways > cfg.variance_ratio_limit:
                noisy = a if ratio > 1 else ref
                kept, dropped = sustained_ratio(vals[ref], vals[a], floor[ref], floor[a])
                test = f"; Brown-Forsythe p = {p:.2g}" if math.isfinite(p) else ""
                if max(kept, 1 / kept) > cfg.variance_ratio_limit:
                    without = f"; {kept:.2f}x without its widest repetition" if dropped is not None else ""
                    reasons.append(
                        f"variance ratio {a}/{ref} of {m} is {ratio:.2f}x, beyond the row's limit of "
                        f"{cfg.variance_ratio_limit:g}x (arm '{noisy}' scatters: "
                        f"CV {stats[noisy].cv:.2%}{test}{without})"
                    )
                else:
                    one = vals[noisy][dropped]
                    info["arms"][a]["variance_band"] = (
                        f"one transient: {ratio:.2f}x rests on arm '{noisy}' repetition {dropped + 1} "
                        f"({one:g}); without it {kept:.2f}x, inside the limit ({cfg.variance_ratio_limit:g}x)"
                    )
                    info.setdefault("warnings", []).append(
                        f"variance ratio {a}/{ref} of {m} is {ratio:.2f}x only through arm '{noisy}' "
                        f"repetition {dropped + 1} ({one:g}); without it {kept:.2f}x: a single transient, "
                        "not a sustained load (not counted as contamination)"
                    )
        for extra in cfg.extra_metrics:
            xa, xr = arm_stats(samples[a].get(extra, [])), arm_stats(samples[ref].get(extra, []))
            if xa.n and xr.n and xr.mean:
                metrics[f"{a}.{extra}_delta_pct"] = round(100.0 * (xa.mean - xr.mean) / xr.mean, 4)
    _against_clean_reference(cfg, gpu_models, arms, stats, out)
    applies, why_not = floor_applies(cfg, gpu_models)
    info["floor"] = {
        "value": cfg.floor.value if cfg.floor else None,
        "applies": applies,
        "why_not": why_not or None,
    }
    if applies:
        for a in arms:
            if stats[a].mean < cfg.floor.value:
                where = f" on {', '.join(gpu_models)}" if gpu_models else ""
                reasons.append(
                    f"arm '{a}' mean {m} {stats[a].mean:.2f} is under the row's floor of "
                    f"{cfg.floor.value:g}{where}"
                )
    return out


def _against_clean_reference(cfg: ABConfig, gpu_models, arms, stats, out: ABSummary) -> None:
    ref_ok, ref_why = _scoped(cfg.reference_cv, gpu_models, "clean reference CV")
    ref_cv = cfg.reference_cv.value if cfg.reference_cv else None
    out.info["clean_reference"] = {"cv": ref_cv, "applies": ref_ok, "why_not": ref_why or None}
    if not (ref_ok and ref_cv > 0):
        return
    # Against a fixed clean CV there is no second noisy sample, so no floor: with 3 runs, a clean
    # arm exceeds 5x only with probability P(chi2_2 > 10) = 0.7 %.
    for a in arms:
        if stats[a].n < 2:
            continue
        r = (stats[a].cv / ref_cv) ** 2
        out.metrics[f"{a}.variance_vs_clean"] = round(r, 4)
        if r > cfg.variance_ratio_limit:
            out.reasons.append(
                f"arm '{a}' CV {stats[a].cv:.3%} is a variance {r:.1f}x the clean reference's "
                f"(CV {ref_cv:.3%}), beyond the limit of {cfg.variance_ratio_limit:g}x"
            )


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
