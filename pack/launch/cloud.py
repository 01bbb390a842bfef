"""`pack launch ROW|PAPER --hw <aws or runpod class>`: each row on its own SkyPilot cluster.

One `sky.Task` per row: the row's pack image as `image_id: docker:<registry>/<image>`, the instance
type of its hardware class (manifests/hardware.yaml) and the accelerator the pack's catalog gives
it, `run: timeout <max_runtime_s> pack run ROW --scale S`, autodown after `idle_minutes` always on
(pack/launch/policy.py refuses a launch without it). The client waits for the job, fetches
`~/pack-runs` back over the SSH alias SkyPilot writes for the cluster, checks the run's checksums
and verdict, and runs `sky.down` in a `finally`: a failure during provisioning or setup does not tear
a SkyPilot cluster down by itself. `--parallel N` runs N clusters at once; the ledger records each.

Not exercised here (no cloud): the SSH steps (setup inside the container, the job, rsync, and the
autostop the node applies over SSH). tests/integration/test_sky_moto.py drives provisioning and
termination of the EC2 instance against moto; RunPod's pod calls are checked with the SDK patched.
"""

from __future__ import annotations

import math
import re
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from .. import catalog
from ..errors import LaunchError
from . import ledger, shell

EXTRA = "pip install 'pack-repro[cloud]' (`make setup` installs it)"
REMOTE_RUNS = "~/pack-runs"
CLOUD_OF = {"aws": "aws", "runpod": "runpod"}  # hardware.yaml provider -> SkyPilot infra


def require_sky():
    """The `sky` module, or one sentence naming the extra that brings it."""
    try:
        import sky
    except ImportError:
        raise LaunchError(f"cloud launches run through SkyPilot, which is not installed: {EXTRA}") from None
    return sky


@dataclass(frozen=True)
class RowLaunch:
    """One row on one cluster: everything the task, the ledger and the teardown need."""

    launch_id: str
    row: str  # paper:row
    scale: str
    hardware_name: str
    hardware: catalog.Hardware
    price: catalog.Price
    image_ref: str  # registry/name:tag[@digest]
    image_digest: str | None
    max_runtime_s: int  # the row's wall-clock cap inside the cluster
    overhead_s: int  # boot, image pull, fetch
    idle_minutes: int  # autodown after this much idleness

    @property
    def cluster(self) -> str:
        """SkyPilot cluster names are lower-case letters, digits and dashes."""
        return re.sub(r"[^a-z0-9-]", "-", self.launch_id.lower())

    @property
    def infra(self) -> str:
        region = self.hardware.region
        return CLOUD_OF[self.hardware.provider] + (f"/{region}" if region else "")

    @property
    def worst_case_s(self) -> int:
        return math.ceil(self.max_runtime_s + self.overhead_s + self.idle_minutes * 60)

    def run_command(self) -> str:
        """Capped by `timeout`: the image's entrypoint watchdog does not run under SkyPilot's docker mode."""
        argv = [
            "pack",
            "run",
            self.row,
            "--scale",
            self.scale,
            "--out",
            REMOTE_RUNS,
            "--hw",
            self.hardware_name,
        ]
        return f"mkdir -p {REMOTE_RUNS} && timeout -k 60 {self.max_runtime_s} {shell.quote(argv)}".replace(
            f"'{REMOTE_RUNS}'", REMOTE_RUNS
        )

    def envs(self) -> dict[str, str]:
        env = {"PACK_HW": self.hardware_name, "PACK_LAUNCH_ID": self.launch_id}
        if self.image_digest:
            env["PACK_IMAGE_DIGEST"] = self.image_digest
        return env


def resources_kwargs(spec: RowLaunch) -> dict:
    """The `sky.Resources` arguments of a row (plain data: `pack launch plan` sends them to the optimizer)."""
    kw = {
        "infra": spec.infra,
        "instance_type": spec.hardware.instance_type,
        "image_id": f"docker:{spec.image_ref}",
        "autostop": {"idle_minutes": spec.idle_minutes, "down": True},
    }
    if spec.price.accelerator:
        kw["accelerators"] = spec.price.accelerator
    if spec.hardware.disk_gb:
        kw["disk_size"] = spec.hardware.disk_gb
    return kw


