"""RunPod launches against a local fake of RunPod's GraphQL API (the runpod SDK's own requests)
and moto's S3 for results: what pod would be created, and what is removed when."""

from __future__ import annotations

import json
import time

import pytest

pytest.importorskip("moto")
pytest.importorskip("runpod")
import boto3  # noqa: E402
from moto import mock_aws  # noqa: E402

from pack import fsio  # noqa: E402
from pack.launch import agent, ledger, settings  # noqa: E402
from pack.launch.runpod import agent_args  # noqa: E402
from tests.unit.test_launch_fake_runpod import FakeRunPod  # noqa: E402
from tests.unit.test_launch_helpers import REPO, VENV_BIN, gpu_project, pack  # noqa: E402

BUCKET = "pack-results"
PREFIX = "registry.example.org/lab/ecmoe"


@pytest.fixture
def rp(tmp_path, monkeypatch):
    for k in ("RUNPOD_POD_ID", "BUDGET_USD", "PACK_S3_ENDPOINT_URL"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.runpod/config.toml
    monkeypatch.setenv("RUNPOD_API_KEY", "test-key")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("PACK_S3_BUCKET", BUCKET)
    monkeypatch.setenv("PACK_IMAGE_PREFIX", PREFIX)
    monkeypatch.setenv("PACK_RUNS", str(tmp_path / "runs"))
    with FakeRunPod() as fake, mock_aws():
        monkeypatch.setenv("RUNPOD_API_BASE_URL", fake.url)
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=BUCKET)
        yield fake


def test_launch_creates_a_pod_running_the_pack_image_itself(rp, capsys, tmp_path, monkeypatch):
    gpu_project(tmp_path, monkeypatch)
    t0 = time.time()
    code, out, err = pack(["launch", "gpu-demo:big-vram", "--hw", "runpod-h100-sxm", "--detach"], capsys)
    assert code == 0, err
    launch_id = out.split("\t")[0]
    [pod] = rp.created
    assert pod["imageName"] == f"{PREFIX}:cu121"  # the row's image is the pod image: no Docker in the pod
    assert (
        pod["gpuTypeId"] == "NVIDIA H100 80GB HBM3"
        and pod["gpuCount"] == "1"
        and pod["cloudType"] == "SECURE"
    )
    assert pod["name"] == f"pack-{launch_id}"
    assert pod["dockerArgs"].startswith("python -m pack.launch.agent --launch-id " + launch_id)
    assert "--rows gpu-demo:big-vram --scale full --hw runpod-h100-sxm --deadline-at" in pod["dockerArgs"]
    env = pod["env"]
    assert abs(int(env["PACK_EXPIRES_AT"]) - (t0 + 1800 + 600 + 600)) < 30  # max runtime + overhead + grace
    assert (
        env["PACK_RESULTS"] == f"s3://{BUCKET}/pack-launches/{launch_id}"
        and env["PACK_HW"] == "runpod-h100-sxm"
    )
    secrets = settings.provider("runpod")["s3_secrets"]
    assert (
        env["AWS_ACCESS_KEY_ID"] == "{{ RUNPOD_SECRET_" + secrets["access_key_id"] + " }}"
    )  # never a raw key
    assert "testing" not in json.dumps(env)
    rec = ledger.get(launch_id, tmp_path / "runs")
    assert (
        rec["provider"] == "runpod" and rec["instance_id"] == "pod0001" and rec["price_usd_per_hour"] == 2.99
    )
    assert rp.terminated == []


def test_agent_runs_rows_uploads_and_removes_its_pod_then_fetch(rp, capsys, tmp_path, monkeypatch):
    """The whole RunPod path with the pod's side played here: the agent runs a real `pack run`."""
    monkeypatch.setenv("PATH", f"{VENV_BIN}:/usr/bin:/bin")
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    code, out, err = pack(
        [
            "launch",
            "local-ablation:int6-clip-search",
            "--hw",
            "runpod-a100-sxm-80gb",
            "--scale",
            "smoke",
            "--detach",
        ],
        capsys,
    )
    assert code == 0, err
    launch_id = out.split("\t")[0]
    args = rp.created[0]["dockerArgs"].split()
    assert args[:3] == ["python", "-m", "pack.launch.agent"]
    # inside the pod: RunPod sets RUNPOD_POD_ID and a pod-scoped RUNPOD_API_KEY; the env carries PACK_RESULTS
    monkeypatch.setenv("RUNPOD_POD_ID", "pod0001")
    monkeypatch.setenv("PACK_RESULTS", rp.created[0]["env"]["PACK_RESULTS"])
    monkeypatch.setenv("PACK_AGENT_SYNC_S", "3600")
    rc = agent.main(args[3:] + ["--out", str(tmp_path / "pod-runs")])
    assert rc == 0
    assert rp.terminated == ["pod0001"]  # the pod removed itself
    code, out, _ = pack(["launch", "status", launch_id], capsys)
    assert "\tfinished\t2 rep(s) done" in out
    code, out, err = pack(["launch", "fetch", launch_id], capsys)
    assert code == 0, err
    [run] = list((tmp_path / "runs" / "local-ablation" / "int6-clip-search").iterdir())
    assert fsio.check_sums(run) == []
    rec = json.loads((run / "run.json").read_text())
    assert (
        rec["status"] == "complete" and rec["hardware"] == "runpod-a100-sxm-80gb" and rec["scale"] == "smoke"
    )
    final = ledger.get(launch_id, tmp_path / "runs")
    assert final["status"] == "finished" and final["cost_usd"] is not None
    assert rp.terminated == ["pod0001"]  # teardown saw the pod gone and did not remove it twice


