"""`pack launch ROW --hw runpod-h100-sxm`: one RunPod pod per launch, through the runpod SDK.

The pack image itself is the pod image (no Docker inside the pod). The pod's start command
(dockerArgs, which replaces the image's CMD and keeps its entrypoint and watchdog) is the agent:

    python -m pack.launch.agent --launch-id ID --rows paper:row,… --scale S --hw HW --deadline-at EPOCH

which runs `pack run`, uploads the runs tree and status.json to S3 (credentials from RunPod
secrets, referenced as {{ RUNPOD_SECRET_… }} so no key passes through this request), and then
removes its own pod through the RunPod API (RUNPOD_POD_ID and the pod-scoped RUNPOD_API_KEY are
set by RunPod inside every pod). PACK_EXPIRES_AT in the pod's env is what `pack launch reap` reads.

Tested against a local fake of RunPod's GraphQL endpoint (RUNPOD_API_BASE_URL); not run against
RunPod itself here.
"""

from __future__ import annotations

import os

from ..errors import LaunchError, require
from . import settings
from .lifecycle import Launcher, Status
from .sink import count_reps, fetch_into, open_sink, read_status
from .spec import LaunchSpec, iso

NAME_PREFIX = "pack-"
NO_KEY = (
    "no RunPod API key: set RUNPOD_API_KEY, or store one with `runpod config` "
    "(~/.runpod/config.toml, profile from RUNPOD_PROFILE, default 'default')"
)


def agent_args(spec: LaunchSpec) -> str:
    """The pod's start command. RunPod's dockerArgs is a plain string (no quoting), so every
    token must be free of spaces and quotes: row ids, hardware names and numbers are."""
    return " ".join(
        [
            "python",
            "-m",
            "pack.launch.agent",
            "--launch-id",
            spec.launch_id,
            "--rows",
            ",".join(spec.rows),
            "--scale",
            spec.scale,
            "--hw",
            spec.hardware_name,
            "--deadline-at",
            str(int(spec.deadline_at)),
        ]
    )


def runpod_secret(name: str) -> str:
    """RunPod substitutes a stored secret for this reference inside the pod."""
    return "{{ RUNPOD_SECRET_" + name + " }}"


def pod_env(spec: LaunchSpec) -> dict[str, str]:
    secrets = settings.provider("runpod").get("s3_secrets", {})
    env = spec.container_env() | {
        # The entrypoint's watchdog bounds the agent itself: rows until deadline_at, then upload and self-removal.
        "PACK_DEADLINE_AT": str(int(spec.deadline_at + spec.grace_s / 2)),
        "PACK_EXPIRES_AT": str(int(spec.expires_at)),
        "PACK_RESULTS": spec.results or "",
        "AWS_ACCESS_KEY_ID": runpod_secret(secrets.get("access_key_id", "pack_s3_access_key_id")),
        "AWS_SECRET_ACCESS_KEY": runpod_secret(secrets.get("secret_access_key", "pack_s3_secret_access_key")),
        "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION")
        or os.environ.get("AWS_REGION")
        or "us-east-1",
    }
    if os.environ.get("PACK_S3_ENDPOINT_URL"):
        env["PACK_S3_ENDPOINT_URL"] = os.environ["PACK_S3_ENDPOINT_URL"]
    return env


def env_of(pod: dict) -> dict[str, str]:
    """A pod's env as a dict (the API returns ["KEY=value", …])."""
    out = {}
    for item in pod.get("env") or []:
        if isinstance(item, str):
            k, _, v = item.partition("=")
            out[k] = v
        elif isinstance(item, dict):
            out[item.get("key", "")] = item.get("value", "")
    return out


