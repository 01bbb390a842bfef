"""Parameters of a forensics row and the configurations (baseline + variants) it runs.

Row params (manifests/forensics.yaml):

    experiment_type   reference | batch_size | compile | quantization | attention |
                      concurrent_streams | cuda_version | tensor_parallel | expert_parallel
    values            the variable's values for this row (batch sizes, ["gptq", "bnb"], [2, 4], ...)
    model             synthetic:<name>, a local checkpoint folder or a hub id
    model_seed        seed of a synthetic model's random initialisation
    dtype             torch dtype the model runs in (bfloat16)
    attention         baseline attention: auto (flash_attention_2 where installed, else sdpa), sdpa, eager
    prompt_tokens     document tokens per prompt (~6000 at full)
    decode_steps      greedy steps (30 at full)
    layers            [1, 2, 4, 12, last]; positions [-3, -2, -1]; top_k 10
    documents         builtin, or a list of .pdf / text files (one per batch row)
    request           the summary request after the document
    baseline_row      the row whose data is this experiment's baseline (exp0); run in-run if absent
    cpu_threads       torch threads on a CPU (fixed: CPU numerics depend on the thread count)
    deterministic     torch.use_deterministic_algorithms + CUBLAS_WORKSPACE_CONFIG=:4096:8 (default true:
                      on an H200 the MoE baseline diverged between repetitions without it, 2026-11-22)
    quantization_checkpoints  {gptq: spec, bnb: spec}: pre-quantized checkpoints (exp3)
    streams           {matmul_size, duty_cycle}: the concurrent workload (exp5)
    compile_backend   torch.compile backend for exp2 (inductor; aot_eager at smoke scale)
    provider          recorded in each configuration (RunPod, AWS, local; $PACK_PROVIDER wins)

A configuration is the baseline settings with the experiment's variable changed:

    batch_size 1 · compile false · attention_impl <resolved> · quantization <checkpoint's or dtype>
    concurrent_streams false · tp_size 1 · ep_size 1 · cuda_version <this process's>
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import Field, StrictBool, StrictInt, field_validator

from ...strict import Number, PositiveInt, Strict
from .kinds import EXPERIMENTS

# gptq/awq/bnb: a pre-quantized checkpoint (params.quantization_checkpoints); bnb-int8 (LLM.int8) and
# bnb-nf4 (4-bit NormalFloat) quantize the loaded model on the fly with bitsandbytes, which is how a
# synthetic model gets a quantized arm at all (no calibration data or pre-quantized weights needed).
QUANT_METHODS = ("gptq", "bnb", "awq", "bnb-int8", "bnb-nf4")
ON_THE_FLY = ("bnb-int8", "bnb-nf4")
ATTENTION_VALUES = ("eager", "sdpa", "flash_attention_2")


class Streams(Strict):
    """The concurrent workload of exp5: square matmuls of this size, busy this fraction of the time."""

    matmul_size: PositiveInt = 8192
    duty_cycle: Number = Field(0.5, ge=0, le=1)


class Params(Strict):
    """A forensics row's params (the one owner of them: `pack validate` checks every row with it)."""

    experiment_type: Literal[tuple(EXPERIMENTS)]  # type: ignore[valid-type]
    values: list[Any] = Field([], validate_default=True)
    model: str = "synthetic:tiny-qwen3-moe"
    model_seed: StrictInt = 0
    dtype: str = "bfloat16"
    attention: Literal["auto", "sdpa", "eager", "flash_attention_2"] = "auto"
    prompt_tokens: PositiveInt = 6000
    decode_steps: PositiveInt = 30
    layers: list[StrictInt | Literal["last"]] = Field([1, 2, 4, 12, "last"], min_length=1)
    positions: list[Annotated[StrictInt, Field(ge=-16, le=-1)]] = Field([-3, -2, -1], min_length=1)
    top_k: PositiveInt = 10
    documents: str | list[str] = "builtin"  # builtin, a .pdf / text file, or one file per batch row
    request: str = "Provide a summary of the document above."
    baseline_row: str | None = None
    cpu_threads: PositiveInt | None = None
    quantization_checkpoints: dict[Literal[QUANT_METHODS], str | None] = {}  # type: ignore[valid-type]
    streams: Streams = Streams()
    provider: str | None = None
    compile_backend: str = "inductor"
    deterministic: StrictBool = True

    @field_validator("values")
    @classmethod
    def _values(cls, values, info):
        et = info.data.get("experiment_type")
        if et is None:
            return values  # experiment_type itself is wrong; that error is enough
        if et == "reference":
            if values:
                raise ValueError("must be empty for the reference experiment (it has no variable)")
            return values
        if not values:
            raise ValueError(f"must list the values of {EXPERIMENTS[et]} to test")
        if et in ("batch_size", "tensor_parallel", "expert_parallel"):
            bad = [v for v in values if isinstance(v, bool) or not isinstance(v, int) or v < 2]
            if bad:
                raise ValueError(f"for {et} must be integers >= 2 (got {bad})")
        if et == "quantization" and (bad := [v for v in values if v not in QUANT_METHODS]):
            raise ValueError(f"for quantization must be among {', '.join(QUANT_METHODS)} (got {bad})")
        if et == "attention" and (bad := [v for v in values if v not in ATTENTION_VALUES]):
            raise ValueError(f"for attention must be among {', '.join(ATTENTION_VALUES)} (got {bad})")
        if et == "cuda_version" and (len(values) != 1 or not isinstance(values[0], str)):
            raise ValueError(
                "for cuda_version must be one version string such as ['11.8'] (one image per row)"
            )
        return values

    @property
    def raw(self) -> dict:
        return self.model_dump()

    @property
    def variable(self) -> str | None:
        return EXPERIMENTS[self.experiment_type]

    def baseline_signature(self, include_versions: bool = True) -> dict:
        """What must match for another run's baseline to stand in for this one's."""
        keys = (
            "model",
            "model_seed",
            "dtype",
            "attention",
            "prompt_tokens",
            "decode_steps",
            "layers",
            "positions",
            "top_k",
            "documents",
            "request",
            "cpu_threads",
            "deterministic",
        )
        raw = self.raw
        return {k: raw[k] for k in keys}


