"""Load the row's model and tokenizer once per process (ctx.cache), and its data.

params.model   "synthetic:<arch>" (pack.models.synthetic, random init with params.seed) or a
               local checkpoint directory / hub id for AutoModelForCausalLM.from_pretrained
params.dtype   float32 | bfloat16 | float16
params.device_map  optional, e.g. "auto" to spread a 30B model over several GPUs
params.experts_implementation  optional transformers experts kernel ("eager" on CPU)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, NamedTuple

from pydantic import StrictInt

from ...errors import ManifestError, require
from ...results import RunContext
from ...strict import Strict


class ModelParams(Strict):
    """The params every ECMoE row shares: which model, how it is loaded (see the module docstring)."""

    model: str
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    device_map: str | None = None
    seed: StrictInt = 0
    experts_implementation: str | None = None


def model_key(params: dict, ctx: RunContext) -> tuple:
    return (
        "ecmoe.model",
        str(params["model"]),
        params.get("dtype", "float32"),
        str(params.get("device_map") or ctx.device),
        int(params.get("seed", 0)),
    )


class LoadedModel(NamedTuple):
    """What load_model gives back (named, and still unpacks as model, tok, facts)."""

    model: Any
    tok: Any
    facts: dict


def load_model(params: dict, ctx: RunContext) -> LoadedModel:
    """The model, its tokenizer and its facts; the same settings in one process reuse the loaded model."""
    key = model_key(params, ctx)
    if key not in ctx.cache:
        ctx.cache[key] = _load(params, ctx)
    model = ctx.cache[key][0]
    impl = params.get("experts_implementation")
    if impl and hasattr(model, "set_experts_implementation"):
        # CPU smoke runs: transformers' default grouped_mm experts kernel is ~3x slower than eager there.
        model.set_experts_implementation(impl)
    return ctx.cache[key]


def _load(params: dict, ctx: RunContext):
    torch = require("torch", "hf", "ECMoE rows")
    transformers = require("transformers", "hf", "ECMoE rows")
    spec = str(params["model"])
    dtype = params.get("dtype", "float32")
    if not hasattr(torch, dtype) or not isinstance(getattr(torch, dtype), torch.dtype):
        raise ManifestError(
            f"params.dtype = {dtype!r} is not a torch dtype; use float32, bfloat16 or float16"
        )
    ctx.log(f"loading model {spec} ({dtype})")
    if spec.startswith("synthetic:"):
        from ...models import synthetic

        model = synthetic.build_model(
            spec.split(":", 1)[1], seed=int(params.get("seed", 0)), dtype=dtype, device=ctx.device
        )
        tok = synthetic.build_tokenizer()
        facts = {"model": spec, "init_seed": int(params.get("seed", 0))}
    else:
        local = Path(os.path.expandvars(spec)).expanduser()
        source = str(local) if local.exists() else spec
        kw = {"dtype": getattr(torch, dtype)}
        if params.get("device_map"):
            kw["device_map"] = params["device_map"]
        try:
            model = transformers.AutoModelForCausalLM.from_pretrained(source, **kw)
            tok = transformers.AutoTokenizer.from_pretrained(source)
        except OSError as e:
            raise ManifestError(
                f"params.model = {spec!r}: cannot load it ({str(e).splitlines()[0]}); point "
                "it at a local checkpoint directory or a cached hub id"
            ) from None
        if not params.get("device_map"):
            model.to(ctx.device)
        model.eval()
        facts = {"model": spec, "revision": getattr(model.config, "_commit_hash", None)}
    if getattr(tok, "pad_token_id", None) is None:
        tok.pad_token = tok.eos_token
    ctx.count("model_loads")
    facts["params"] = int(sum(p.numel() for p in model.parameters()))
    ctx.provenance.setdefault("models", {})[spec] = facts
    return LoadedModel(model, tok, facts)


def input_device(model):
    """Where input ids go: the embedding's device (the first shard under device_map='auto')."""
    return model.get_input_embeddings().weight.device


def resolve_data(spec: str, ctx: RunContext, kind: str, make) -> Path:
    """A data file: a path as given, or for 'synthetic' one written by `make(path)` under the run dir."""
    if spec == "synthetic":
        path = ctx.run_dir / f"synthetic_{kind}.jsonl"
        if not path.is_file():
            make(path)
        return path
    return Path(os.path.expandvars(str(spec))).expanduser()