def build_task(spec: RowLaunch):
    sky = require_sky()
    task = sky.Task(name=spec.cluster, run=spec.run_command(), envs=spec.envs())
    task.set_resources(sky.Resources(**resources_kwargs(spec)))
    return task


@dataclass
class Outcome:
    """What became of one row's cluster, for the summary line and the exit status."""

    spec: RowLaunch
    status: str = "provisioning"  # finished | failed | interrupted
    detail: str = ""
    verdicts: list[str] = field(default_factory=list)
    cost_usd: float | None = None


def launch(spec: RowLaunch, runs_root: Path, log, requests: dict | None = None, stopping=None) -> Outcome:
    """Provision, run, fetch, verify, and always `sky.down`; the ledger has every step.
    `requests` (cluster -> SkyPilot request id) lets a Ctrl-C in the caller cancel the launch; once
    `stopping` (a threading.Event) is set, the caller tears down and closes the record instead."""
    sky = require_sky()
    out = Outcome(spec)
    ledger.append_launch(
        ledger.LaunchRecord(
            launch_id=spec.launch_id,
            rows=[spec.row],
            scale=spec.scale,
            provider="sky",
            hardware=spec.hardware_name,
            image=spec.image_ref,
            start=ledger.now_iso(),
            deadline_s=spec.worst_case_s - spec.idle_minutes * 60,
            expires_s=spec.worst_case_s,
            price_usd_per_hour=spec.price.usd_per_hour,
            price_basis=f"{spec.price.source}, price of {spec.price.date} (manifests/sky-catalog)",
            region=spec.hardware.region,
            cluster=spec.cluster,
        ),
        runs_root,
    )
    try:
        request = sky.launch(
            build_task(spec), cluster_name=spec.cluster, down=True, idle_minutes_to_autostop=spec.idle_minutes
        )
        if requests is not None:
            requests[spec.cluster] = request
        job_id, _ = sky.stream_and_get(request)
        ledger.append_update(spec.launch_id, "running", runs_root)
        log(f"{spec.row}: running on {spec.cluster} ({spec.hardware_name}), job {job_id}")
        rc = sky.tail_logs(spec.cluster, job_id, follow=True)
        fetch(spec, runs_root)
        out.verdicts = verify(spec, runs_root)
        out.status = "finished" if rc == 0 else "failed"
        out.detail = f"job exited with status {rc}; verdicts: {', '.join(out.verdicts) or 'no run fetched'}"
    except Exception as e:  # noqa: BLE001  (SkyPilot raises many types; each ends in the ledger and down)
        out.status, out.detail = "failed", f"{type(e).__name__}: {e}".splitlines()[0]
    finally:
        if stopping is None or not stopping.is_set():  # else interrupt() downs it and closes the record
            out.detail = f"{out.detail}; {down(spec.cluster)}".strip("; ")
            rec = ledger.record_stop(ledger.get(spec.launch_id, runs_root), out.status, out.detail, runs_root)
            out.cost_usd = rec.cost_usd
    return out


def down(cluster: str) -> str:
    """`sky.down` that never raises: a failure says what may be left and how to remove it."""
    sky = require_sky()
    try:
        sky.get(sky.down(cluster))
        return f"cluster {cluster} torn down"
    except Exception as e:  # noqa: BLE001
        if type(e).__name__ == "ClusterDoesNotExist":
            return f"cluster {cluster} was already gone"
        return (
            f"sky down {cluster} failed ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
            f"it autodowns after its idle limit, or run `sky down {cluster}`"
        )


