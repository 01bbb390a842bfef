"""EC2 launches against moto (in-process EC2, S3, SSM, IAM): what is created, how it ends."""

from __future__ import annotations

import base64
import json
import subprocess
import time

import pytest

pytest.importorskip("moto")
import boto3  # noqa: E402
from moto import mock_aws  # noqa: E402

from pack.launch import ledger, lifecycle, settings  # noqa: E402
from pack.launch.ec2 import EC2Launcher  # noqa: E402
from tests.unit.test_launch_helpers import gpu_project, pack  # noqa: E402

BUCKET = "pack-results"
DLAMI = "Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04) 20261120"


@pytest.fixture
def aws(tmp_path, monkeypatch):
    for k in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "PACK_EC2_AMI", "BUDGET_USD"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    monkeypatch.setenv("PACK_S3_BUCKET", BUCKET)
    monkeypatch.setenv("PACK_EC2_INSTANCE_PROFILE", "pack-runner")
    monkeypatch.setenv("PACK_IMAGE_PREFIX", "123456789012.dkr.ecr.us-east-1.amazonaws.com/ecmoe")
    monkeypatch.setenv("PACK_RUNS", str(tmp_path / "runs"))
    with mock_aws():
        ec2 = boto3.client("ec2", region_name="us-east-1")
        ami = ec2.register_image(Name=DLAMI, RootDeviceName="/dev/sda1", Architecture="x86_64")["ImageId"]
        boto3.client("ssm", region_name="us-east-1").put_parameter(
            Name="/pack-test/dlami/ami-id", Value=ami, Type="String"
        )
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=BUCKET)
        boto3.client("iam", region_name="us-east-1").create_instance_profile(
            InstanceProfileName="pack-runner"
        )
        cfg = settings.providers()
        ec2_cfg = cfg["ec2"] | {
            "ami": cfg["ec2"]["ami"] | {"ssm_parameter": "/pack-test/dlami/ami-id", "owners": ["self"]}
        }
        monkeypatch.setattr(settings, "providers", lambda: cfg | {"ec2": ec2_cfg})
        yield {
            "ec2": ec2,
            "ami": ami,
            "s3": boto3.client("s3", region_name="us-east-1"),
            "runs": tmp_path / "runs",
        }


def instances(ec2, states=("pending", "running", "shutting-down", "terminated", "stopped")):
    res = ec2.describe_instances(Filters=[{"Name": "instance-state-name", "Values": list(states)}])
    return [i for r in res["Reservations"] for i in r["Instances"]]


def test_detached_launch_creates_one_tagged_self_terminating_instance(aws, capsys, tmp_path, monkeypatch):
    gpu_project(tmp_path, monkeypatch)
    t0 = time.time()
    code, out, err = pack(["launch", "gpu-demo:l40s-row", "--hw", "g6e.xlarge", "--detach"], capsys)
    assert code == 0, err
    launch_id = out.split("\t")[0]
    [inst] = instances(aws["ec2"])
    assert inst["InstanceType"] == "g6e.xlarge"  # from manifests/hardware.yaml
    assert inst["ImageId"] == aws["ami"]
    tags = {t["Key"]: t["Value"] for t in inst["Tags"]}
    assert tags["pack:launch-id"] == launch_id and tags["pack:rows"] == "gpu-demo:l40s-row"
    # deadline = the row's max runtime (3600 s) + EC2 overhead (900 s); expiry adds the grace (600 s)
    assert abs(float(tags["pack:expires-at"]) - (t0 + 3600 + 900 + 600)) < 30
    attr = aws["ec2"].describe_instance_attribute(
        InstanceId=inst["InstanceId"], Attribute="instanceInitiatedShutdownBehavior"
    )
    assert attr["InstanceInitiatedShutdownBehavior"]["Value"] == "terminate"
    ud = base64.b64decode(
        aws["ec2"].describe_instance_attribute(InstanceId=inst["InstanceId"], Attribute="userData")[
            "UserData"
        ]["Value"]
    ).decode()
    assert "shutdown -h +75 " in ud  # (3600 + 900) s / 60, armed before anything else runs
    assert ud.index("shutdown -h +75") < ud.index("docker pull")
    image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/ecmoe:l40s"
    assert f"IMAGE={image}" in ud and "docker login --username AWS" in ud  # ECR image: log in first
    assert (
        f"docker run --rm --name pack-{launch_id}" in ud
        and "--gpus all" in ud
        and f"{image} pack run gpu-demo:l40s-row --scale full --out /runs --hw g6e.xlarge" in ud
    )
    assert (
        f"RESULTS=s3://{BUCKET}/pack-launches/{launch_id}" in ud
        and 'aws s3 sync --only-show-errors "$RUNS" "$RESULTS/runs"' in ud
    )
    assert "trap finish EXIT" in ud
    assert subprocess.run(["bash", "-n"], input=ud, text=True).returncode == 0  # the script parses
    assert inst["IamInstanceProfile"]["Arn"].endswith("/pack-runner")
    status = json.loads(
        aws["s3"].get_object(Bucket=BUCKET, Key=f"pack-launches/{launch_id}/status.json")["Body"].read()
    )
    assert status["state"] == "provisioning"
    rec = ledger.get(launch_id, aws["runs"])
    assert (
        rec["provider"] == "ec2"
        and rec["instance_id"] == inst["InstanceId"]
        and rec["price_usd_per_hour"] == 1.861
    )
    assert rec["status"] == "running" and rec["stop"] is None
    assert "pack launch status" in err and "pack launch down" in err


