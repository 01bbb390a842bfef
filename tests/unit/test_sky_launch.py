"""The SkyPilot layer (issue 16): task and resources of a row, the pack's catalog under SkyPilot's
optimizer, the autodown policy, the optional extra, RunPod's SDK calls, the ledger per cluster.

SkyPilot runs for real here (its Task/Resources validation, its optimizer, its policy hook) on the
pack's shipped catalog, in scratch HOMEs: nothing touches ~/.sky, nothing reaches the network.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pack import catalog
from tests.unit.test_launch_helpers import REPO, pack, sky_home  # noqa: F401  (a fixture)

sky = pytest.importorskip("sky")

from pack.launch import cloud, ledger, offline  # noqa: E402


@pytest.fixture(autouse=True)
def _scratch(tmp_path, monkeypatch, sky_home):  # noqa: F811
    monkeypatch.setenv("HOME", str(sky_home))
    monkeypatch.setenv("PACK_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("PACK_IMAGE_PREFIX", "ghcr.io/lab/ecmoe")
    monkeypatch.delenv("BUDGET_USD", raising=False)


def spec(hw: str = "g6e.xlarge", row: str = "paperB:ablation", image: str = "ghcr.io/lab/ecmoe:l40s"):
    return cloud.RowLaunch(
        launch_id="pk-20261202-120000-ab12",
        row=row,
        scale="full",
        hardware_name=hw,
        hardware=catalog.get_hardware(hw),
        price=catalog.price(hw),
        image_ref=image,
        image_digest=None,
        max_runtime_s=7200,
        overhead_s=900,
        idle_minutes=10,
    )


def test_a_row_becomes_one_task_with_the_image_instance_accelerator_and_autodown():
    s = spec()
    task = cloud.build_task(s)
    [res] = list(task.resources)
    assert res.instance_type == "g6e.xlarge" and res.accelerators == {"L40S": 1}
    assert str(res.cloud) == "AWS" and res.region == "us-east-1"
    assert res.extract_docker_image() == "ghcr.io/lab/ecmoe:l40s"
    assert res.autostop_config.down and res.autostop_config.idle_minutes == 10
    assert task.run == (
        "mkdir -p ~/pack-runs && timeout -k 60 7200 pack run paperB:ablation --scale full "
        "--out ~/pack-runs --hw g6e.xlarge"
    )
    assert task.envs["PACK_HW"] == "g6e.xlarge" and s.cluster == "pk-20261202-120000-ab12"
    assert s.worst_case_s == 7200 + 900 + 600


def test_runpod_class_maps_to_skypilots_runpod_instance_type():
    [res] = list(cloud.build_task(spec("runpod-h100-sxm-x4")).resources)
    assert str(res.cloud) == "RunPod" and res.instance_type == "4x_H100-SXM_SECURE"
    assert res.accelerators == {"H100-SXM": 4}


def test_the_optimizer_on_the_pack_catalog_picks_the_plans_price_and_refuses_what_it_cannot_run():
    kw = cloud.resources_kwargs(spec())
    wrong_gpu = kw | {"accelerators": "H100:1"}
    wrong_region = kw | {"infra": "aws/eu-north-9"}
    got = offline.choose([kw, wrong_gpu, wrong_region])
    assert got[0]["instance_type"] == "g6e.xlarge" and got[0]["region"] == "us-east-1"
    assert got[0]["usd_per_hour"] == catalog.price("g6e.xlarge").usd_per_hour == 1.861
    assert "error" in got[1] and "error" in got[2]


def test_plan_prints_skypilots_choice_and_the_same_figure_as_pack_plan(capsys):
    code, out, err = pack(["launch", "plan", "paperB:ablation", "--hw", "g6e.xlarge"], capsys)
    assert code == 0, err
    assert (
        "1.861 USD/h: AWS EC2 on-demand, us-east-1, Linux, price of 2026-11-22 (manifests/sky-catalog)" in out
    )
    assert (
        "SkyPilot chose: AWS (us-east-1) g6e.xlarge L40S:1 image docker:ghcr.io/lab/ecmoe:l40s at 1.861 USD/h"
        in out
    )
    _, plan_out, _ = pack(["plan", "paperB", "--hw", "g6e.xlarge"], capsys)
    assert "price of 2026-11-22 (manifests/sky-catalog)" in plan_out


POLICY_CHECK = """
import sys
from sky import admin_policy, exceptions
import sky
from sky.server.requests.request_names import AdminPolicyRequestName
from sky.utils import admin_policy_utils
from pack import catalog
from pack.launch import cloud
from pack.launch.policy import with_policy
from tests.unit.test_sky_launch import spec