def fetch(spec: RowLaunch, runs_root: Path) -> None:
    """rsync the cluster's runs into runs_root over the SSH alias SkyPilot wrote (~/.sky/generated/ssh)."""
    runs_root.mkdir(parents=True, exist_ok=True)
    shell.run(["rsync", "-a", f"{spec.cluster}:{REMOTE_RUNS}/", f"{runs_root}/"], hint="install rsync")


def verify(spec: RowLaunch, runs_root: Path) -> list[str]:
    """Checksums and the tolerance verdict of every fetched run of the row."""
    from .. import fsio
    from ..rundir import runs_of
    from ..verify import verify_run

    paper, _, row = spec.row.partition(":")
    out = []
    for rd in runs_of(runs_root / paper / row):
        damaged = fsio.check_sums(rd.path)
        out.append(f"{rd.path.name}: damaged ({damaged[0]})" if damaged else verify_run(rd.path).verdict)
    return out


def launch_all(specs: list[RowLaunch], runs_root: Path, log, parallel: int = 1) -> list[Outcome]:
    """Every row on its own cluster, `parallel` at a time, each fetched and verified as it finishes."""
    require_sky()
    from .policy import with_policy

    outcomes: list[Outcome] = []
    requests: dict[str, str] = {}
    stopping = threading.Event()
    pool = ThreadPoolExecutor(max_workers=max(1, parallel))
    try:
        # The policy is registered once for all threads: SkyPilot's config is process-wide.
        with with_policy():
            futures = {pool.submit(launch, s, runs_root, log, requests, stopping): s for s in specs}
            for f in as_completed(futures):
                o = f.result()
                log(f"{o.spec.row}: {o.status}, {o.cost_usd} USD ({o.detail})")
                outcomes.append(o)
    except KeyboardInterrupt:
        stopping.set()
        pool.shutdown(wait=False, cancel_futures=True)
        raise LaunchInterrupted(interrupt(specs, requests, runs_root, log)) from None
    pool.shutdown()
    return outcomes


class LaunchInterrupted(LaunchError):
    exit_code = 130


def interrupt(specs: list[RowLaunch], requests: dict, runs_root: Path, log) -> str:
    """Ctrl-C: cancel the launch requests (a cluster being provisioned holds its lock), `sky.down` every
    cluster that was started, close each in the ledger; returns what was done."""
    sky = require_sky()
    started = [s for s in specs if s.cluster in requests]
    log(f"interrupted: cancelling {len(started)} launch(es) and tearing their clusters down")
    try:
        sky.get(sky.api_cancel(list(requests.values()), silent=True))
    except Exception as e:  # noqa: BLE001  (down below still runs)
        log(f"could not cancel the launch requests ({type(e).__name__}: {e})")
    details = []
    for s in started:
        detail = down(s.cluster)
        ledger.record_stop(ledger.get(s.launch_id, runs_root), "interrupted", f"Ctrl-C; {detail}", runs_root)
        details.append(detail)
    return "interrupted; " + ("; ".join(details) or "no cluster had been started")


# ------------------------------------------------------------------ status and reap: ask SkyPilot
def clusters(log) -> tuple[list[dict], list[str]]:
    """(pack clusters SkyPilot knows, with status refreshed from the cloud; clouds it could not check).

    A cloud without credentials cannot be asked, so its clusters are unknown, never "none"."""
    sky = require_sky()
    from sky.client import sdk
    from sky.utils import common

    unchecked = []
    try:
        enabled = {str(c).lower() for c in sky.get(sdk.enabled_clouds())}
    except Exception as e:  # noqa: BLE001
        return [], [f"any cloud (SkyPilot could not say which it can reach: {type(e).__name__}: {e})"]
    for cloud in CLOUD_OF.values():
        if cloud not in enabled:
            unchecked.append(f"{cloud} (no credentials SkyPilot can use; `sky check {cloud}` says why)")
    records = sky.get(sky.status(refresh=common.StatusRefreshMode.AUTO))
    mine = []
    for r in records:
        r = r if isinstance(r, dict) else r.model_dump()
        if str(r.get("name", "")).startswith("pk-"):
            mine.append(r)
    return mine, unchecked