class RunPodLauncher(Launcher):
    provider = "runpod"

    def api_key(self) -> str | None:
        key = os.environ.get("RUNPOD_API_KEY")
        if key:
            return key
        rp = require("runpod", "cloud", "RunPod launches")
        creds = rp.get_credentials(os.environ.get("RUNPOD_PROFILE", "default"))
        return (creds or {}).get("api_key")

    def api(self):
        rp = require("runpod", "cloud", "RunPod launches")
        key = self.api_key()
        if not key:
            raise LaunchError(NO_KEY)
        rp.api_key = key
        return rp

    def check_credentials(self) -> None:
        if not self.api_key():
            raise LaunchError(NO_KEY)

    def _call(self, what: str, fn, *args, **kwargs):
        rp = require("runpod", "cloud", "RunPod launches")
        try:
            return fn(*args, **kwargs)
        except rp.error.AuthenticationError:
            raise LaunchError(
                f"RunPod rejected the API key while trying to {what}; check RUNPOD_API_KEY"
            ) from None
        except rp.error.QueryError as e:
            raise LaunchError(f"RunPod refused to {what}: {e}") from None

    def provision(self, spec: LaunchSpec, handle: dict) -> None:
        rp = self.api()
        hw = spec.hardware
        try:
            pod = self._call(
                "create a pod",
                rp.create_pod,
                name=f"{NAME_PREFIX}{spec.launch_id}",
                image_name=spec.image_ref,
                gpu_type_id=hw.instance_type,
                cloud_type=settings.provider("runpod").get("cloud_type", "SECURE"),
                gpu_count=max(1, hw.gpu_count),
                container_disk_in_gb=int(hw.disk_gb or 100),
                volume_in_gb=0,
                docker_args=agent_args(spec),
                env=pod_env(spec),
                start_ssh=False,
                support_public_ip=False,
            )
        except ValueError as e:  # the SDK checks the GPU type first
            raise LaunchError(
                f"RunPod has no GPU type '{hw.instance_type}' ({spec.hardware_name} in "
                f"manifests/hardware.yaml): {e}"
            ) from None
        if not pod or not pod.get("id"):
            raise LaunchError(
                f"RunPod did not create a pod for {spec.launch_id} (no capacity for {hw.instance_type}?)"
            )
        handle["instance_id"] = pod["id"]
        handle["pod_name"] = f"{NAME_PREFIX}{spec.launch_id}"
        self.log(
            f"{spec.launch_id}: created pod {pod['id']} ({hw.gpu_count}x {hw.instance_type}, image {spec.image_ref})"
        )

    def execute(self, spec: LaunchSpec, handle: dict) -> None:
        handle["started"] = True  # the pod's start command is the agent: it runs the rows on its own

    def _pod(self, rec: dict) -> dict | None:
        pid = rec.get("handle", {}).get("instance_id")
        if not pid:
            return None
        rp = self.api()
        return self._call("read the pod", rp.get_pod, pid)

    def poll(self, rec: dict) -> Status:
        sink = open_sink(rec["results"])
        st = read_status(sink) or {}
        reps = count_reps(sink.keys("runs"))
        pod = self._pod(rec)
        if st.get("state") == "finished":
            return Status(
                "finished", f"pack run exited with status {st.get('exit_code')}", reps, st.get("exit_code")
            )
        if st.get("state") == "expired":
            return Status("expired", "the pod restarted after its deadline and removed itself", reps)
        if pod is None:
            return Status(
                "gone", f"pod removed before the rows finished (last status: {st.get('state', 'none')})", reps
            )
        return Status("running", f"pod {pod.get('desiredStatus', '?')}, {st.get('state', 'starting')}", reps)

    def fetch(self, rec: dict, dest) -> int:
        return fetch_into(open_sink(rec["results"]), rec["launch_id"], dest)

    def teardown(self, rec: dict) -> str:
        pid = rec.get("handle", {}).get("instance_id")
        if not pid:
            return "no pod was created"
        if self._pod(rec) is None:
            return f"pod {pid} was already removed"
        rp = self.api()
        self._call("remove the pod", rp.terminate_pod, pid)
        return f"removed pod {pid}"

    def reap(self, now: float, dry_run: bool) -> list[dict]:
        rp = self.api()
        out = []
        for pod in self._call("list pods", rp.get_pods) or []:
            if not str(pod.get("name", "")).startswith(NAME_PREFIX):
                continue
            try:
                expires = float(env_of(pod).get("PACK_EXPIRES_AT", ""))
            except ValueError:
                continue
            if expires < now:
                if not dry_run:
                    self._call("remove an expired pod", rp.terminate_pod, pod["id"])
                out.append(
                    {
                        "provider": self.provider,
                        "id": pod["id"],
                        "name": pod.get("name"),
                        "expired_at": iso(expires),
                    }
                )
        return out

    def where(self, rec: dict) -> str:
        pid = rec.get("handle", {}).get("instance_id") or rec.get("instance_id")
        return f"RunPod pod {pid}" if pid else "RunPod"
