"""The environment fingerprint recorded with every run (`pack env`).

Fields that cannot be read on this machine are present with the value "unavailable" and a reason,
never silently absent, so `pack env --diff` compares like with like.
"""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from typing import NamedTuple

from . import __version__, gpuinfo, paths

UNAVAILABLE = "unavailable"
BACKENDS = (
    "torch",
    "transformers",
    "accelerate",
    "safetensors",
    "tokenizers",
    "flash-attn",
    "autoawq",
    "gptqmodel",
    "auto-gptq",
    "bitsandbytes",
    "vllm",
    "llama_cpp_python",
    "gguf",
    "lm_eval",
    "numpy",
    "scipy",
    "pydantic",
    "click",
    "nvidia-ml-py",
)
DETERMINISM_ENV = (
    "CUBLAS_WORKSPACE_CONFIG",
    "PYTHONHASHSEED",
    "CUDA_LAUNCH_BLOCKING",
    "NVIDIA_TF32_OVERRIDE",
    "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE",
    "CUDA_VISIBLE_DEVICES",
    "OMP_NUM_THREADS",
)


def package_version(dist: str) -> str | None:
    """The installed version of a distribution (either spelling of - and _), or None."""
    for name in (dist, dist.replace("_", "-"), dist.replace("-", "_")):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def git_sha() -> str:
    """The pack checkout's commit (+ "-dirty"), PACK_GIT_SHA inside an image, else UNAVAILABLE."""
    root = paths.project_root()
    env_sha = os.environ.get("PACK_GIT_SHA")  # baked into images, which carry no .git
    if env_sha:
        return env_sha
    try:
        res = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        sha = res.stdout.strip()
        if res.returncode == 0 and sha:
            dirty = subprocess.run(
                ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout.strip()
            return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.TimeoutExpired):
        pass
    return UNAVAILABLE


def _pip_freeze_hash() -> dict:
    """A hash of every installed distribution's name and version (what `pip freeze` would list).

    Read from the *.dist-info / *.egg-info folder names, which carry name and version: parsing
    every METADATA file costs seconds on a large environment.
    """
    dists = set()
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for n in names:
            if n.endswith((".dist-info", ".egg-info")):
                dists.add(n.rsplit(".", 1)[0].lower().replace("_", "-"))
    listing = sorted(dists)
    return {"sha256": hashlib.sha256("\n".join(listing).encode()).hexdigest(), "count": len(listing)}


def cpu_facts() -> dict:
    """The CPU's model name, logical cores and machine type."""
    model = platform.processor() or UNAVAILABLE
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"model": model, "logical_cores": os.cpu_count(), "machine": platform.machine()}


def torch_facts() -> dict:
    """CUDA runtime, cuDNN, NCCL and determinism flags, from torch when it is importable.

    Imported only here and only when the caller asks (pack run, pack env), never for list/verify.
    """
    try:
        import torch
    except ImportError:
        return {
            "cuda_runtime": UNAVAILABLE,
            "cudnn": UNAVAILABLE,
            "nccl": UNAVAILABLE,
            "determinism": {"reason": "torch not installed"},
        }
    facts: dict = {}
    # torch.version.cuda is the runtime torch ships with and loads (not the system nvcc).
    facts["cuda_runtime"] = torch.version.cuda or UNAVAILABLE
    try:
        cudnn = torch.backends.cudnn
        facts["cudnn"] = str(cudnn.version()) if cudnn.is_available() else UNAVAILABLE
    except Exception:
        facts["cudnn"] = UNAVAILABLE
    try:
        nccl = ".".join(map(str, torch.cuda.nccl.version())) if torch.cuda.is_available() else None
        facts["nccl"] = nccl or UNAVAILABLE
    except Exception:
        facts["nccl"] = UNAVAILABLE
    facts["determinism"] = {
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "cudnn_deterministic": torch.backends.cudnn.deterministic,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "tf32_cudnn": torch.backends.cudnn.allow_tf32,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
    }
    return facts


