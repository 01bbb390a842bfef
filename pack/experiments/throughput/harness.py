"""What the pack's throughput backends (llamacpp.py, hf.py) share, on top of the one arm loop.

A backend provides

    prepare(arm, spec, params, ctx) -> None                     load and warm up (before the watches)
    measure(arm: str, spec: dict, params: dict, ctx) -> dict    metrics of one arm, one repetition
    own_gpu_processes() -> int                                  GPU processes this run accounts for

and delegates `run_rep` / `summarize` here; the loop, the watches and the summary are
pack.experiments.arms (order, ExitStack, errors per arm), the statistics ab.py, the files outputs.py.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ...errors import PackError
from ...results import RepResult, RunContext
from .. import arms as arm_loop
from .contamination import CpuWatch, gpu_watch_for

DEFAULT_PROMPT = "Hello, the quick brown fox jumps over the lazy dog and runs into the night"
PER_RUN_FIELDS = (
    "decode_tok_s",
    "prefill_ms",
    "decode_wall_tok_s",
    "prefill_wall_ms",
    "harness_overhead_pct",
    "sampling_pct",
    "engine_untimed_pct",
)


def ppl_text(params: dict) -> tuple[str, str]:
    """(text, sha256 of its UTF-8 bytes)."""
    src = params.get("ppl_text", "builtin")
    if src == "builtin":
        from ...data.documents import generate_document

        text = "\n\n".join(generate_document(i, n_words=1500) for i in range(4))
    else:
        p = Path(os.path.expandvars(str(src))).expanduser()
        if not p.is_file():
            raise PackError(
                f"perplexity text {p} (params.ppl_text) does not exist; give a UTF-8 text file or 'builtin'"
            )
        text = p.read_text(encoding="utf-8")
    return text, hashlib.sha256(text.encode()).hexdigest()


def arms_of(params: dict) -> dict[str, dict]:
    arms = params.get("arms") or {"baseline": {}}
    return {name: dict(spec or {}) for name, spec in arms.items()}


def run_rep(backend, params: dict, ctx: RunContext) -> RepResult:
    """One repetition: every arm once, in the declared order, under the GPU and CPU watches."""
    from .params import ab_config

    order = ab_config(params).order
    cpu_limit = float((params.get("cpu_watch") or {}).get("limit_cores", 0.5))
    watches = {
        "gpu_watch": gpu_watch_for(params, ctx, backend.own_gpu_processes),
        "cpu_watch": CpuWatch(enabled=ctx.device == "cpu", limit_cores=cpu_limit),
    }

    def measure(arm: str, spec: dict) -> arm_loop.ArmOutcome:
        return arm_loop.ArmOutcome(metrics=backend.measure(arm, spec, params, ctx))

    # Loading (and warming) every arm's model happens before the watches: a load is not a measurement.
    return arm_loop.run_rep(
        arms_of(params),
        ctx,
        measure,
        order=order,
        watches=watches,
        prepare=lambda arm, spec: backend.prepare(arm, spec, params, ctx),
    )


def summarize(params: dict, ctx: RunContext, reps: list[RepResult]) -> RepResult:
    out = arm_loop.summarize(params, ctx, reps, arms=list(arms_of(params)), fields=PER_RUN_FIELDS)
    agrees, unjudged = ppl_agreement(reps, list(arms_of(params)))
    out.metrics.update(agrees)
    out.not_applicable.update(unjudged)
    return out


def ppl_agreement(
    reps: list[RepResult], arms: list[str], places: int = 4
) -> tuple[dict[str, int], dict[str, str]]:
    """'<arm>.ppl_agrees_4dp': 1 when every repetition's perplexity of that arm rounds (half up) to the
    same value at 4 decimals, else 0: seed 000's determinism criterion, judged within one run, so it
    holds on any device (a CPU-blessed perplexity is not a GPU's). An arm with one perplexity gets a
    not-applicable reason instead (one value cannot show that repetitions agree), so verify says why
    rather than calling the metric MISSING. Returns (metrics, not_applicable)."""
    from ...tolerance import round_decimal

    out, unjudged = {}, {}
    for arm in arms:
        name = f"{arm}.ppl_agrees_{places}dp"
        vals = [r.metrics.get(f"{arm}.ppl") for r in reps]
        vals = [v for v in vals if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if len(vals) >= 2:
            out[name] = int(len({round_decimal(v, places) for v in vals}) == 1)
        elif vals:
            unjudged[name] = "one perplexity repetition: agreement across repetitions needs ppl_reps >= 2"
    return out, unjudged
