"""The hardware and image catalogues: manifests/hardware.yaml and manifests/images.yaml.

A Target (hardware class + image variant) is what a row needs; the catalogue says what each name is.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, StrictInt, ValidationError

from . import paths
from .errors import ManifestError
from .schema_errors import describe, fields_at
from .strict import Number, Strict, did_you_mean
from .yamlio import load_with_lines


class Hardware(Strict):
    """One hardware class: an instance type, a pod GPU type, or a local machine."""

    provider: Literal["aws", "runpod", "local"]
    description: str = ""
    instance_type: str | None = (
        None  # SkyPilot instance type: a row of manifests/sky-catalog/v8/<cloud>/vms.csv
    )
    gpu: str | None = None  # model name as NVML reports it, e.g. "L40S", "H100 80GB HBM3"
    gpu_count: StrictInt = Field(0, ge=0, le=1024)
    vram_gb: Number = Field(0, ge=0, le=1e6)  # per GPU
    vcpus: StrictInt | None = Field(None, ge=0)
    ram_gb: Number | None = Field(None, ge=0)
    region: str | None = None
    disk_gb: StrictInt | None = Field(None, ge=0)


class LocalBuild(Strict):
    """What `make images-local` (podman, Debian base, PyPI only) builds of a variant, and why not the rest."""

    build: bool
    skip_compile: list[str] = []  # compile_from_source packages left out there (no CUDA toolkit)
    smoke: list[str] = []  # rows `make images-local` runs inside the image at smoke scale, then verifies
    why: str


class ImageVariant(Strict):
    """One container image variant: the CUDA/toolkit line a row's numbers depend on."""

    cuda: str | None  # toolkit version inside the image; None for CPU-only
    torch: str  # pinned torch version
    torch_index: str | None = None  # wheel index for that CUDA build
    python: str = "3.11"
    base: str  # pinned base image
    cuda_arch: str | None = None  # TORCH_CUDA_ARCH_LIST / CMAKE_CUDA_ARCHITECTURES
    description: str = ""
    # PyPI's torch==<torch> wheel is this CUDA build (the lock takes it from PyPI)
    torch_on_pypi: bool = False
    packages: dict[str, str] = {}  # pip name -> exact version (top-level pins; the lock adds the rest)
    compile_from_source: list[str] = []  # packages built against torch/CUDA after the lock is installed
    # the pack's extras installed in the image (their requirements come from the lock)
    pack_extras: list[str] = []
    backends: list[str] = []  # what this image can run: hf, awq, gptq, bnb, vllm, flash-attn, llamacpp
    omitted: dict[str, str] = {}  # backend -> why it is not in this image
    local: LocalBuild = LocalBuild(build=False, why="not stated")


class ImagesFile(Strict):
    prefix: str = "ecmoe"
    uv: str  # uv's version, from PyPI: bootstraps each image's environment
    variants: dict[str, ImageVariant]


class HardwareFile(Strict):
    hardware: dict[str, Hardware]


def image_name(variant: str) -> str:
    """`<prefix>:<variant>`; the prefix comes from PACK_IMAGE_PREFIX or images.yaml."""
    prefix = os.environ.get("PACK_IMAGE_PREFIX") or images().prefix
    return f"{prefix}:{variant}"


def _load(path: Path, model):
    data, lines = load_with_lines(path, expect=dict)
    try:
        return model.model_validate(data)
    except ValidationError as e:
        problems = describe(e, path, lines, models_by_loc=lambda loc: fields_at(model, loc))
        raise ManifestError(problems) from None


@lru_cache(maxsize=4)
def _hardware(root: Path) -> HardwareFile:
    return _load(root / "hardware.yaml", HardwareFile)


@lru_cache(maxsize=4)
def _images(root: Path) -> ImagesFile:
    return _load(root / "images.yaml", ImagesFile)


def hardware() -> dict[str, Hardware]:
    return _hardware(paths.manifests_dir()).hardware


def images() -> ImagesFile:
    return _images(paths.manifests_dir())


def get_hardware(name: str) -> Hardware:
    table = hardware()
    if name not in table:
        raise ManifestError(unknown("hardware", name, table, paths.manifests_dir() / "hardware.yaml"))
    return table[name]


@dataclass(frozen=True)
class HardwareMatch:
    """A --hw / PACK_HW name resolved against the catalogue and the GPUs this machine reports."""

    name: str
    hardware: Hardware
    mismatch: str | None  # why the detected GPUs are not what the catalogue entry says; None when they are