def parse(params: dict) -> Params:
    """The row's params as a Params (pack validate has checked them; a direct caller gets a PackError)."""
    from ..params import parse as parse_params

    return parse_params(Params, params, "forensics")


def label_for(experiment_type: str, value) -> str:
    """Short, stable config label used in metric names and config ids."""
    return {
        "batch_size": lambda v: f"bs{v}",
        "compile": lambda v: "compile",
        "quantization": lambda v: str(v),
        "attention": lambda v: str(v),
        "concurrent_streams": lambda v: "streams",
        "cuda_version": lambda v: "cu" + str(v).replace(".", ""),
        "tensor_parallel": lambda v: f"tp{v}",
        "expert_parallel": lambda v: f"ep{v}",
    }[experiment_type](value)


@dataclass
class Config:
    """One configuration to run: label ("baseline", "bs2", ...), full settings, runnable or why not."""

    label: str
    settings: dict
    is_baseline: bool = False
    not_applicable: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def variable_value(self):
        return self.extra.get("variable_value")


def baseline_settings(attention_impl: str, quantization: str, cuda_version: str | None) -> dict:
    return {
        "batch_size": 1,
        "compile": False,
        "attention_impl": attention_impl,
        "quantization": quantization,
        "concurrent_streams": False,
        "tp_size": 1,
        "ep_size": 1,
        "cuda_version": cuda_version,
    }


def plan(p: Params, base: dict, *, device: str, n_gpus: int, model_facts: dict) -> list[Config]:
    """The variants of this experiment (the baseline is added by the caller when it must run in-run).

    model_facts: n_kv_heads, n_experts (TP/EP divisibility), synthetic (bool), cuda_running (torch's
    CUDA version or None).
    """
    out: list[Config] = []
    if p.experiment_type == "reference":
        return [Config("baseline", dict(base), is_baseline=True, extra={"variable_value": None})]
    var = p.variable
    for v in p.values:
        value = v
        if p.experiment_type in ("compile", "concurrent_streams"):
            value = True
        settings = dict(base)
        settings[var] = value
        cfg = Config(label_for(p.experiment_type, v), settings, extra={"variable_value": value})
        cfg.not_applicable = why_not(p, cfg, device=device, n_gpus=n_gpus, model_facts=model_facts)
        out.append(cfg)
    return out


def why_not(p: Params, cfg: Config, *, device: str, n_gpus: int, model_facts: dict) -> str | None:
    """A reason this configuration cannot run on this machine, or None."""
    s = cfg.settings
    if s["concurrent_streams"] and device != "cuda":
        return "concurrent CUDA streams need a CUDA GPU; this run is on the CPU"
    if p.experiment_type == "cuda_version":
        want, have = str(cfg.variable_value), model_facts.get("cuda_running")
        if device != "cuda" or not have:
            return (
                f"this configuration measures CUDA {want}; this process has no CUDA "
                f"(run it in image cu{want.replace('.', '')})"
            )
        if not str(have).startswith(want):
            return (
                f"this configuration measures CUDA {want}; this process runs torch built for CUDA {have} "
                f"(use image cu{want.replace('.', '')})"
            )
    if p.experiment_type in ("tensor_parallel", "expert_parallel"):
        n = cfg.variable_value
        if device == "cuda" and n_gpus < n:
            return f"{p.experiment_type.replace('_', ' ')} {n} needs {n} GPUs; this machine has {n_gpus}"
        if p.experiment_type == "tensor_parallel" and model_facts.get("n_kv_heads", 1) % n:
            return f"tp_size {n} does not divide the model's {model_facts['n_kv_heads']} KV heads"
        if p.experiment_type == "expert_parallel" and model_facts.get("n_experts", 0) % n:
            return f"ep_size {n} does not divide the model's {model_facts['n_experts']} experts"
    if p.experiment_type == "quantization":
        return _quant_not_applicable(p, str(cfg.variable_value), device, model_facts)
    return None


def _quant_not_applicable(p: Params, method: str, device: str, facts: dict) -> str | None:
    import importlib.util

    ckpt = (p.quantization_checkpoints or {}).get(method)
    backend = {"gptq": "gptqmodel", "awq": "gptqmodel"}.get(method, "bitsandbytes")
    on_the_fly = method in ON_THE_FLY or (method == "bnb" and facts.get("synthetic"))
    if ckpt is None and not on_the_fly:
        why = (
            " (AWQ/GPTQ weights come from a calibration run this pack does not make; bnb-int8/bnb-nf4 "
            "quantize on the fly)"
            if method in ("gptq", "awq")
            else ""
        )
        return (
            f"no pre-quantized {method} checkpoint is configured "
            f"(params.quantization_checkpoints.{method})"
            f"{why}"
        )
    if importlib.util.find_spec(backend) is None:
        return f"the {method} backend '{backend}' is not installed here (pip install {backend})"
    if device != "cuda":
        return f"{method} kernels need a CUDA GPU; this run is on the CPU"
    return None


def signature_hash(sig: dict) -> str:
    return hashlib.sha256(json.dumps(sig, sort_keys=True, default=str).encode()).hexdigest()[:16]
