"""Shared pieces of the launcher tests: calling the CLI in-process, a project with GPU rows, and a
recording stand-in for the `docker` CLI (an executable put first on PATH, not a Mock)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent

GPU_ROWS = """\
paper: gpu-demo
title: "Launcher test rows with GPU targets"
source: "tests/unit/test_launch_helpers.py"
rows:
  - id: four-gpu
    cell: "test: a 4-GPU row (seed 001 experiments 7-8 shape)"
    experiment: command
    target: {hardware: runpod-h100-sxm-x4, image: cu128}
    params: {executable: "true"}
    max_runtime_s: 1200
    runtime_estimate_s: 600
  - id: big-vram
    cell: "test: one 80 GB GPU"
    experiment: command
    target: {hardware: runpod-h100-sxm, image: cu121}
    params: {executable: "true"}
    max_runtime_s: 1800
    runtime_estimate_s: 900
  - id: l40s-row
    cell: "test: Paper B's L40S"
    experiment: command
    target: {hardware: g6e.xlarge, image: l40s}
    params: {executable: "true"}
    max_runtime_s: 3600
    runtime_estimate_s: 1800
"""


def pack(args, capsys) -> tuple[int, str, str]:
    """Run `pack ARGS` in this process; (exit code, stdout, stderr)."""
    from pack.cli import main

    capsys.readouterr()
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    out, err = capsys.readouterr()
    return code, out, err


def gpu_project(tmp_path: Path, monkeypatch) -> Path:
    """A project root (PACK_HOME) with the repository's manifests plus rows that need GPUs."""
    root = tmp_path / "project"
    shutil.copytree(REPO / "manifests", root / "manifests")
    (root / "manifests" / "gpu-demo.yaml").write_text(GPU_ROWS)
    monkeypatch.setenv("PACK_HOME", str(root))
    return root


STANDIN_DOCKER = r'''#!{python}
"""Recording stand-in for the docker CLI: logs every call as a JSON line; `run` can execute the
container's command here through docker/entrypoint.sh, with the -v mounts mapped to host paths."""
import json, os, subprocess, sys, uuid

args = sys.argv[1:]
with open(os.environ["STANDIN_DOCKER_LOG"], "a") as f:
    f.write(json.dumps(args) + "\n")
state_dir = os.environ["STANDIN_DOCKER_STATE"]
os.makedirs(state_dir, exist_ok=True)
cmd = args[0] if args else ""

def state_path(name):
    return os.path.join(state_dir, name + ".json")

if cmd == "image" and args[1:2] == ["inspect"]:
    sys.exit(0 if args[-1] in os.environ.get("STANDIN_IMAGES", "").split(",") else 1)
if cmd == "pull":
    sys.exit(int(os.environ.get("STANDIN_PULL_RC", "0")))
if cmd == "run":
    i, name, envs, vols, labels = 1, None, {{}}, {{}}, {{}}
    while i < len(args) and args[i].startswith("-"):
        a = args[i]
        if a in ("-d", "--rm"):
            i += 1
            continue
        v = args[i + 1]
        i += 2
        if a == "--name":
            name = v
        elif a == "-e":
            k, _, val = v.partition("="); envs[k] = val
        elif a == "-v":
            host, _, cont = v.partition(":"); vols[cont] = host
        elif a == "--label":
            k, _, val = v.partition("="); labels[k] = val
    image, command = args[i], args[i + 1:]
    state = {{"name": name, "image": image, "labels": labels, "status": "running", "code": 0}}
    if os.environ.get("STANDIN_DOCKER_EXEC") == "1":
        command = [vols.get(c, c) for c in command]
        entrypoint = os.environ["STANDIN_ENTRYPOINT"]
        rc = subprocess.call(["bash", entrypoint, *command], env=dict(os.environ, **envs))
        state.update(status="exited", code=rc)
    with open(state_path(name), "w") as f:
        json.dump(state, f)
    print(uuid.uuid4().hex)
    sys.exit(0)
if cmd == "inspect":
    p = state_path(args[-1])
    if not os.path.exists(p):
        print("Error: No such object: " + args[-1], file=sys.stderr)
        sys.exit(1)
    s = json.load(open(p))
    print(s["status"], s["code"])
    sys.exit(0)
if cmd == "rm":
    p = state_path(args[-1])
    if not os.path.exists(p):
        sys.exit(1)
    os.remove(p)
    sys.exit(0)
if cmd == "ps":
    for fn in sorted(os.listdir(state_dir)):
        s = json.load(open(os.path.join(state_dir, fn)))
        if "pack.expires-at" in s["labels"]:
            print(s["name"] + "\t" + s["labels"]["pack.expires-at"])
    sys.exit(0)
print("stand-in docker: unsupported command " + " ".join(args), file=sys.stderr)
sys.exit(2)
'''


def install_docker_standin(tmp_path: Path, monkeypatch, *, execute: bool, images=("ecmoe:cu128",)) -> dict:
    """Put the stand-in first on PATH; return paths of its call log and state folder."""
    bin_dir = tmp_path / "standin-bin"
    bin_dir.mkdir()
    exe = bin_dir / "docker"
    exe.write_text(STANDIN_DOCKER.format(python=sys.executable))
    exe.chmod(0o755)
    log, state = tmp_path / "docker-calls.jsonl", tmp_path / "docker-state"
    monkeypatch.setenv("PATH", f"{bin_dir}:{VENV_BIN}:/usr/bin:/bin")
    monkeypatch.setenv("STANDIN_DOCKER_LOG", str(log))
    monkeypatch.setenv("STANDIN_DOCKER_STATE", str(state))
    monkeypatch.setenv("STANDIN_ENTRYPOINT", str(REPO / "docker" / "entrypoint.sh"))
    monkeypatch.setenv("STANDIN_IMAGES", ",".join(images))
    monkeypatch.setenv("STANDIN_DOCKER_EXEC", "1" if execute else "0")
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    return {"log": log, "state": state, "bin": bin_dir}


def docker_calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.fixture(scope="session")
def sky_home(tmp_path_factory) -> Path:
    """One scratch HOME for every test that lets SkyPilot run in-process (the pack's catalog inside):
    SkyPilot expands some ~/.sky paths when a module is first imported, so one home for the session
    keeps all of them away from the real ~/.sky."""
    from pack.launch import offline

    return offline.prepare(tmp_path_factory.mktemp("sky-home"))
