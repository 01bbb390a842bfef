"""The local docker path, with a recording stand-in `docker` first on PATH (test_launch_helpers.py).

With STANDIN_DOCKER_EXEC=1 the stand-in runs the container's command here through
docker/entrypoint.sh, with the -v mount mapped, so the launch produces real runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from pack import fsio
from pack.launch import ledger, lifecycle
from pack.launch.docker import DockerLauncher
from tests.unit.test_launch_helpers import REPO, docker_calls, install_docker_standin, pack


@pytest.fixture
def runs(tmp_path, monkeypatch):
    monkeypatch.setenv("PACK_RUNS", str(tmp_path / "runs"))
    monkeypatch.delenv("PACK_IMAGE_PREFIX", raising=False)
    monkeypatch.delenv("BUDGET_USD", raising=False)
    monkeypatch.delenv("PACK_IMAGES_METADATA", raising=False)
    return tmp_path / "runs"


def test_local_image_launch_runs_the_exact_command_and_cleans_up(runs, tmp_path, monkeypatch, capsys):
    s = install_docker_standin(tmp_path, monkeypatch, execute=True)
    (tmp_path / "hf").mkdir()
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    t0 = time.time()
    code, out, err = pack(
        [
            "launch",
            "local-ablation:int6-clip-search",
            "--hw",
            "local",
            "--image",
            "cu128",
            "--scale",
            "smoke",
            "--poll",
            "0.1",
        ],
        capsys,
    )
    assert code == 0, err
    launch_id = out.split("\t")[0]
    calls = docker_calls(s["log"])
    assert calls[0][:2] == ["image", "inspect"] and calls[0][-1] == "ecmoe:cu128"
    run = next(c for c in calls if c[0] == "run")
    image_at = run.index("ecmoe:cu128")
    assert run[image_at + 1 :] == [
        "pack",
        "run",
        "local-ablation:int6-clip-search",
        "--scale",
        "smoke",
        "--out",
        "/runs",
        "--hw",
        "cpu",
    ]  # `docker run IMAGE pack run …`, nothing prepended
    opts = run[:image_at]
    assert "-d" in opts and f"pack-{launch_id}" in opts and "--gpus" not in opts  # a CPU row asks for no GPU
    assert f"{runs}:/runs" in opts and opts[opts.index("--user") + 1] == f"{os.getuid()}:{os.getgid()}"
    labels = dict(opts[i + 1].split("=", 1) for i, o in enumerate(opts) if o == "--label")
    assert (
        labels["pack.launch-id"] == launch_id
        and abs(float(labels["pack.expires-at"]) - (t0 + 3600 + 120 + 300)) < 30
    )  # default max runtime 3600 s
    envs = dict(opts[i + 1].split("=", 1) for i, o in enumerate(opts) if o == "-e")
    assert envs["PACK_HW"] == "cpu" and int(envs["PACK_DEADLINE_AT"]) > t0
    assert f"{tmp_path / 'hf'}:/hf" in opts and envs["HF_HOME"] == "/hf"  # the host's model cache, reused
    assert ["rm", "-f", f"pack-{launch_id}"] in calls  # torn down after it finished
    [run_dir] = list((runs / "local-ablation" / "int6-clip-search").iterdir())
    assert (
        fsio.check_sums(run_dir) == []
        and json.loads((run_dir / "run.json").read_text())["status"] == "complete"
    )
    rec = ledger.get(launch_id, runs)
    assert rec.provider == "docker" and rec.status == "finished" and rec.image == "ecmoe:cu128"


def test_gpu_row_asks_for_gpus_and_a_missing_image_is_pulled(runs, tmp_path, monkeypatch):
    from pack.launch.cli import build_spec
    from tests.unit.test_launch_helpers import gpu_project

    gpu_project(tmp_path, monkeypatch)
    s = install_docker_standin(tmp_path, monkeypatch, execute=False, images=())
    monkeypatch.setattr(
        "pack.run.local_hardware_name", lambda: "local-gpu"
    )  # pretend this machine has one GPU
    spec, provider, _ = build_spec(
        ["gpu-demo:l40s-row"], "local-gpu", "full", image="l40s", log=lambda m: None
    )
    assert provider == "docker"
    rec = lifecycle.start(spec, DockerLauncher(runs, log=lambda m: None), wait=False)
    calls = docker_calls(s["log"])
    assert ["pull", "ecmoe:l40s"] in calls
    run = next(c for c in calls if c[0] == "run")
    assert run[run.index("--gpus") + 1] == "all"
    assert rec.status == "running"


def test_missing_docker_is_one_sentence(runs, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.setenv("PACK_CONTAINER_CLI", "docker")  # podman may be installed here; ask for docker
    if subprocess.run(["sh", "-c", "command -v docker"], capture_output=True).returncode == 0:
        pytest.skip("a real docker is installed in /usr/bin")
    code, _, err = pack(
        ["launch", "wire-compression", "--hw", "local", "--image", "cu128", "--scale", "smoke"], capsys
    )
    assert code == 3 and "'docker' is not on PATH" in err and "Traceback" not in err


def test_podman_gets_its_own_gpu_flag_and_this_machines_run_options(runs, tmp_path, monkeypatch):
    from pack.launch.cli import build_spec
    from pack.launch.docker import run_argv
    from tests.unit.test_launch_helpers import gpu_project

    gpu_project(tmp_path, monkeypatch)
    monkeypatch.setattr("pack.run.local_hardware_name", lambda: "local-gpu")
    monkeypatch.setenv("PACK_CONTAINER_CLI", "podman --runtime runc")
    monkeypatch.setenv("PACK_CONTAINER_RUN_ARGS", "--ulimit nofile=1024:1024")
    spec, _, _ = build_spec(["gpu-demo:l40s-row"], "local-gpu", "full", image="l40s", log=lambda m: None)
    argv = run_argv(spec, str(runs))
    assert argv[:4] == ["podman", "--runtime", "runc", "run"] and "--gpus" not in argv
    assert argv[argv.index("--device") + 1] == "nvidia.com/gpu=all"
    assert argv[argv.index("--ulimit") + 1] == "nofile=1024:1024"
    monkeypatch.setenv("PACK_CONTAINER_CLI", "docker")
    d = run_argv(spec, str(runs))
    assert d[:2] == ["docker", "run"] and d[d.index("--gpus") + 1] == "all" and "--device" not in d


def test_unknown_image_variant_lists_close_names(runs, capsys):
    code, _, err = pack(
        ["launch", "wire-compression", "--hw", "local", "--image", "cu12", "--scale", "smoke"], capsys
    )
    assert code == 3 and "unknown image 'cu12'" in err


def test_ctrl_c_while_waiting_leaves_the_container_on_its_watchdog(runs, tmp_path, monkeypatch):
    s = install_docker_standin(tmp_path, monkeypatch, execute=False)
    from pack.launch.cli import build_spec

    spec, _, _ = build_spec(["wire-compression"], "local", "smoke", image="cu128", log=lambda m: None)

    def ctrl_c(_):
        raise KeyboardInterrupt

    with pytest.raises(lifecycle.LaunchInterrupted) as e:
        lifecycle.start(spec, DockerLauncher(runs, log=lambda m: None), wait=True, poll_s=1, sleep=ctrl_c)
    assert f"pack launch down {spec.launch_id}" in str(e.value) and f"container pack-{spec.launch_id}" in str(
        e.value
    )
    assert not any(c[0] == "rm" for c in docker_calls(s["log"]))
    run = next(c for c in docker_calls(s["log"]) if c[0] == "run")
    assert any(a.startswith("PACK_DEADLINE_AT=") for a in run)  # the entrypoint stops it at the deadline
    rec = lifecycle.down(ledger.get(spec.launch_id, runs), DockerLauncher(runs, log=lambda m: None), runs)
    assert rec.status == "down" and ["rm", "-f", f"pack-{spec.launch_id}"] in docker_calls(s["log"])


def test_reaper_removes_expired_containers_only(runs, tmp_path, monkeypatch, capsys):
    s = install_docker_standin(tmp_path, monkeypatch, execute=False)
    s["state"].mkdir()
    now = int(time.time())
    for name, exp in (("pack-old", now - 5), ("pack-new", now + 600)):
        (s["state"] / f"{name}.json").write_text(
            json.dumps(
                {
                    "name": name,
                    "image": "ecmoe:cu128",
                    "labels": {"pack.expires-at": str(exp)},
                    "status": "running",
                    "code": 0,
                }
            )
        )
    code, out, _ = pack(["launch", "reap", "--provider", "docker"], capsys)
    assert code == 0 and "removed\tdocker\tpack-old" in out and "pack-new" not in out
    assert sorted(p.name for p in s["state"].iterdir()) == ["pack-new.json"]


def test_real_sigint_during_a_launch_prints_how_to_reattach(runs, tmp_path, monkeypatch):
    """Ctrl-C as a real SIGINT to a `pack launch` process waiting on a (stand-in) container."""
    install_docker_standin(tmp_path, monkeypatch, execute=False)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pack",
            "launch",
            "wire-compression",
            "--hw",
            "local",
            "--image",
            "cu128",
            "--scale",
            "smoke",
            "--poll",
            "0.2",
        ],
        cwd=REPO,
        env=os.environ.copy(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Readiness marker: the first progress line of the wait loop ("… repetition(s) done"), read from
    # stderr in a thread; only then is Ctrl-C a Ctrl-C during the wait. Timeouts are generous (a busy
    # machine can take a minute to start Python) but bounded.
    lines: list[str] = []
    ready = threading.Event()

    def read_stderr():
        for line in proc.stderr:
            lines.append(line)
            if "repetition(s) done" in line:
                ready.set()
        ready.set()  # the process ended: let the test fail with what it printed

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    if not ready.wait(timeout=300) or proc.poll() is not None:
        proc.kill()
        pytest.fail("pack launch never reached its wait loop:\n" + "".join(lines))
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=180)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("pack launch did not stop within 180 s of Ctrl-C:\n" + "".join(lines))
    reader.join(timeout=30)
    err = "".join(lines)
    assert proc.returncode == 130, err
    [rec] = ledger.records(runs).values()
    assert f"pack launch status {rec.launch_id}" in err and f"pack launch down {rec.launch_id}" in err
    assert "Traceback" not in err and rec.stop is None  # left running, on its own deadline
