"""Outside a container: the exact command line a pack image runs, through the image's own
entrypoint, produces a complete, checksummed run whose provenance names the image; the watchdog
stops what overruns; `make reproduce-<paper>` and the launch scripts work end to end here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ENTRYPOINT = REPO / "docker" / "entrypoint.sh"
PY = sys.executable


@pytest.fixture
def env(tmp_path):
    e = {k: v for k, v in os.environ.items() if not k.startswith(("PACK_", "BUDGET_"))}
    e.update(PATH=f"{Path(PY).parent}:/usr/bin:/bin", PYTHONPATH=str(REPO), PACK_RUNS=str(tmp_path / "runs"))
    e["HOME"] = str(tmp_path / "home")  # a cloud dry run must not touch the real ~/.sky
    return e


def test_the_container_command_runs_here_exactly_as_written(tmp_path, env, monkeypatch):
    from pack.launch.cli import build_spec

    monkeypatch.delenv("PACK_IMAGE_PREFIX", raising=False)
    spec, provider, _ = build_spec(
        ["latent-bridge:wire-compression"], "local", "smoke", image="cu128", log=lambda m: None
    )
    assert provider == "docker"
    argv = spec.pack_run_argv()  # what `docker run ecmoe:cu128 …` is given
    assert argv[:2] == ["pack", "run"] and argv[argv.index("--out") + 1] == "/runs"
    host_runs = tmp_path / "mounted-runs"  # stands for the -v HOST:/runs bind mount
    argv = [str(host_runs) if a == "/runs" else a for a in argv]
    # the environment the image's ENV lines set (PACK_IMAGE, PACK_IMAGE_VARIANT), plus what pack launch adds
    dockerfile = (REPO / "docker" / "cu128" / "Dockerfile").read_text()
    image_env = {k for k in ("PACK_IMAGE", "PACK_IMAGE_VARIANT") if f"    {k}=" in dockerfile}
    e = env | spec.container_env() | {"PACK_IMAGE": "ecmoe:cu128", "PACK_IMAGE_VARIANT": "cu128"}
    assert set(image_env) >= {"PACK_IMAGE", "PACK_IMAGE_VARIANT"}
    res = subprocess.run(
        ["bash", str(ENTRYPOINT), *argv], env=e, cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert "watchdog stops 'pack run latent-bridge:wire-compression" in res.stderr
    [run_dir] = list((host_runs / "latent-bridge" / "wire-compression").iterdir())
    rec = json.loads((run_dir / "run.json").read_text())
    assert (
        rec["status"] == "complete"
        and rec["hardware"] == "cpu"
        and rec["image"] == "cu128"
        and rec["scale"] == "smoke"
    )
    fp = json.loads((run_dir / "env.json").read_text())
    assert fp["container"]["image"] == "ecmoe:cu128" and fp["container"]["variant"] == "cu128"
    verify = subprocess.run(
        [PY, "-m", "pack", "verify", str(run_dir), "--brief"], env=e, cwd=REPO, capture_output=True, text=True
    )
    assert "latent-bridge:wire-compression" in verify.stdout and "Traceback" not in verify.stderr


def test_entrypoint_defaults_to_help_and_does_not_prepend_pack(env, tmp_path):
    res = subprocess.run(["bash", str(ENTRYPOINT)], env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and "Usage: pack" in res.stdout
    res = subprocess.run(
        ["bash", str(ENTRYPOINT), "echo", "run", "exp6a"], env=env, capture_output=True, text=True
    )
    assert res.stdout.strip() == "run exp6a"


def test_entrypoint_watchdog(env):
    t0 = time.monotonic()
    res = subprocess.run(
        ["bash", str(ENTRYPOINT), "sleep", "30"],
        env=env | {"PACK_MAX_RUNTIME_S": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 124 and time.monotonic() - t0 < 10
    res = subprocess.run(
        ["bash", str(ENTRYPOINT), "touch", "/tmp/should-not-exist"],
        env=env | {"PACK_DEADLINE_AT": str(int(time.time()) - 1)},
        capture_output=True,
        text=True,
    )
    assert res.returncode == 124 and "has passed; not starting" in res.stderr
    res = subprocess.run(
        ["bash", str(ENTRYPOINT), "true"],
        env=env | {"PACK_DEADLINE_AT": "soon"},
        capture_output=True,
        text=True,
    )
    assert res.returncode == 2 and "must be epoch seconds" in res.stderr


def _make(target, env, tmp_path, *extra):
    return subprocess.run(
        ["make", "-s", target, f"PACK={PY} -m pack", f"REPORTS={tmp_path / 'reports'}", *extra],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_make_reproduce_dry_run_and_budget_gate(env, tmp_path):
    res = _make("reproduce-local-ablation", env, tmp_path, "HW=local", "DRY=1")
    assert res.returncode == 0 and "plan: local-ablation on cpu at scale smoke" in res.stdout
    assert "DRY=1: stopped after the plan" in res.stdout and not (tmp_path / "runs").exists()
    res = _make("reproduce-local-ablation", env, tmp_path, "HW=g6e.xlarge", "DRY=1", "BUDGET_USD=0.01")
    assert res.returncode != 0 and "scale full" in res.stdout and "refusing to launch" in res.stderr


def test_make_reproduce_paperb_dry_run_shows_skypilots_choice_at_the_plans_price(env, tmp_path):
    pytest.importorskip("sky")
    plan = subprocess.run(
        [PY, "-m", "pack", "plan", "paperB", "--hw", "g6e.xlarge"], env=env, capture_output=True, text=True
    )
    res = _make("reproduce-paperB", env, tmp_path, "HW=g6e.xlarge", "DRY=1")
    assert res.returncode == 0, res.stderr[-2000:]
    total = next(line for line in plan.stdout.splitlines() if line.startswith("total:"))
    assert (
        total in res.stdout
        and "1.861 USD/h: AWS EC2 on-demand, us-east-1, Linux, price of 2026-11-22" in res.stdout
    )
    assert (
        "SkyPilot chose: AWS (us-east-1) g6e.xlarge L40S:1 image docker:ecmoe:l40s at 1.861 USD/h"
        in res.stdout
    )


def test_make_reproduce_here_runs_verifies_and_reports(env, tmp_path):
    res = _make("reproduce-local-ablation", env, tmp_path, "HW=local")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "local-ablation:int6-clip-search\tcomplete" in res.stdout
    assert (tmp_path / "reports" / "local-ablation" / "report.html").is_file()


def test_launch_scripts_are_thin_wrappers(env, tmp_path):
    res = subprocess.run(
        ["bash", str(REPO / "scripts/launch/sky.sh")], env=env, capture_output=True, text=True
    )
    assert res.returncode == 2 and "usage" in res.stderr
    e = env | {"PACK": f"{PY} -m pack", "PACK_IMAGE_PREFIX": "ghcr.io/lab/ecmoe"}
    res = subprocess.run(
        ["bash", str(REPO / "scripts/launch/local.sh"), "local-ablation", "--scale", "smoke"],
        env=e,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0 and "\tfinished\t" in res.stdout
    pytest.importorskip("sky")
    res = subprocess.run(
        ["bash", str(REPO / "scripts/launch/sky.sh"), "local-ablation", "--dry-run"],
        env=e | {"HW": "runpod-a100-sxm-80gb"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0 and "would launch 3 cluster(s)" in res.stderr, res.stderr
    assert (
        "RunPod (US) 1x_A100-80GB-SXM_SECURE A100-80GB-SXM:1 image docker:ghcr.io/lab/ecmoe:cu128"
        in res.stderr
    )
