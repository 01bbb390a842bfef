"""`pack launch ROW --hw g6e.xlarge` through SkyPilot's real AWS provisioner, against moto_server.

Everything runs here: moto_server on 127.0.0.1 (AWS_ENDPOINT_URL), a SkyPilot API server on its own
port, a scratch HOME prepared with the pack's catalog (pack/launch/offline.py) plus an images.csv
mapping SkyPilot's GPU image tag to one of moto's AMIs. What moto needs that a real account has:
the `skypilot-v1` role and instance profile, and a public route in the default VPC.

What it shows: the instance SkyPilot creates (type, AMI, its cluster tag, the instance profile),
the pack's admin policy being applied, and that the `finally: sky.down` terminates the instance
when the launch cannot go on (under moto nothing answers SSH), with the cluster closed in the
ledger at the catalog's price. Then `status`/`reap` ask SkyPilot and name RunPod as unchecked.
What it cannot show: anything over SSH (setup in the container, the job, rsync back, and the
autostop the node applies), so `rsync` here is a stand-in that fails: SkyPilot checks it is installed.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("sky")
pytest.importorskip("moto")
boto3 = pytest.importorskip("boto3")

from pack.launch import offline  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
PY = sys.executable
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]
IMAGE_TAGS = ("custom-gpu-ubuntu-cuda13", "custom-gpu-ubuntu", "custom-cpu-ubuntu", "gpu-ubuntu-2204")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(url: str, seconds: float) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        try:
            urllib.request.urlopen(url, timeout=5)
            return
        except OSError:
            time.sleep(1)
    pytest.fail(f"{url} did not answer within {seconds:g} s")


def _aws_account_prerequisites(ami_region: str = "us-east-1") -> str:
    """What a real account has and moto does not; returns an AMI id moto knows."""
    ec2 = boto3.client("ec2", region_name=ami_region)
    ami = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    iam = boto3.client("iam", region_name=ami_region)
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    iam.create_role(RoleName="skypilot-v1", AssumeRolePolicyDocument=json.dumps(trust))
    iam.create_instance_profile(InstanceProfileName="skypilot-v1")
    iam.add_role_to_instance_profile(InstanceProfileName="skypilot-v1", RoleName="skypilot-v1")
    vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    [rt] = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["RouteTables"][:1]
    ec2.create_route(RouteTableId=rt["RouteTableId"], DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    return ami


@pytest.fixture(scope="module")
def cloud_env(tmp_path_factory):
    if not shutil.which("moto_server", path=str(Path(PY).parent)):
        pytest.skip("moto_server is not installed (moto[server], the dev extra)")
    tmp = tmp_path_factory.mktemp("sky-moto")
    home = offline.prepare(tmp / "home")
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    (bin_dir / "rsync").write_text(  # SkyPilot checks `rsync --version` before it provisions
        '#!/bin/sh\n[ "$1" = --version ] && { echo "rsync stand-in (tests)"; exit 0; }\n'
        "echo 'rsync stand-in: nothing answers SSH under moto' >&2\nexit 12\n"
    )
    (bin_dir / "rsync").chmod(0o755)
    moto_port, api_port = _free_port(), _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SKYPILOT_", "PACK_", "BUDGET_"))}
    env.update(
        HOME=str(home),
        PATH=f"{bin_dir}:{Path(PY).parent}:/usr/bin:/bin",
        PYTHONPATH=str(REPO),
        AWS_ENDPOINT_URL=f"http://127.0.0.1:{moto_port}",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        SKYPILOT_DISABLE_USAGE_COLLECTION="1",
        SKYPILOT_API_SERVER_ENDPOINT=f"http://127.0.0.1:{api_port}",
        SKYPILOT_API_SERVER_LOCAL_PORT=str(api_port),  # moves its queue manager's port along with it
        PACK_IMAGE_PREFIX="ghcr.io/lab/ecmoe",
        PACK_RUNS=str(tmp / "runs"),
    )
    logs = tmp / "logs"
    logs.mkdir()
    moto = subprocess.Popen(
        [str(Path(PY).parent / "moto_server"), "-p", str(moto_port)],
        env=env,
        stdout=open(logs / "moto.log", "w"),
        stderr=subprocess.STDOUT,
    )
    api = None
    keys = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")
    saved = {k: os.environ.get(k) for k in keys}
    try:
        _wait(f"http://127.0.0.1:{moto_port}/moto-api/", 120)
        os.environ.update({k: env[k] for k in saved})
        ami = _aws_account_prerequisites()
        catalogs = home / ".sky" / "catalogs" / "v8" / "aws"
        (catalogs / "images.csv").write_text(
            "Tag,Region,OS,OSVersion,ImageId,CreationDate\n"
            + "".join(f"skypilot:{t},us-east-1,ubuntu,22.04,{ami},20250101\n" for t in IMAGE_TAGS)
        )
        (catalogs / "instance_quota_mapping.csv").write_text(
            "InstanceType,OnDemandInstanceCode,SpotInstanceCode\n"
        )
        seed = "from pack.launch import offline; offline.seed_enabled_clouds(('AWS',))"
        subprocess.run([PY, "-c", seed], env=env, check=True, timeout=300)
        # SkyPilot's own start waits 60 s for its server; a loaded test machine can take longer.
        api = subprocess.Popen(
            [PY, "-m", "sky.server.server", "--host=127.0.0.1", f"--port={api_port}"],
            env=env,
            stdout=open(logs / "api.log", "w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its workers and queue manager share this group: stopped together
        )
        _wait(f"http://127.0.0.1:{api_port}/api/health", 300)
        yield {"env": env, "ami": ami, "runs": tmp / "runs", "logs": logs}
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if api:
            _stop_group(api)
        moto.terminate()
        try:
            moto.wait(60)
        except subprocess.TimeoutExpired:
            moto.kill()


def _stop_group(proc: subprocess.Popen) -> None:
    """The API server and the processes it started (their own session, so only those)."""
    import signal

    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            continue


def _instances(env) -> list[dict]:
    ec2 = boto3.client("ec2", region_name="us-east-1", endpoint_url=env["AWS_ENDPOINT_URL"])
    return [i for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]]


def test_launch_creates_the_instance_and_ctrl_c_terminates_it(cloud_env):
    """SkyPilot waits 10 min for SSH that never comes under moto; Ctrl-C once the instance exists
    must cancel the launch and `sky down` it (the path a user takes when a launch hangs)."""
    import signal

    env = cloud_env["env"]
    proc = subprocess.Popen(
        [PY, "-m", "pack", "launch", "paperB:ablation", "--hw", "g6e.xlarge"],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        t0 = time.monotonic()
        while not (running := [i for i in _instances(env) if i["State"]["Name"] == "running"]):
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.monotonic() - t0 < 900, "no instance within 15 min"
            time.sleep(3)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=900)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130 and "Traceback" not in err, err[-3000:]
    assert "Applying client admin policy: RequireAutodown" in out + err
    [up] = running  # as it ran (moto drops the instance profile on termination)
    assert up["InstanceType"] == "g6e.xlarge" and up["ImageId"] == cloud_env["ami"]
    assert "skypilot-v1" in up["IamInstanceProfile"]["Arn"]
    from pack.launch import ledger

    [rec] = ledger.records(cloud_env["runs"]).values()
    tags = {t["Key"]: t["Value"] for t in up.get("Tags", [])}
    assert any(v.startswith(rec.cluster) for v in tags.values()), tags
    [inst] = _instances(env)
    assert inst["InstanceId"] == up["InstanceId"]
    assert inst["State"]["Name"] in ("shutting-down", "terminated")  # sky.down after the cancel
    assert rec.status == "interrupted" and rec.stop and rec.cost_usd is not None
    assert rec.price_usd_per_hour == 1.861 and f"cluster {rec.cluster} torn down" in rec.detail


def test_status_and_reap_ask_skypilot_and_never_give_an_all_clear(cloud_env):
    env = cloud_env["env"]
    for verb in (["status"], ["reap", "--provider", "sky"]):
        res = subprocess.run(
            [PY, "-m", "pack", "launch", *verb],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert res.returncode == 1, res.stderr[-2000:]
        assert "could not check runpod (no credentials SkyPilot can use" in res.stderr
        assert (
            "clusters there are unknown, not absent" in res.stderr and "nothing to remove" not in res.stdout
        )
