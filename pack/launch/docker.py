"""`pack launch ROW --hw local --image cu118`: run the rows inside a pack image on this machine.

The container CLI is docker or podman (`PACK_CONTAINER_CLI`, else whichever is on PATH, docker first;
images.container_cli). `PACK_CONTAINER_RUN_ARGS` adds `run` options a machine needs (on podman hosts
with hybrid cgroups: PACK_CONTAINER_CLI="podman --runtime runc" and ulimits). GPUs: `--gpus all` on
docker, the CDI device `nvidia.com/gpu=all` on podman.

    docker run -d --name pack-<id> --label pack.launch-id=<id> --label pack.expires-at=<epoch>
        [--gpus all] --user UID:GID -v <runs>:/runs -e PACK_HW=… -e PACK_DEADLINE_AT=… IMAGE
        pack run ROWS --scale S --out /runs --hw HW

The container is detached (`-d`), so Ctrl-C on the client leaves it running under its own
watchdog (the image's entrypoint stops the command at PACK_DEADLINE_AT); `pack launch down`
removes it and `pack launch reap` removes any whose pack.expires-at label has passed. Results land
directly in the bind-mounted runs folder, so there is nothing to fetch. This machine's Hugging Face
cache ($HF_HOME or ~/.cache/huggingface), when it exists, is mounted at /hf so weights download once.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from ..rundir import count_finished_reps
from . import shell
from .images import CLI_HINT as HINT
from .images import container_cli, container_run_args
from .ledger import Handle, LaunchRecord
from .lifecycle import Launcher, Status
from .spec import CONTAINER_RUNS, LaunchSpec


def _is_podman(cli: list[str]) -> bool:
    return Path(cli[0]).name == "podman"


def container_name(launch_id: str) -> str:
    return f"pack-{launch_id}"


def run_argv(spec: LaunchSpec, runs_host: str) -> list[str]:
    """The full `docker run` command line for a launch (no subprocess here: tests read it)."""
    cli = container_cli()
    argv = [
        *cli,
        "run",
        "-d",
        "--name",
        container_name(spec.launch_id),
        "--label",
        f"pack.launch-id={spec.launch_id}",
        "--label",
        f"pack.expires-at={int(spec.expires_at)}",
        "--label",
        f"pack.rows={','.join(spec.rows)}",
        "--stop-timeout",
        "30",
    ]
    if spec.hardware.gpu_count > 0:
        argv += ["--device", "nvidia.com/gpu=all"] if _is_podman(cli) else ["--gpus", "all"]
    if hasattr(os, "getuid"):  # files in the bind-mounted runs folder belong to the user, not the image's uid
        argv += ["--user", f"{os.getuid()}:{os.getgid()}"]
    argv += container_run_args()
    argv += ["-v", f"{runs_host}:{CONTAINER_RUNS}"]
    hf = Path(os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface")
    if hf.is_dir():  # reuse this machine's model cache: a full-scale row downloads its weights once
        argv += ["-v", f"{hf}:/hf", "-e", "HF_HOME=/hf"]
    for k, v in spec.container_env().items():
        argv += ["-e", f"{k}={v}"]
    argv.append(spec.image_ref)
    argv += spec.pack_run_argv()
    return argv


class DockerLauncher(Launcher):
    provider = "docker"

    def check_credentials(self) -> None:
        cli = container_cli()
        if not shell.which(cli[0]):
            from ..errors import LaunchError

            raise LaunchError(f"'{cli[0]}' is not on PATH; {HINT}")

    def provision(self, spec: LaunchSpec, handle: Handle) -> None:
        have = shell.run(
            [*container_cli(), "image", "inspect", "--format", "{{.Id}}", spec.image_ref],
            check=False,
            hint=HINT,
        )
        if have.returncode != 0:
            self.log(f"{spec.image_ref} is not here; pulling it (build it instead with `make images`)")
            shell.run([*container_cli(), "pull", spec.image_ref], capture=False, hint=HINT)

    def execute(self, spec: LaunchSpec, handle: Handle) -> None:
        self.runs_root.mkdir(parents=True, exist_ok=True)
        res = shell.run(run_argv(spec, str(self.runs_root)), hint=HINT)
        handle.container = container_name(spec.launch_id)
        handle.container_id = res.stdout.strip()[:64]
        handle.started = True

    def poll(self, rec: LaunchRecord) -> Status:
        name = rec.handle.container or container_name(rec.launch_id)
        res = shell.run(
            [*container_cli(), "inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", name],
            check=False,
            hint=HINT,
        )
        reps = count_finished_reps(self.runs_root, rec.rows)
        if res.returncode != 0:
            return Status("gone", f"container {name} no longer exists", reps)
        state, _, code = res.stdout.strip().partition(" ")
        if state in ("created", "running", "restarting"):
            return Status("running", f"container {name} {state}", reps)
        rc = int(code) if code.strip().lstrip("-").isdigit() else None
        return Status("finished", f"container {name} exited with status {rc}", reps, rc)

    def teardown(self, rec: LaunchRecord) -> str:
        name = rec.handle.container
        if not name:
            return "no container was started"
        res = shell.run([*container_cli(), "rm", "-f", name], check=False, hint=HINT)
        return f"removed container {name}" if res.returncode == 0 else f"container {name} was already gone"

    def reap(self, now: float, dry_run: bool) -> list[dict]:
        res = shell.run(
            [
                *container_cli(),
                "ps",
                "-a",
                "--filter",
                "label=pack.expires-at",
                "--format",
                '{{.Names}}\t{{.Label "pack.expires-at"}}',
            ],
            check=False,
            hint=HINT,
        )
        out = []
        for line in res.stdout.splitlines():
            name, _, exp = line.partition("\t")
            try:
                expires = float(exp)
            except ValueError:
                continue
            if expires < now:
                if not dry_run:
                    shell.run([*container_cli(), "rm", "-f", name], check=False)
                out.append(
                    {
                        "provider": self.provider,
                        "id": name,
                        "expired_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires)),
                    }
                )
        return out

    def where(self, rec: LaunchRecord) -> str:
        return f"container {rec.handle.container or container_name(rec.launch_id)}"
