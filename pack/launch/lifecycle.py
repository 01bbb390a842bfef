"""The lifecycle of a launch on this machine: provision → execute → (wait) → fetch → teardown.

A local launcher (local.py, docker.py) implements the steps; this module drives them, writes the
ledger, and keeps the teardown rules:

- provisioning that fails or is interrupted halfway tears down what it had created, and says so;
- once the rows run in a container, the client may disconnect (Ctrl-C): the container carries its
  own deadline (the entrypoint's watchdog, an expiry label for the reaper), and the message says
  how to reattach (`status`, `fetch`) or stop it now (`down`).

Cloud rows do not come here: SkyPilot provisions and tears them down (cloud.py).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .. import fsio
from ..errors import LaunchError, PackError
from . import ledger
from .ledger import Handle, LaunchRecord
from .spec import LaunchSpec

FINAL_STATES = ("finished", "failed", "gone", "expired")


class LaunchInterrupted(PackError):
    """Ctrl-C during a launch; the message says what is still running and how to reach it."""

    exit_code = 130


@dataclass
class Status:
    state: str  # provisioning | booting | running | finished | failed | gone | expired
    detail: str = ""
    reps_done: int = 0
    exit_code: int | None = None


class Launcher:
    """Base class: the steps a launcher implements. `handle` is filled as resources appear (pid,
    container name); it is saved in the ledger so any later `pack launch status|fetch|down` can
    reach the launch from the ledger alone."""

    provider = "?"
    detached = True  # False: execute() runs the rows in the foreground and returns when they are done

    def __init__(self, runs_root: Path, log=None):
        self.runs_root = runs_root
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))

    def check_credentials(self) -> None:
        """Raise LaunchError naming what to install; called before anything is created."""

    def provision(self, spec: LaunchSpec, handle: Handle) -> None:
        raise NotImplementedError

    def execute(self, spec: LaunchSpec, handle: Handle) -> None:
        raise NotImplementedError

    def poll(self, rec: LaunchRecord) -> Status:
        raise NotImplementedError

    def teardown(self, rec: LaunchRecord) -> str:
        """Remove what the launch created (idempotent); return one line saying what was removed."""
        return "nothing to remove"

    def reap(self, now: float, dry_run: bool) -> list[dict]:
        """Remove what this launcher holds past its expiry; return what was (or would be) reaped."""
        return []

    def where(self, rec: LaunchRecord) -> str:
        """Human name of the running resource, for messages."""
        return rec.launch_id


def _base_record(spec: LaunchSpec, launcher: Launcher) -> LaunchRecord:
    return LaunchRecord(
        launch_id=spec.launch_id,
        refs=list(spec.refs),
        rows=list(spec.rows),
        scale=spec.scale,
        provider=launcher.provider,
        hardware=spec.hardware_name,
        image=spec.image_ref,
        start=ledger.now_iso(),
        deadline_s=spec.deadline_s,
        expires_s=spec.deadline_s + spec.grace_s,
        price_usd_per_hour=0.0,  # this machine
        region=spec.hardware.region,
    )


def reattach_message(rec: LaunchRecord, launcher: Launcher) -> str:
    lid = rec.launch_id
    return (
        f"launch {lid} keeps running on {launcher.where(rec)} ({rec.hardware}) and ends by itself by "
        f"{rec.deadline_at} (at the latest {rec.expires_at}, when `pack launch reap` may remove it).\n"
        f"  reattach:  pack launch status {lid}\n"
        f"  stop now:  pack launch down {lid}"
    )


def start(
    spec: LaunchSpec,
    launcher: Launcher,
    *,
    wait: bool = True,
    poll_s: float = 30.0,
    sleep=time.sleep,
    runs_root: Path | None = None,
) -> LaunchRecord:
    """Run the whole lifecycle; return the final ledger record. Raises LaunchError / LaunchInterrupted."""
    runs_root = runs_root or launcher.runs_root
    launcher.check_credentials()
    rec = _base_record(spec, launcher)
    ledger.append_launch(rec, runs_root)
    handle = rec.handle
    phase = "provision"
    try:
        launcher.provision(spec, handle)
        _update(rec, handle, "provisioned", runs_root)
        launcher.log(
            f"launch {spec.launch_id}: {len(spec.rows)} row(s) on {launcher.where(rec)}, "
            f"deadline {rec.deadline_at}"
        )
        phase = "execute"
        if not launcher.detached:  # the rows run in the foreground; teardown is ours
            _update(rec, handle, "running", runs_root)
        launcher.execute(spec, handle)
        _update(rec, handle, "running", runs_root)
    except KeyboardInterrupt:
        if launcher.detached and phase == "execute" and handle.started:
            raise LaunchInterrupted("interrupted; " + reattach_message(rec, launcher)) from None
        _update(rec, handle, "tearing down", runs_root)  # the ledger keeps the ids of what was created
        detail = safe_teardown(launcher, rec)
        ledger.record_stop(rec, "interrupted", f"during {phase}; {detail}", runs_root)
        left = (
            ""
            if detail.startswith("teardown failed")
            else f"; nothing of launch {spec.launch_id} is left running"
        )
        raise LaunchInterrupted(f"interrupted during {phase}; {detail}{left}") from None
    except BaseException as e:
        _update(rec, handle, "tearing down", runs_root)
        detail = safe_teardown(launcher, rec)
        msg = str(e) if isinstance(e, PackError) else f"{type(e).__name__}: {e}"
        ledger.record_stop(rec, "failed", f"{phase}: {msg}; {detail}", runs_root)
        if isinstance(e, PackError):
            raise LaunchError(f"launch {spec.launch_id} failed during {phase}: {msg} ({detail})") from None
        raise
    if not wait:
        launcher.log(reattach_message(rec, launcher))
        return rec
    try:
        st = wait_for(rec, launcher, poll_s=poll_s, sleep=sleep)
    except KeyboardInterrupt:
        raise LaunchInterrupted("interrupted; " + reattach_message(rec, launcher)) from None
    return finish(rec, launcher, st, runs_root)


def safe_teardown(launcher: Launcher, rec: LaunchRecord) -> str:
    """Teardown that never raises: a failure is reported with what is left and how to remove it."""
    try:
        return launcher.teardown(rec)
    except BaseException as e:  # includes a second Ctrl-C: say what may be left, do not hide the first error
        return (
            f"teardown failed ({type(e).__name__}: {e}); {launcher.where(rec)} may be left: "
            "it ends by itself "
            f"by {rec.expires_at}, or run `pack launch down {rec.launch_id}`"
        )


def _update(rec: LaunchRecord, handle: Handle, status: str, runs_root: Path) -> None:
    rec.status = status
    ledger.append_update(rec.launch_id, status, runs_root, handle)


def wait_for(rec: LaunchRecord, launcher: Launcher, *, poll_s: float, sleep=time.sleep) -> Status:
    """Poll until the launch reaches a final state, printing a progress line whenever it changes."""
    t0 = time.monotonic()
    last = None
    expires = ledger.parse_time(rec.expires_at).timestamp()
    while True:
        st = launcher.poll(rec)
        line = (
            f"{st.state}" + (f": {st.detail}" if st.detail else "") + f", {st.reps_done} repetition(s) done"
        )
        if line != last:
            launcher.log(f"[{int(time.monotonic() - t0):>5}s] {rec.launch_id} {line}")
            last = line
        if st.state in FINAL_STATES:
            return st
        if time.time() > expires + 60:
            return Status("expired", "past its expiry without finishing", st.reps_done)
        sleep(poll_s)


def finish(rec: LaunchRecord, launcher: Launcher, st: Status, runs_root: Path) -> LaunchRecord:
    """Check the runs, tear down, and write the stop event."""
    fetch_into(rec, launcher, runs_root)
    detail = launcher.teardown(rec)
    status = (
        "finished"
        if st.state == "finished" and not st.exit_code
        else (st.state if st.state != "finished" else "failed")
    )
    return ledger.record_stop(rec, status, f"{st.detail}; {detail}".strip("; "), runs_root)


def fetch_into(rec: LaunchRecord, launcher: Launcher, runs_root: Path) -> list[Path]:
    """Check the checksums of every run of the launch's rows (a local launch writes into runs_root)."""
    from ..rundir import runs_of

    run_dirs = []
    for paper_row in rec.rows:
        paper, _, row = paper_row.partition(":")
        run_dirs += [rd.path for rd in runs_of(runs_root / paper / row)]
    damaged = [(d, p) for d in run_dirs for p in fsio.check_sums(d)[:1]]
    for d, p in damaged:
        launcher.log(f"warning: {d}: {p}")
    launcher.log(
        f"{len(run_dirs)} run(s) of launch {rec.launch_id} under {runs_root}"
        + (f", {len(damaged)} damaged" if damaged else "")
    )
    return run_dirs


def down(rec: LaunchRecord, launcher: Launcher, runs_root: Path) -> LaunchRecord:
    detail = launcher.teardown(rec)
    launcher.log(f"{rec.launch_id}: {detail}")
    return ledger.record_stop(rec, "down", detail, runs_root)