def _finish_remotely(s3, launch_id: str, exit_code: int = 0) -> None:
    """What the user-data does at the end: upload the runs tree and status.json."""
    from pack import fsio

    base = f"pack-launches/{launch_id}"
    run = {"status": "complete", "paper": "gpu-demo", "row": "l40s-row"}
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        rd = Path(d) / "gpu-demo" / "l40s-row" / "20261122T000000Z-full-abcd1234"
        (rd / "reps" / "rep-000").mkdir(parents=True)
        (rd / "reps" / "rep-000" / "rep.json").write_text("{}")
        (rd / "run.json").write_text(json.dumps(run))
        fsio.write_sums(rd)
        for p in Path(d).rglob("*"):
            if p.is_file():
                s3.put_object(Bucket=BUCKET, Key=f"{base}/runs/{p.relative_to(d)}", Body=p.read_bytes())
    s3.put_object(
        Bucket=BUCKET,
        Key=f"{base}/status.json",
        Body=json.dumps({"state": "finished", "exit_code": exit_code}),
    )
    s3.put_object(Bucket=BUCKET, Key=f"{base}/launch.log", Body=b"pack run exited with status 0\n")


def test_status_fetch_closes_the_launch_and_terminates(aws, capsys, tmp_path, monkeypatch):
    gpu_project(tmp_path, monkeypatch)
    code, out, err = pack(["launch", "gpu-demo:l40s-row", "--hw", "g6e.xlarge", "--detach"], capsys)
    launch_id = out.split("\t")[0]
    code, out, _ = pack(["launch", "status", launch_id], capsys)
    assert code == 0 and "\trunning\t" in out
    _finish_remotely(aws["s3"], launch_id)
    code, out, _ = pack(["launch", "status", launch_id], capsys)
    assert "\tfinished\t1 rep(s) done" in out
    code, out, err = pack(["launch", "fetch", launch_id], capsys)
    assert code == 0, err
    run = aws["runs"] / "gpu-demo" / "l40s-row" / "20261122T000000Z-full-abcd1234"
    assert (run / "run.json").is_file() and (aws["runs"] / "launches" / f"{launch_id}.log").is_file()
    assert "damaged" not in err
    assert [i["State"]["Name"] for i in instances(aws["ec2"])] == ["terminated"]
    rec = ledger.get(launch_id, aws["runs"])
    assert rec["status"] == "finished" and rec["stop"] and rec["cost_usd"] >= 0
    code, out, _ = pack(["launch", "ledger"], capsys)
    assert launch_id in out and "g6e.xlarge" in out and "finished" in out


def _spec(monkeypatch, tmp_path, row="gpu-demo:l40s-row", hw="g6e.xlarge"):
    from pack.launch.cli import build_spec

    gpu_project(tmp_path, monkeypatch)
    spec, provider, _ = build_spec([row], hw, "full", log=lambda m: None)
    return spec


