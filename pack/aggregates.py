"""Metrics over repetitions: the aggregate run.json records (`aggregate`), and the check that a
recorded aggregate still equals the one recomputed from the repetitions (`compare_aggregates`).

Both sides of that check live here so that the runner and the integrity check cannot drift apart.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

from .results import RepResult
from .run_record import MetricAggregate

FIELDS = ("values", "n", "mean", "std", "min", "max", "median")


def aggregate(reps: list[RepResult], summary: RepResult | None) -> dict[str, dict]:
    """name -> {values, n, mean, std, min, max, median}: MetricAggregate's JSON form over the repetitions
    (a summary's value stands in where no repetition has one)."""
    names: list[str] = []
    for r in reps + ([summary] if summary else []):
        for k in r.metrics:
            if k not in names:
                names.append(k)
    out = {}
    for name in names:
        values = [r.metrics[name] for r in reps if name in r.metrics]
        if summary and name in summary.metrics:
            values = [summary.metrics[name]] if not values else values
        entry: dict = {"values": values, "n": len(values)}
        nums = [as_float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if nums and len(nums) == len(values):
            finite = [v for v in nums if math.isfinite(v)]
            try:
                mean = statistics.fmean(finite) if finite else float("nan")
                std = statistics.stdev(finite) if len(finite) > 1 else 0.0
            except (
                OverflowError
            ):  # values near ±1.8e308: recorded as NaN, judged (never passed) from `values`
                mean = std = float("nan")
            entry.update(mean=mean, std=std, min=min(nums), max=max(nums), median=statistics.median(nums))
        out[name] = entry
    return out


def as_float(v) -> float:
    """An int too large for a float (10**400 in a rep.json) is ±inf here, not an OverflowError."""
    try:
        return float(v)
    except OverflowError:
        return math.inf if v > 0 else -math.inf


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, int) and isinstance(b, int):
        return a == b and isinstance(a, bool) == isinstance(b, bool)  # exact, and no float overflow
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return _same(as_float(a), as_float(b))
    return a == b


def compare_aggregates(
    where: Path,
    recorded: dict[str, MetricAggregate],
    recomputed: dict[str, MetricAggregate],
    rep_file: str,
) -> list[str]:
    """One sentence per metric whose recorded aggregate (in `where`) differs from the recomputed one."""
    problems = []
    for name in sorted(set(recorded) | set(recomputed)):
        if name not in recomputed:
            problems.append(
                f"{where}: metric '{name}' is not in any repetition's {rep_file}; "
                "run.json disagrees with the per-repetition files"
            )
            continue
        if name not in recorded:
            problems.append(f"{where}: metric '{name}' of the per-repetition files is absent from run.json")
            continue
        got, want = recorded[name].as_dict(), recomputed[name].as_dict()
        for key in FIELDS:
            if not _same(got.get(key), want.get(key)):
                problems.append(
                    f"{where}: metric '{name}' {key} is {got.get(key)!r} but the per-repetition "
                    f"files give {want.get(key)!r}; run.json was edited or the repetitions "
                    "replaced"
                )
                break
    return problems
