"""The pack image built on this machine (`make images-local`), run for real with podman: the default
command, the locked environment (pip check, transformers 5.17, torch's CUDA line), and a smoke row
run inside it exactly as a user types it, verified from the host with the image recorded.

Skipped, with the reason, where podman or the image is absent: building images is not part of `make test`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pack import catalog

REPO = Path(__file__).resolve().parents[2]
VARIANT = "cu128"
PODMAN = ["podman", "--runtime", "runc"]
RUN = [*PODMAN, "run", "--rm", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]


@pytest.fixture(scope="module")
def image():
    if not shutil.which("podman"):
        pytest.skip("podman is not installed (apt-get install podman runc); these tests run a built image")
    name = f"{catalog.images().prefix}:{VARIANT}"
    res = subprocess.run(
        [*PODMAN, "image", "inspect", "--format", "{{.Id}}", name], capture_output=True, text=True
    )
    if res.returncode != 0:
        pytest.skip(f"{name} is not built on this machine (make images-local LOCAL_VARIANTS={VARIANT})")
    return name, "sha256:" + res.stdout.strip()


def _run(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=900, **kw)


def test_default_command_is_pack_help(image):
    res = _run([*RUN, image[0]])
    assert res.returncode == 0 and "Usage: pack" in res.stdout, res.stderr[-2000:]


def test_locked_environment_is_consistent_and_the_verified_line(image):
    v = catalog.images().variants[VARIANT]
    code = (
        "import torch, transformers, json; print(json.dumps([torch.__version__, torch.version.cuda, "
        "transformers.__version__]))"
    )
    res = _run([*RUN, image[0], "bash", "-c", f"uv pip check && python -c '{code}'"])
    assert res.returncode == 0, res.stdout + res.stderr[-2000:]
    torch_v, cuda, tf = json.loads(res.stdout.strip().splitlines()[-1])
    assert (
        torch_v.split("+")[0] == v.torch
        and cuda == v.cuda.rsplit(".", 1)[0]
        and tf == v.packages["transformers"]
    )


def test_a_smoke_row_runs_inside_and_verifies_from_the_host(image, tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    res = _run(
        [
            *RUN,
            "--user",
            f"{os.getuid()}:{os.getgid()}",
            "-v",
            f"{runs}:/runs",
            "-e",
            f"PACK_IMAGE_DIGEST={image[1]}",
            image[0],
            "pack",
            "run",
            "local-ablation:int6-clip-search",
            "--scale",
            "smoke",
        ]
    )
    assert res.returncode == 0, res.stderr[-3000:]
    [run_dir] = list((runs / "local-ablation" / "int6-clip-search").iterdir())
    env = json.loads((run_dir / "env.json").read_text())
    assert env["container"]["image"] == image[0] and env["container"]["variant"] == VARIANT
    assert env["container"]["digest"] == image[1]  # what pack launch / make images-local pass in
    verify = _run([sys.executable, "-m", "pack", "verify", str(run_dir), "--brief"], cwd=REPO)
    assert "local-ablation:int6-clip-search" in verify.stdout and "PASS" in verify.stdout, (
        verify.stdout + verify.stderr
    )
