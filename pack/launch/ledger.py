"""runs/ledger.jsonl: every launch (one per local run or container, one per SkyPilot cluster), what it
ran, where, from when to when, at what price.

Append-only JSON lines, one event each, folded into one `LaunchRecord` per launch:

    {"event": "launch", <every LaunchRecord field>}              before anything is created
    {"event": "update", "launch_id", "status", "handle": {...}}  as resources appear
    {"event": "stop", "launch_id", "stop", "cost_usd", "status", "detail"}   once it is torn down

The launch event is written before provisioning starts, so even a launch that fails halfway or is
interrupted is in the ledger. Times are UTC ISO-8601; cost is the pack catalog's hourly price ×
wall hours from start to stop (an estimate: providers bill by the second or minute, plus disks).
Each event is one write() on a file opened with O_APPEND, so parallel launches can share a ledger.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timedelta, timezone
from pathlib import Path

from .. import paths

NAME = "ledger.jsonl"


@dataclass
class Handle:
    """What a local launch created, filled in as it appears (a SkyPilot cluster is named by `cluster`)."""

    host: str | None = None
    pid: int | None = None
    exit_code: int | None = None
    command: str | None = None
    container: str | None = None
    container_id: str | None = None
    started: bool = False


@dataclass
class LaunchRecord:
    launch_id: str
    rows: list[str]
    provider: str  # local | docker | sky
    hardware: str
    start: str
    price_usd_per_hour: float
    deadline_s: int  # the rows must be done this long after start
    expires_s: int  # nothing of the launch is left this long after start (autodown, reaper)
    scale: str = "full"
    refs: list[str] = field(default_factory=list)
    image: str | None = None
    price_basis: str = ""  # the catalog's source and date
    region: str | None = None
    cluster: str | None = None  # the SkyPilot cluster name
    handle: Handle = field(default_factory=Handle)
    status: str = "provisioning"
    stop: str | None = None
    cost_usd: float | None = None
    detail: str = ""

    @property
    def deadline_at(self) -> str:
        return _plus(self.start, self.deadline_s)

    @property
    def expires_at(self) -> str:
        return _plus(self.start, self.expires_s)

    def cost_so_far(self) -> float:
        return (
            self.cost_usd
            if self.cost_usd is not None
            else cost(self.price_usd_per_hour, self.start, now_iso())
        )


_FIELDS = {f.name for f in fields(LaunchRecord)}
_HANDLE = {f.name for f in fields(Handle)}


def _plus(start: str, seconds: int) -> str:
    return (parse_time(start) + timedelta(seconds=seconds)).isoformat(timespec="seconds")


def ledger_path(runs_root: Path | None = None) -> Path:
    return (runs_root or paths.runs_dir()) / NAME


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def parse_time(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def append(event: dict, runs_root: Path | None = None) -> None:
    path = ledger_path(runs_root)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(event, sort_keys=True, default=str) + "\n").encode()
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":  # a torn last line (crash mid-write): start afresh
            line = b"\n" + line
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def append_launch(rec: LaunchRecord, runs_root: Path | None = None) -> None:
    append({"event": "launch", **asdict(rec)}, runs_root)


def append_update(
    launch_id: str, status: str, runs_root: Path | None = None, handle: Handle | None = None
) -> None:
    ev = {"event": "update", "launch_id": launch_id, "status": status}
    if handle is not None:
        ev["handle"] = asdict(handle)
    append(ev, runs_root)


def events(runs_root: Path | None = None) -> list[dict]:
    path = ledger_path(runs_root)
    if not path.is_file():
        return []
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except ValueError:  # a torn last line from a crash must not hide every other launch
            out.append({"event": "corrupt", "line": n})
    return out


def _record(body: dict) -> LaunchRecord | None:
    """A launch event as a record; None for one written by an older pack (other fields)."""
    handle = Handle(**{k: v for k, v in (body.get("handle") or {}).items() if k in _HANDLE})
    try:
        return LaunchRecord(
            **{k: v for k, v in body.items() if k in _FIELDS and k != "handle"}, handle=handle
        )
    except TypeError:
        return None


def records(runs_root: Path | None = None) -> dict[str, LaunchRecord]:
    """launch_id -> the folded record, in launch order."""
    recs: dict[str, LaunchRecord] = {}
    for e in events(runs_root):
        lid, kind = e.get("launch_id"), e.get("event")
        if kind == "launch":
            rec = _record(e)
            if rec:
                recs[lid] = rec
        elif lid in recs:
            rec = recs[lid]
            for k, v in (e.get("handle") or {}).items():
                if k in _HANDLE:
                    setattr(rec.handle, k, v)
            for k in ("status", "stop", "cost_usd", "detail"):
                if k in e:
                    setattr(rec, k, e[k])
    return recs


def get(launch_id: str, runs_root: Path | None = None) -> LaunchRecord:
    from ..errors import PackError

    recs = records(runs_root)
    if launch_id == "last" and recs:
        return list(recs.values())[-1]
    if launch_id not in recs:
        from ..strict import did_you_mean

        hint = did_you_mean(launch_id, recs, listing=False) or "run 'pack launch ledger' to list launches"
        raise PackError(f"no launch '{launch_id}' in {ledger_path(runs_root)}; {hint}")
    return recs[launch_id]


def cost(price_usd_per_hour: float, start: str, stop: str) -> float:
    hours = max(0.0, (parse_time(stop) - parse_time(start)).total_seconds() / 3600)
    return round(hours * price_usd_per_hour, 4)


def record_stop(
    rec: LaunchRecord, status: str, detail: str = "", runs_root: Path | None = None, stop: str | None = None
) -> LaunchRecord:
    """Append the stop event (idempotent: a launch already stopped keeps its first stop)."""
    if rec.stop:
        return rec
    rec.stop = stop or now_iso()
    rec.cost_usd = cost(rec.price_usd_per_hour, rec.start, rec.stop)
    rec.status, rec.detail = status, detail
    append(
        {
            "event": "stop",
            "launch_id": rec.launch_id,
            "stop": rec.stop,
            "cost_usd": rec.cost_usd,
            "status": status,
            "detail": detail,
        },
        runs_root,
    )
    return rec


def render(recs: dict[str, LaunchRecord]) -> str:
    lines = [
        f"{'LAUNCH':<26} {'PROVIDER':<8} {'HARDWARE':<22} {'START':<20} {'STOP':<20} {'USD/H':>7} "
        f"{'COST':>8}  STATUS  ROWS"
    ]
    total = 0.0
    for r in recs.values():
        c = r.cost_so_far()
        total += c
        lines.append(
            f"{r.launch_id:<26} {r.provider:<8} {r.hardware:<22} {r.start[:19]:<20} "
            f"{(r.stop or '-')[:19]:<20} "
            f"{r.price_usd_per_hour:>7.3f} {c:>8.4f}  {r.status}  {','.join(r.rows)}"
        )
    basis = {r.price_basis for r in recs.values() if r.price_basis}
    lines.append(
        f"total: {len(recs)} launch(es), {total:.4f} USD at list prices"
        + (f" ({'; '.join(sorted(basis))})" if basis else "")
    )
    return "\n".join(lines)
