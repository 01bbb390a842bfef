"""One arm loop: every experiment that compares arms (command rows, the llama.cpp and transformers
throughput backends) runs them here, in the declared order, under the watches, and is summarised here.

    result = arms.run_rep(arms, ctx, measure, order="alternate", watches={"gpu_watch": GpuWatch(...)})
    summary = arms.summarize(params, ctx, reps, fields=("decode_tok_s", "prefill_ms"))

Per repetition every arm runs once (an arm with `once: true` in the first repetition only), in the
declared order (A B A B ... over the repetitions), or for `order: alternate` reversed on odd
repetitions (A B, B A, ...: a fixed first-arm advantage cancels). The watches (GPU/CPU, see
throughput/contamination.py) are entered in one `contextlib.ExitStack` around all arms, so they are
closed and their contamination reasons noted even when a measurement raises.

An arm that cannot run or fails (a missing backend, a crash, an engine that exits non-zero) is that
arm's error, with the message or the last output lines; the other arms still run. The runner records
the errors and exits non-zero.

The summary (rows with params.ab) gives the A/B statistics (throughput/ab.py), the contamination
reasons of all repetitions merged, the roofline and the seed-style output files (throughput/outputs.py).
"""

from __future__ import annotations

import contextlib
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ..errors import PackError
from ..results import RepResult, RunContext


@dataclass(frozen=True)
class ArmOutcome:
    """One arm, one repetition: its metrics (named by field, the loop prefixes the arm), what to keep
    in the repetition's info, and an error when it failed (metrics may still be partly there)."""

    metrics: dict = field(default_factory=dict)
    info: dict | None = None
    error: str | None = None


def arm_order(arms: list[str], rep_index: int, order: str = "interleaved") -> list[str]:
    """The arms of one repetition: declared order, or reversed on odd repetitions for 'alternate'."""
    if order == "alternate" and rep_index % 2 == 1:
        return list(reversed(arms))
    return list(arms)


def run_rep(
    arms: Mapping[str, dict],
    ctx: RunContext,
    measure: Callable[[str, dict], ArmOutcome],
    *,
    order: str = "interleaved",
    watches: Mapping[str, contextlib.AbstractContextManager] | None = None,
    prepare: Callable[[str, dict], None] | None = None,
) -> RepResult:
    """Run every arm once (see the module doc); `prepare` (loading, warm-up) runs before the watches."""
    result = RepResult()
    for arm, spec in arms.items():
        if prepare is None or not _runs(spec, ctx):
            continue
        try:
            prepare(arm, spec)
        except Exception as e:  # noqa: BLE001 - this arm cannot run; the others may
            result.errors[arm] = _why(e, ctx, arm)
    watches = dict(watches or {})
    with contextlib.ExitStack() as stack:
        stack.callback(_note_watches, result, watches, ctx)  # runs last: after every watch has closed
        for w in watches.values():
            stack.enter_context(w)
        for arm in arm_order(list(arms), ctx.rep_index, order):
            spec = arms[arm] or {}
            if arm in result.errors or not _runs(spec, ctx):
                continue
            try:
                outcome = measure(arm, spec)
            except Exception as e:  # noqa: BLE001
                result.errors[arm] = _why(e, ctx, arm)
                continue
            for k, v in outcome.metrics.items():
                result.metrics[f"{arm}.{k}"] = v
            if outcome.info is not None:
                result.info[arm] = outcome.info
            if outcome.error:
                result.errors[arm] = outcome.error
    return result


def _runs(spec: dict | None, ctx: RunContext) -> bool:
    return not ((spec or {}).get("once") and ctx.rep_index > 0)


def _why(e: Exception, ctx: RunContext, arm: str) -> str:
    if isinstance(e, PackError):
        return str(e)
    ctx.log(f"arm {arm} raised:\n{traceback.format_exc()}")  # a bug or a crash: the traceback goes to the log
    return f"raised {type(e).__name__}: {e}"


def _note_watches(result: RepResult, watches: dict, ctx: RunContext) -> None:
    reasons: list[str] = []
    for name, w in watches.items():
        reasons += w.reasons()
        result.info[name] = w.record()
    note_contamination(result, reasons, ctx)


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


def summarize(
    params: dict, ctx: RunContext, reps: list[RepResult], *, arms: list[str], fields: tuple[str, ...]
) -> RepResult:
    """A/B statistics, contamination verdict inputs, roofline and the output files, over all reps."""
    from .. import gpuinfo
    from .throughput import ab, outputs
    from .throughput.params import ab_config

    cfg = ab_config(params)
    n_decode = params.get("n_decode")
    if cfg.tokens_timed is None and isinstance(n_decode, int) and n_decode > 0:
        cfg = cfg.model_copy(update={"tokens_timed": n_decode})
    fields = tuple(dict.fromkeys((cfg.metric, *fields)))
    samples = ab.collect(reps, arms, list(fields))
    samples = {a: {f: v for f, v in fs.items() if v} for a, fs in samples.items() if fs.get(cfg.metric)}
    stats = ab.summarize_ab(samples, cfg, [g["name"] for g in gpuinfo.gpus()])
    out = RepResult(
        metrics=stats.metrics, contamination=merge_reasons(reps) + stats.reasons, info={"ab": stats.info}
    )
    for w in stats.info.get("warnings", []):
        ctx.log(f"warning: {w}")
    outputs.add_roofline(params, ctx, reps, samples, cfg.metric, out)
    outputs.write(params, ctx, samples, cfg, out)
    return out