def apply(task, down, idle):  # the client-side policy step of sky.launch, without its API server
    opts = admin_policy.RequestOptions(
        cluster_name="pk-t", idle_minutes_to_autostop=idle, down=down, dryrun=False
    )
    return admin_policy_utils.apply(task, AdminPolicyRequestName.CLUSTER_LAUNCH, opts, at_client_side=True)


bare = sky.Task(name="x", run="true")
bare.set_resources(sky.Resources(infra="aws/us-east-1", instance_type="g6e.xlarge"))
for down, idle in ((False, None), (False, 5)):
    try:
        with with_policy():
            apply(bare, down, idle)
        print("ALLOWED", down, idle)
    except exceptions.UserRequestRejectedByPolicy as e:
        print("REFUSED", down, idle, str(e).splitlines()[-1])
apply(bare, False, None)
print("WITHOUT POLICY ALLOWED")
with with_policy():
    dag, _ = apply(cloud.build_task(spec()), True, 10)
print("AUTODOWN ALLOWED", dag.tasks[0].name)
"""


def test_the_policy_refuses_a_launch_without_autodown_before_anything_is_created(tmp_path):
    """Run where HOME is a scratch SkyPilot home: the policy step reads SkyPilot's catalogs."""
    home = offline.prepare(tmp_path / "home")
    env = {**os.environ, "HOME": str(home), "PYTHONPATH": str(REPO), "PACK_IMAGE_PREFIX": "ghcr.io/lab/ecmoe"}
    res = subprocess.run(
        [sys.executable, "-c", POLICY_CHECK], env=env, capture_output=True, text=True, cwd=REPO
    )
    assert res.returncode == 0, res.stderr[-2000:]
    lines = res.stdout.splitlines()
    refused = [line for line in lines if line.startswith("REFUSED")]
    assert len(refused) == 2 and all("without autodown" in line for line in refused), res.stdout
    assert "WITHOUT POLICY ALLOWED" in lines and "AUTODOWN ALLOWED pk-20261202-120000-ab12" in lines


def test_the_policy_lets_an_autodown_launch_through():
    from sky import admin_policy
    from sky.server.requests.request_names import AdminPolicyRequestName

    from pack.launch.policy import RequireAutodown

    task = cloud.build_task(spec())
    req = admin_policy.UserRequest(
        task=task,
        skypilot_config=sky.Config(),
        request_name=AdminPolicyRequestName.CLUSTER_LAUNCH,
        request_options=admin_policy.RequestOptions(
            cluster_name="c", idle_minutes_to_autostop=10, down=True, dryrun=False
        ),
    )
    assert RequireAutodown.validate_and_mutate(req).task is task


def test_runpod_pod_request_and_termination_through_skypilots_runpod_provisioner(monkeypatch):
    """SkyPilot's RunPod provisioner against a patched SDK: what pod it asks for, and that down removes it."""
    import runpod

    pods: dict[str, dict] = {}

    def create_pod(**kw):
        pid = f"pod{len(pods) + 1}"
        pods[pid] = {"id": pid, "desiredStatus": "RUNNING", "name": kw["name"], "request": kw}
        return {"id": pid}

    def terminate_pod(pid):
        pods.pop(pid)

    monkeypatch.setattr(runpod, "create_pod", create_pod, raising=False)
    monkeypatch.setattr(runpod, "terminate_pod", terminate_pod, raising=False)
    monkeypatch.setattr(runpod, "get_gpu", lambda gpu_id: {"id": gpu_id, "memoryInGb": 80}, raising=False)
    monkeypatch.setattr(runpod, "api_key", "test-key", raising=False)
    from sky.provision.runpod import utils as rp_utils

    created = rp_utils.launch(
        cluster_name="pk-rp-head",
        node_type="head",
        instance_type="1x_H100-SXM_SECURE",
        region="US",
        zone="US-CA-2",
        disk_size=200,
        image_name="ghcr.io/lab/ecmoe:cu128",
        ports=None,
        public_key="ssh-ed25519 AAAA test",
        preemptible=False,
        bid_per_gpu=0,
        docker_login_config=None,
    )
    req = pods[created]["request"]
    assert req["gpu_type_id"] == "NVIDIA H100 80GB HBM3" and req["gpu_count"] == 1
    assert req["image_name"] == "ghcr.io/lab/ecmoe:cu128" and req["cloud_type"] == "SECURE"
    assert (
        req["min_memory_in_gb"] == 80
        and req["container_disk_in_gb"] == 200
        and req["name"] == "pk-rp-head-head"
    )
    rp_utils.remove(created)
    assert pods == {}


