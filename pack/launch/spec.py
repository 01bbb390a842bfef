"""What one local launch is: its rows, scale, hardware, image, deadline, and the exact command it runs.

Every launcher runs the same command inside the image (`pack run ROWS --scale S --out /runs`),
so what a reviewer runs by hand with `docker run IMAGE pack run …` is what a cluster runs
(cloud.RowLaunch, one row each).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

from .. import catalog

CONTAINER_RUNS = "/runs"


def pack_run_argv(rows, scale: str, out: str, hw: str) -> list[str]:
    """`pack run ROWS --scale S --out OUT --hw HW`: the one command every launcher runs for a launch."""
    return ["pack", "run", *rows, "--scale", scale, "--out", out, "--hw", hw]


def new_launch_id() -> str:
    return f"pk-{datetime.now(timezone.utc).strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


@dataclass(frozen=True)
class LaunchSpec:
    launch_id: str
    refs: tuple[str, ...]  # what was asked for: row ids and/or paper names
    rows: tuple[str, ...]  # paper:row of every row that fits, in order
    scale: str
    hardware_name: str
    hardware: catalog.Hardware
    image_variant: str | None  # None: no container (local process)
    image_ref: str | None  # name[:tag][@digest] the machine pulls / runs
    image_digest: str | None
    deadline_s: int  # rows' max runtimes + provider overhead
    grace_s: int
    created_at: float = field(default_factory=time.time)

    @property
    def deadline_at(self) -> float:
        """Epoch seconds by which the rows must be done (the in-container watchdog's limit)."""
        return self.created_at + self.deadline_s

    @property
    def expires_at(self) -> float:
        """Epoch seconds after which anything left is the reaper's (tag / label / env on every resource)."""
        return self.deadline_at + self.grace_s

    def pack_run_argv(self, out: str = CONTAINER_RUNS) -> list[str]:
        """The command the container (or this machine) runs: exactly what `docker run IMAGE …` takes."""
        return pack_run_argv(self.rows, self.scale, out, self.hardware_name)

    def container_env(self) -> dict[str, str]:
        """Environment for the container: provenance (hardware name, digest) and the watchdog's deadline."""
        env = {
            "PACK_HW": self.hardware_name,
            "PACK_DEADLINE_AT": str(int(self.deadline_at)),
            "PACK_LAUNCH_ID": self.launch_id,
        }
        if self.image_digest:
            env["PACK_IMAGE_DIGEST"] = self.image_digest
        return env
