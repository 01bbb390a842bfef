"""The params blocks the arm experiments share (command rows and both throughput backends): one typed
model per block, so `pack validate` finds a typo before anything runs. Light: pydantic only."""

from __future__ import annotations

from typing import Literal

from ...strict import Number, Strict
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
    from ..params import parse

    return parse(_ABOnly, {"ab": params.get("ab")}, "A/B statistics").ab or ABConfig()
