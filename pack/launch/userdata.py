"""The EC2 user-data script: what an instance does on its own once it boots.

It needs nothing from the client after launch: it arms its own shutdown timer (the instance is
launched with InstanceInitiatedShutdownBehavior=terminate, so power-off = termination), pulls the
image, runs the rows detached from any SSH session, syncs partial results to S3 every two minutes
(so `pack launch status` sees progress), uploads everything and its log at the end, writes
status.json, and shuts down. The AMI (AWS Deep Learning Base OSS Nvidia Driver, Ubuntu 22.04)
brings the NVIDIA driver, Docker with the NVIDIA Container Toolkit, and the AWS CLI.
"""

from __future__ import annotations

import math
import re

from .shell import quote
from .spec import CONTAINER_RUNS, LaunchSpec

HOST_RUNS = "/opt/pack/runs"
IMAGE_UID = 1000  # the images' non-root `pack` user (docker/*/Dockerfile)
_ECR = re.compile(r"^(\d+\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com)/")


def docker_run_argv(spec: LaunchSpec) -> list[str]:
    argv = [
        "docker",
        "run",
        "--rm",
        "--name",
        f"pack-{spec.launch_id}",
        "--label",
        f"pack.launch-id={spec.launch_id}",
        "--label",
        f"pack.expires-at={int(spec.expires_at)}",
    ]
    if spec.hardware.gpu_count > 0:
        argv += ["--gpus", "all"]
    argv += ["--shm-size", "16g", "-v", f"{HOST_RUNS}:{CONTAINER_RUNS}"]
    for k, v in spec.container_env().items():
        argv += ["-e", f"{k}={v}"]
    return argv + [spec.image_ref, *spec.pack_run_argv()]


def shutdown_minutes(spec: LaunchSpec) -> int:
    return max(1, math.ceil(spec.deadline_s / 60))


def render(spec: LaunchSpec, region: str) -> str:
    m = _ECR.match(spec.image_ref or "")
    login = ""
    if m:  # a private ECR image: log in with the instance profile's credentials
        login = (
            f"aws ecr get-login-password --region {m.group(2)} | "
            f"docker login --username AWS --password-stdin {m.group(1)} || true\n"
        )
    return f"""#!/bin/bash
# pack launch {spec.launch_id}: {", ".join(spec.rows)} at scale {spec.scale} on {spec.hardware_name}
# image {spec.image_ref}; written by pack/launch/userdata.py, run once by cloud-init as root.
set -uo pipefail
exec > >(tee -a /var/log/pack-launch.log) 2>&1

# Teardown layer 2: power off by the deadline whatever happens below. The instance was launched
# with InstanceInitiatedShutdownBehavior=terminate, so this power-off terminates it.
shutdown -h +{shutdown_minutes(spec)} "pack launch {spec.launch_id}: deadline reached"

export AWS_DEFAULT_REGION={region}
LAUNCH_ID={spec.launch_id}
RESULTS={spec.results}
IMAGE={quote([spec.image_ref])}
RUNS={HOST_RUNS}
RC=125
TOKEN=$(curl -s -X PUT http://169.254.169.254/latest/api/token -H "X-aws-ec2-metadata-token-ttl-seconds: 600" || true)
INSTANCE_ID=$(curl -s -H "X-aws-ec2-metadata-token: $TOKEN" http://169.254.169.254/latest/meta-data/instance-id || echo unknown)

status() {{  # state [exit code]
  printf '{{"state": "%s", "at": "%s", "exit_code": %s, "instance_id": "%s"}}\\n' \\
    "$1" "$(date -u +%FT%TZ)" "${{2:-null}}" "$INSTANCE_ID" > /tmp/pack-status.json
  aws s3 cp --only-show-errors /tmp/pack-status.json "$RESULTS/status.json" || true
}}
upload() {{
  aws s3 sync --only-show-errors "$RUNS" "$RESULTS/runs" || true
  aws s3 cp --only-show-errors /var/log/pack-launch.log "$RESULTS/launch.log" || true
}}
finish() {{
  upload
  status finished "$RC"
  shutdown -h now "pack launch $LAUNCH_ID: done"
}}
trap finish EXIT

status booting
mkdir -p "$RUNS" && chown {IMAGE_UID}:{IMAGE_UID} "$RUNS"
{login}pulled=0
for attempt in 1 2 3; do
  if docker pull "$IMAGE"; then pulled=1; break; fi
  echo "docker pull failed (attempt $attempt); retrying in 30 s"
  sleep 30
done
if [ "$pulled" != 1 ]; then
  echo "could not pull $IMAGE; giving up"
  exit 1
fi

( while sleep 120; do aws s3 sync --only-show-errors "$RUNS" "$RESULTS/runs" || true; done ) &
status running
{quote(docker_run_argv(spec))}
RC=$?
echo "pack run exited with status $RC"
"""