def fingerprint(with_torch: bool = True) -> dict:
    """Structured JSON describing where a run ran. `with_torch=False` skips the torch import."""
    gpus = list(gpuinfo.gpus())
    fp: dict = {
        "schema": "pack.env/1",
        "collected_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "pack": {"version": __version__, "git_sha": git_sha()},
        "host": {"hostname": platform.node(), "os": platform.platform(), "kernel": platform.release()},
        "cpu": cpu_facts(),
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
        },
        "gpu": {
            "count": len(gpus),
            "models": [g["name"] for g in gpus],
            "memory_gb": [g["memory_gb"] for g in gpus],
            "driver": gpuinfo.driver_version() or UNAVAILABLE,
            "source": "nvml" if gpuinfo.nvml() else ("nvidia-smi" if gpus else UNAVAILABLE),
        },
        "container": {
            "image": os.environ.get("PACK_IMAGE") or UNAVAILABLE,
            "variant": os.environ.get("PACK_IMAGE_VARIANT") or UNAVAILABLE,
            "digest": os.environ.get("PACK_IMAGE_DIGEST") or UNAVAILABLE,
        },
        "packages": {name: package_version(name) or UNAVAILABLE for name in BACKENDS},
        "pip_freeze": _pip_freeze_hash(),
        "env": {k: os.environ.get(k, UNAVAILABLE) for k in DETERMINISM_ENV},
        "gpu_processes": gpuinfo.processes(),
    }
    if with_torch:
        fp["cuda"] = torch_facts()
    else:
        fp["cuda"] = {"cuda_runtime": UNAVAILABLE, "reason": "not collected (torch not imported)"}
    return fp


VOLATILE = {"collected_at", "gpu_processes"}


def load_fingerprint(path) -> dict:
    """A fingerprint from an env.json or a run folder holding one; anything else is one sentence naming it."""
    import json
    from pathlib import Path

    from .errors import UsageError
    from .rundir import RunDir

    path = Path(path)
    file = RunDir(path).env_json if path.is_dir() else path
    if path.is_dir() and not file.is_file():
        raise UsageError(f"{path}: is a folder without an env.json; pass a run folder or an env.json file")
    try:
        text = file.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise UsageError(f"{file}: file not found; pass a run folder or an env.json file") from None
    except IsADirectoryError:
        raise UsageError(f"{file}: is a folder, not an env.json file") from None
    except OSError as e:
        raise UsageError(f"{file}: cannot be read ({e.strerror or e})") from None
    except UnicodeDecodeError as e:
        raise UsageError(
            f"{file}: is not UTF-8 text (byte at offset {e.start}); is it an env.json?"
        ) from None
    try:
        data = json.loads(text)
    except ValueError as e:
        where = f"line {e.lineno}, column {e.colno}: {e.msg}" if hasattr(e, "lineno") else str(e)
        raise UsageError(
            f"{file}: is not valid JSON ({where}); pass an env.json that 'pack env' wrote"
        ) from None
    if not isinstance(data, dict):
        raise UsageError(
            f"{file}: holds a JSON {type(data).__name__}, not an environment fingerprint "
            f"(a JSON object); pass an env.json that 'pack env' wrote"
        )
    if not str(data.get("schema", "")).startswith("pack.env/"):
        raise UsageError(
            f'{file}: is JSON but not an environment fingerprint (no "schema": '
            '"pack.env/1"); '
            f"pass an env.json that 'pack env' wrote"
        )
    return data


def flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


class FieldDiff(NamedTuple):
    """One environment field that differs between two fingerprints (absent: '<absent>')."""

    field: str
    a: object
    b: object


def diff(a: dict, b: dict, include_volatile: bool = False) -> list[FieldDiff]:
    """A FieldDiff for every field that differs, by dotted path, sorted."""
    fa, fb = flatten(a), flatten(b)
    rows = []
    for k in sorted(set(fa) | set(fb)):
        if not include_volatile and k.split(".")[0] in VOLATILE:
            continue
        if fa.get(k, "<absent>") != fb.get(k, "<absent>"):
            rows.append(FieldDiff(k, fa.get(k, "<absent>"), fb.get(k, "<absent>")))
    return rows