def test_each_cluster_is_in_the_ledger_with_its_cost_even_when_launch_fails(tmp_path, monkeypatch):
    """`sky.launch` answering with an error (here: no API server may start in a test) still ends in
    `sky.down` and a closed ledger record per cluster; `--parallel 2` runs both."""
    calls = []

    def refuse(task, **kw):
        calls.append(("launch", kw["cluster_name"], kw["down"], kw["idle_minutes_to_autostop"]))
        raise sky.exceptions.ResourcesUnavailableError("no capacity (test)")

    def down(name):
        calls.append(("down", name))
        return "req"

    monkeypatch.setattr(sky, "launch", refuse)
    monkeypatch.setattr(sky, "down", down)
    monkeypatch.setattr(sky, "get", lambda req: None)
    runs = tmp_path / "runs"
    a, b = spec(), spec(row="paperB:rank-sweep.rank-256")
    b = cloud.RowLaunch(**{**a.__dict__, "launch_id": "pk-2", "row": b.row})
    outcomes = cloud.launch_all([a, b], runs, lambda m: None, parallel=2)
    assert sorted(o.status for o in outcomes) == ["failed", "failed"]
    assert {c for c in calls if c[0] == "launch"} == {
        ("launch", a.cluster, True, 10),
        ("launch", "pk-2", True, 10),
    }
    assert {c for c in calls if c[0] == "down"} == {("down", a.cluster), ("down", "pk-2")}
    recs = ledger.records(runs)
    assert set(recs) == {a.launch_id, "pk-2"}
    for r in recs.values():
        assert r.stop and r.cost_usd is not None and r.status == "failed" and "no capacity" in r.detail
        assert (
            r.provider == "sky"
            and r.price_usd_per_hour == 1.861
            and "price of 2026-11-22 (manifests/sky-catalog)" in r.price_basis
        )


def test_core_imports_and_pack_launch_explains_without_skypilot(tmp_path):
    """A subprocess where `import sky` fails: the CLI, list and plan work; a cloud launch says which extra."""
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text(  # as if the cloud extra were not installed
        "import sys\n"
        "class Hide:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'sky' or name.startswith('sky.'):\n"
        "            raise ModuleNotFoundError(f'No module named {name!r} (hidden by the test)')\n"
        "sys.meta_path.insert(0, Hide())\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{hide}{os.pathsep}{REPO}", "PACK_IMAGE_PREFIX": "ghcr.io/lab/ecmoe"}
    env["PACK_RUNS"] = str(tmp_path / "runs")

    def run(*args):
        return subprocess.run(
            [sys.executable, "-m", "pack", *args], env=env, capture_output=True, text=True, cwd=REPO
        )

    assert run("--help").returncode == 0
    assert run("plan", "paperB", "--hw", "g6e.xlarge").returncode == 0
    res = run("launch", "plan", "paperB:ablation", "--hw", "g6e.xlarge")
    assert res.returncode == 0 and "SkyPilot's choice not shown: SkyPilot is not installed" in res.stdout
    res = run("launch", "paperB:ablation", "--hw", "g6e.xlarge")
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert "SkyPilot, which is not installed: pip install 'pack-repro[cloud]'" in res.stderr
    assert not (Path(tmp_path) / "runs" / "ledger.jsonl").exists()
