"""The params blocks the arm experiments share (command rows and both throughput backends): one typed
model per block, so `pack validate` finds a typo before anything runs. Light: pydantic only."""

from __future__ import annotations

from typing import Literal

from pydantic import ValidationError

from ...strict import Number, Strict, did_you_mean
from .ab import ABConfig


class Outputs(Strict):
    """Names of the summary files (throughput/outputs.py); {run} is the run's ordinal."""

    csv: str | None = None
    contaminated_csv: str | None = None
    summary: str | None = None


class Roofline(Strict):
    bandwidth_gbs: Number | None = None
    device: str | None = None
    bytes_per_token: Number | None = None
    model: str | None = None  # a GGUF path ({name} templates filled from params)
    position: Number = 64


class GpuWatchParams(Strict):
    gpu: int = 0
    interval_s: Number = 0.2
    idle_check: bool = True
    settle_s: Number = 1.5
    idle_util_limit: Number = 10.0


class CpuWatchParams(Strict):
    limit_cores: Number = 0.5


class ArmParams(Strict):
    """What every arm experiment's params have: the A/B block, the outputs and the watches."""

    ab: ABConfig | None = None
    outputs: Outputs | None = None
    roofline: Roofline | Literal[False] | None = None
    gpu_watch: GpuWatchParams | None = None


class ThroughputParams(ArmParams):
    """Keys both pack backends (llamacpp.py, hf.py) read; each adds its model settings."""

    model: str | None = None
    prompt: str = "Hello, the quick brown fox jumps over the lazy dog and runs into the night"
    n_decode: int = 32
    warmup: int = 1
    ppl_reps: int = 1
    ppl_text: str = "builtin"
    ppl_ctx: int | None = None
    ppl_chunks: int | None = None
    seed: int = 0
    cpu_watch: CpuWatchParams | None = None


class _ABOnly(Strict):
    ab: ABConfig | None = None


def ab_config(params: dict) -> ABConfig:
    """params.ab of any arm row (defaults when absent), checked like the rest of the row's params."""
    return validated(_ABOnly, {"ab": params.get("ab")}, "").ab or ABConfig()


def validated(model: type[Strict], params: dict, experiment: str):
    """params as `model`; a bad key or value is one ManifestError sentence (did-you-mean for typos).
    `pack validate` reports the same problems with file:line before a run."""
    try:
        return model.model_validate(params)
    except ValidationError as e:
        from ...errors import ManifestError

        problems = []
        for err in e.errors(include_url=False):
            loc = [str(p) for p in err["loc"] if isinstance(p, int) or "[" not in str(p)]
            where = "params." + ".".join(loc) if loc else "params"
            if err["type"] == "extra_forbidden":
                owner = _model_at(model, loc[:-1])
                hint = did_you_mean(loc[-1], owner.model_fields) if owner else ""
                hint = f"; {hint}" if hint else ""
                of_row = f" of a {experiment} row" if experiment else ""
                problems.append(f"{where} is not a known key{of_row}{hint}")
            else:
                problems.append(f"{where}: {err['msg'].removeprefix('Value error, ')}")
        raise ManifestError("; ".join(problems)) from None


def _model_at(model, loc: list[str]):
    """The model owning the last key of a field path (dict keys and list indexes are stepped over)."""
    for part in loc:
        fields = getattr(model, "model_fields", None)
        if fields is not None and part in fields:
            model = _inner_model(fields[part].annotation)
    return model if hasattr(model, "model_fields") else None


def _inner_model(ann):
    if isinstance(ann, type) and hasattr(ann, "model_fields"):
        return ann
    for a in getattr(ann, "__args__", ()):
        m = _inner_model(a)
        if m is not None:
            return m
    return None