def test_failure_mid_provisioning_terminates_what_was_created(aws, tmp_path, monkeypatch):
    spec = _spec(monkeypatch, tmp_path)
    session = boto3.Session(region_name="us-east-1")

    def broken(**kwargs):  # the API fails after run_instances, while waiting for the instance
        raise RuntimeError("connection reset while waiting for the instance")

    session.events.register("before-call.ec2.DescribeInstances", broken)
    launcher = EC2Launcher(aws["runs"], log=lambda m: None, session=session)
    with pytest.raises(RuntimeError):
        lifecycle.start(spec, launcher, wait=False)
    # teardown went through (terminate_instances is not DescribeInstances, so the hook lets it pass)
    assert [i["State"]["Name"] for i in instances(aws["ec2"])] == ["terminated"]
    rec = ledger.get(spec.launch_id, aws["runs"])
    assert rec["status"] == "failed" and "terminated instance i-" in rec["detail"] and rec["instance_id"]


def test_ctrl_c_during_provisioning_leaves_nothing(aws, tmp_path, monkeypatch):
    spec = _spec(monkeypatch, tmp_path)
    session = boto3.Session(region_name="us-east-1")

    def ctrl_c(**kwargs):
        raise KeyboardInterrupt

    session.events.register("before-call.ec2.DescribeInstances", ctrl_c)
    with pytest.raises(lifecycle.LaunchInterrupted) as e:
        lifecycle.start(spec, EC2Launcher(aws["runs"], log=lambda m: None, session=session), wait=True)
    assert "interrupted during provision" in str(e.value) and "nothing of launch" in str(e.value)
    assert e.value.exit_code == 130
    assert [i["State"]["Name"] for i in instances(aws["ec2"])] == ["terminated"]
    assert ledger.get(spec.launch_id, aws["runs"])["status"] == "interrupted"


def test_ctrl_c_while_waiting_detaches_with_a_deadline(aws, tmp_path, monkeypatch):
    spec = _spec(monkeypatch, tmp_path)
    logs = []

    def ctrl_c(_seconds):
        raise KeyboardInterrupt

    with pytest.raises(lifecycle.LaunchInterrupted) as e:
        lifecycle.start(spec, EC2Launcher(aws["runs"], log=logs.append), wait=True, poll_s=1, sleep=ctrl_c)
    msg = str(e.value)
    assert f"pack launch status {spec.launch_id}" in msg and f"pack launch down {spec.launch_id}" in msg
    assert "ends by itself by" in msg and "EC2 instance i-" in msg
    [inst] = instances(aws["ec2"])  # still running, on its own deadline
    assert inst["State"]["Name"] == "running"
    assert {t["Key"] for t in inst["Tags"]} >= {"pack:expires-at", "pack:launch-id"}
    assert any("running" in m for m in logs)  # progress was printed before the interrupt


def test_down_terminates(aws, capsys, tmp_path, monkeypatch):
    gpu_project(tmp_path, monkeypatch)
    _, out, _ = pack(["launch", "gpu-demo:l40s-row", "--hw", "g6e.xlarge", "--detach"], capsys)
    launch_id = out.split("\t")[0]
    code, out, _ = pack(["launch", "down", launch_id], capsys)
    assert code == 0 and "\tdown\t" in out
    assert [i["State"]["Name"] for i in instances(aws["ec2"])] == ["terminated"]
    code, out, _ = pack(["launch", "down", launch_id], capsys)  # idempotent, first stop kept
    assert code == 0