def resolve_hardware(name: str, detected_gpu_models: list[str]) -> HardwareMatch:
    """The catalogue entry for `name` (unknown: refused, with every catalogue name listed) and whether
    the GPUs detected here (NVML names) agree with it: model by `tolerance.gpu_matches` (exact, never
    a substring), and at least its GPU count. A class without a GPU disagrees with any GPU present.
    """
    table = hardware()
    if name not in table:
        close = did_you_mean(name, table, listing=False)
        raise ManifestError(
            f"unknown hardware '{name}' (from --hw or PACK_HW; see "
            f"{paths.manifests_dir() / 'hardware.yaml'}); {close + ' ' if close else ''}"
            f"the catalogue has: {', '.join(sorted(table))}"
        )
    hw = table[name]
    return HardwareMatch(name, hw, _mismatch(name, hw, list(detected_gpu_models)))


def _mismatch(name: str, hw: Hardware, detected: list[str]) -> str | None:
    from .tolerance import gpu_matches

    have = f"{len(detected)} GPU(s): {', '.join(detected)}" if detected else "no GPU"
    if hw.gpu_count == 0:
        return f"hardware '{name}' has no GPU but this machine has {have}" if detected else None
    want = f"{hw.gpu_count}× {hw.gpu if hw.gpu and hw.gpu != 'any' else 'GPU'}"
    if len(detected) < hw.gpu_count:
        return f"hardware '{name}' is {want} but this machine has {have}"
    if hw.gpu and hw.gpu != "any" and not all(gpu_matches(hw.gpu, [m]) for m in detected[: hw.gpu_count]):
        return f"hardware '{name}' is {want} but this machine has {have}"
    return None


@dataclass(frozen=True)
class Price:
    """The hourly price of a hardware class, from the pack's dated catalog (sky-catalog/)."""

    usd_per_hour: float
    date: str | None
    source: str
    accelerator: str | None  # SkyPilot's accelerator for the instance type, e.g. "L40S:1"; None without GPU


LOCAL_PRICE = Price(0.0, None, "this machine (no charge)", None)
# A price of NaN or inf would make every budget gate pass or fail; the bound catches a typo's zeros.
_MAX_PRICE = 10_000


def sky_catalog_dir() -> Path:
    return paths.manifests_dir() / "sky-catalog"


@lru_cache(maxsize=8)
def _cloud_rows(root: Path, cloud: str) -> tuple[dict, dict[str, tuple[int, dict]]]:
    """(the cloud's entry of SOURCES.yaml, instance type -> (CSV line, first row))."""
    import csv

    sources, _ = load_with_lines(root / "SOURCES.yaml", expect=dict)
    entry = sources.get(cloud)
    if not isinstance(entry, dict) or not entry.get("file") or not entry.get("source"):
        raise ManifestError(
            f"{root / 'SOURCES.yaml'}: no '{cloud}:' entry with file, date and source; add one"
        )
    f = root / entry["file"]
    rows: dict[str, tuple[int, dict]] = {}
    with open(f, newline="", encoding="utf-8") as fh:
        for n, row in enumerate(csv.DictReader(fh), 2):
            try:
                price = float(row["Price"])
            except (KeyError, TypeError, ValueError):
                price = float("nan")
            if not 0 <= price <= _MAX_PRICE:  # also false for NaN
                raise ManifestError(
                    f"{f}:{n}: Price '{row.get('Price')}' of {row.get('InstanceType')} is not a finite "
                    f"number of USD per hour between 0 and {_MAX_PRICE}; fix the row"
                )
            it = row["InstanceType"]
            if it in rows and float(rows[it][1]["Price"]) != price:
                raise ManifestError(
                    f"{f}:{n}: {it} costs {price} here but {rows[it][1]['Price']} on line {rows[it][0]}; "
                    "the pack prices one on-demand figure per instance type"
                )
            rows.setdefault(it, (n, row))
    return entry, rows


def price(name: str) -> Price:
    """The price of hardware class `name`: 0 for this machine, else its catalog row (refused if absent)."""
    hw = get_hardware(name)
    if hw.provider == "local":
        return LOCAL_PRICE
    root = sky_catalog_dir()
    entry, rows = _cloud_rows(root, hw.provider)
    if hw.instance_type not in rows:
        raise ManifestError(
            f"{paths.manifests_dir() / 'hardware.yaml'}: hardware.{name}.instance_type "
            f"'{hw.instance_type}' is not in {root / entry['file']}; "
            f"{did_you_mean(str(hw.instance_type), rows) or 'add its row to the catalog'}"
        )
    row = rows[hw.instance_type][1]
    count = float(row.get("AcceleratorCount") or 0)
    acc = f"{row['AcceleratorName']}:{count:g}" if row.get("AcceleratorName") and count else None
    return Price(float(row["Price"]), str(entry.get("date") or "") or None, entry["source"], acc)


def unknown(kind: str, name: str, known, where: Path) -> str:
    return f"unknown {kind} '{name}' (see {where}); {did_you_mean(name, known)}"