def test_agent_after_its_deadline_does_not_rerun(rp, tmp_path, monkeypatch):
    monkeypatch.setenv("RUNPOD_POD_ID", "pod0042")
    rp.add_pod("pod0042", "pack-pk-x", {})
    rc = agent.main(
        [
            "--launch-id",
            "pk-x",
            "--rows",
            "latent-bridge:wire-compression",
            "--scale",
            "smoke",
            "--hw",
            "cpu",
            "--deadline-at",
            str(int(time.time()) - 5),
            "--results",
            f"s3://{BUCKET}/pk-x",
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert rc == 124 and rp.terminated == ["pod0042"]
    body = (
        boto3.client("s3", region_name="us-east-1")
        .get_object(Bucket=BUCKET, Key="pk-x/status.json")["Body"]
        .read()
    )
    assert json.loads(body)["state"] == "expired" and json.loads(body)["exit_code"] == 124


def test_down_removes_the_pod(rp, capsys, tmp_path, monkeypatch):
    gpu_project(tmp_path, monkeypatch)
    _, out, _ = pack(["launch", "gpu-demo:big-vram", "--hw", "runpod-h100-sxm", "--detach"], capsys)
    launch_id = out.split("\t")[0]
    code, out, _ = pack(["launch", "down", launch_id], capsys)
    assert code == 0 and rp.terminated == ["pod0001"]
    assert ledger.get(launch_id, tmp_path / "runs")["status"] == "down"
    assert any("podTerminate" in q and "pod0001" in q for q in rp.queries)


def test_reaper_removes_only_expired_pack_pods(rp, capsys):
    now = int(time.time())
    rp.add_pod("old", "pack-pk-old", {"PACK_EXPIRES_AT": now - 10})
    rp.add_pod("new", "pack-pk-new", {"PACK_EXPIRES_AT": now + 3600})
    rp.add_pod("mine", "jupyter", {"PACK_EXPIRES_AT": now - 10})  # not the pack's: never touched
    code, out, _ = pack(["launch", "reap", "--provider", "runpod"], capsys)
    assert code == 0 and "removed\trunpod\told" in out
    assert rp.terminated == ["old"] and set(rp.pods) == {"new", "mine"}


def test_missing_api_key_names_the_variable(rp, capsys, tmp_path, monkeypatch):
    gpu_project(tmp_path, monkeypatch)
    monkeypatch.delenv("RUNPOD_API_KEY")
    code, _, err = pack(["launch", "gpu-demo:big-vram", "--hw", "runpod-h100-sxm", "--detach"], capsys)
    assert code == 3 and "set RUNPOD_API_KEY" in err and "runpod config" in err and rp.created == []


def test_wrong_api_key_and_unknown_gpu_type_are_one_sentence(rp, capsys, tmp_path, monkeypatch):
    gpu_project(tmp_path, monkeypatch)
    monkeypatch.setenv("RUNPOD_API_KEY", "wrong")
    code, _, err = pack(["launch", "gpu-demo:big-vram", "--hw", "runpod-h100-sxm", "--detach"], capsys)
    assert code == 3 and "RunPod rejected the API key" in err and "Traceback" not in err
    monkeypatch.setenv("RUNPOD_API_KEY", "test-key")
    rp.gpu_types.clear()
    code, _, err = pack(["launch", "gpu-demo:big-vram", "--hw", "runpod-h100-sxm", "--detach"], capsys)
    assert code == 3 and "RunPod has no GPU type 'NVIDIA H100 80GB HBM3'" in err
    recs = ledger.records(tmp_path / "runs")
    assert [r["status"] for r in recs.values()] == ["failed", "failed"] and rp.created == []


def test_agent_args_have_no_characters_the_sdk_cannot_carry(rp, tmp_path, monkeypatch):
    from pack.launch.cli import build_spec

    gpu_project(tmp_path, monkeypatch)
    spec, provider, _ = build_spec(["gpu-demo:four-gpu"], "runpod-h100-sxm-x4", "full", log=lambda m: None)
    assert provider == "runpod"
    assert '"' not in agent_args(spec) and "'" not in agent_args(spec)