def test_reaper_terminates_only_expired_pack_instances(aws, capsys, monkeypatch):
    monkeypatch.delenv("PACK_EC2_INSTANCE_PROFILE")  # reaping needs credentials only, no launch settings
    ec2 = aws["ec2"]

    def start(tags):
        spec = (
            [{"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}]
            if tags
            else []
        )
        return ec2.run_instances(
            ImageId=aws["ami"], InstanceType="g6e.xlarge", MinCount=1, MaxCount=1, TagSpecifications=spec
        )["Instances"][0]["InstanceId"]

    now = int(time.time())
    expired = start({"pack:expires-at": str(now - 60), "pack:launch-id": "pk-old"})
    fresh = start({"pack:expires-at": str(now + 3600), "pack:launch-id": "pk-new"})
    foreign = start({"Name": "someone-else"})
    code, out, err = pack(["launch", "reap", "--provider", "ec2", "--dry-run"], capsys)
    assert code == 0 and f"would remove\tec2\t{expired}" in out and fresh not in out
    assert all(i["State"]["Name"] == "running" for i in instances(ec2))
    code, out, err = pack(["launch", "reap", "--provider", "ec2"], capsys)
    assert code == 0 and f"removed\tec2\t{expired}" in out
    state = {i["InstanceId"]: i["State"]["Name"] for i in instances(ec2)}
    assert state == {expired: "terminated", fresh: "running", foreign: "running"}


def test_pinned_ami_checked_first_and_rotation_reported(aws, monkeypatch):
    logs = []
    launcher = EC2Launcher(aws["runs"], log=logs.append)
    other = aws["ec2"].register_image(Name="pinned-image", RootDeviceName="/dev/sda1")["ImageId"]
    monkeypatch.setenv("PACK_EC2_AMI", other)
    ami, _, note = launcher.resolve_ami("us-east-1")
    assert ami == other and note.startswith("AMI ") and "pinned" in note
    aws["ec2"].deregister_image(ImageId=other)  # the pinned AMI rotates away
    ami, _, note = launcher.resolve_ami("us-east-1")
    assert ami == aws["ami"]
    assert f"the pinned AMI {other} for us-east-1 no longer exists" in note and "SSM parameter" in note
    assert f"PACK_EC2_AMI={aws['ami']}" in note


def test_ami_falls_back_to_describe_images_then_fails_clearly(aws, monkeypatch):
    cfg = settings.providers()
    monkeypatch.setattr(
        settings,
        "providers",
        lambda: (
            cfg | {"ec2": cfg["ec2"] | {"ami": cfg["ec2"]["ami"] | {"ssm_parameter": "/pack-test/missing"}}}
        ),
    )
    launcher = EC2Launcher(aws["runs"], log=lambda m: None)
    ami, _, note = launcher.resolve_ami("us-east-1")
    assert (
        ami == aws["ami"] and "could not be read (ParameterNotFound)" in note and "newest image named" in note
    )
    aws["ec2"].deregister_image(ImageId=aws["ami"])
    from pack.errors import LaunchError

    with pytest.raises(LaunchError, match="no usable AMI in us-east-1: .*set PACK_EC2_AMI"):
        launcher.resolve_ami("us-east-1")


def test_missing_credentials_name_the_variables(aws, capsys, tmp_path, monkeypatch):
    gpu_project(tmp_path, monkeypatch)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    code, _, err = pack(["launch", "gpu-demo:l40s-row", "--hw", "g6e.xlarge", "--detach"], capsys)
    assert code == 3 and "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" in err and "AWS_PROFILE" in err
    assert "Traceback" not in err and instances(aws["ec2"]) == []
    monkeypatch.setenv("AWS_PROFILE", "nosuchprofile")
    code, _, err = pack(["launch", "gpu-demo:l40s-row", "--hw", "g6e.xlarge", "--detach"], capsys)
    assert code == 3 and "AWS_PROFILE=nosuchprofile names no profile" in err


def test_missing_instance_profile_or_bucket_is_one_sentence(aws, capsys, tmp_path, monkeypatch):
    gpu_project(tmp_path, monkeypatch)
    monkeypatch.delenv("PACK_S3_BUCKET")
    code, _, err = pack(["launch", "gpu-demo:l40s-row", "--hw", "g6e.xlarge", "--detach"], capsys)
    assert code == 3 and "set PACK_S3_BUCKET" in err
    monkeypatch.setenv("PACK_S3_BUCKET", BUCKET)
    monkeypatch.delenv("PACK_EC2_INSTANCE_PROFILE")
    code, _, err = pack(["launch", "gpu-demo:l40s-row", "--hw", "g6e.xlarge", "--detach"], capsys)
    assert code == 3 and "PACK_EC2_INSTANCE_PROFILE" in err and instances(aws["ec2"]) == []


def test_budget_exceeded_launches_nothing(aws, capsys, tmp_path, monkeypatch):
    gpu_project(tmp_path, monkeypatch)
    monkeypatch.setenv("BUDGET_USD", "1.00")
    code, _, err = pack(["launch", "gpu-demo:l40s-row", "--hw", "g6e.xlarge"], capsys)
    # worst case: (3600 + 900 + 600) s at 1.861 USD/h = 2.64 USD
    assert (
        code == 2
        and "worst case for gpu-demo:l40s-row on g6e.xlarge is 2.64 USD" in err
        and "budget of 1.00" in err
    )
    assert instances(aws["ec2"]) == [] and ledger.records(aws["runs"]) == {}
    code, _, err = pack(
        ["launch", "gpu-demo:l40s-row", "--hw", "g6e.xlarge", "--budget", "3", "--detach"], capsys
    )
    assert code == 0 and len(instances(aws["ec2"])) == 1
