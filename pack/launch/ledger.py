"""runs/ledger.jsonl: every launch, what it ran, where, from when to when, at what price.

Append-only JSON lines, one event each, folded into one record per launch:

    {"event": "launch", "launch_id", "rows", "provider", "hardware", "image", "start", "expires_at",
     "price_usd_per_hour", "results", "deadline_s", ...}                      before anything is created
    {"event": "update", "launch_id", "instance_id", "handle": {...}, "status"} as resources appear
    {"event": "stop", "launch_id", "stop", "cost_usd", "status", "detail"}   once it is torn down

The launch event is written before provisioning starts, so even a launch that fails halfway or is
interrupted is in the ledger, with whatever ids it got. Times are UTC ISO-8601; cost is list price ×
wall hours from start to stop (an estimate: providers bill by the second or minute, plus disks).
Each event is one write() on a file opened with O_APPEND, so two launches can share a ledger.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

from .. import paths

NAME = "ledger.jsonl"


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
        if (
            size and os.pread(fd, 1, size - 1) != b"\n"
        ):  # a torn last line (crash mid-write): start a fresh one
            line = b"\n" + line
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


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


def records(runs_root: Path | None = None) -> dict[str, dict]:
    """launch_id -> the folded record, in launch order."""
    recs: dict[str, dict] = {}
    for e in events(runs_root):
        lid = e.get("launch_id")
        if not lid:
            continue
        kind = e.get("event")
        body = {k: v for k, v in e.items() if k != "event"}
        if kind == "launch":
            recs[lid] = {"status": "provisioning", "handle": {}, "stop": None, "cost_usd": None} | body
        elif lid in recs:
            if "handle" in body:
                recs[lid]["handle"] = recs[lid]["handle"] | body.pop("handle")
            recs[lid].update(body)
    return recs


def get(launch_id: str, runs_root: Path | None = None) -> dict:
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
    rec: dict, status: str, detail: str = "", runs_root: Path | None = None, stop: str | None = None
) -> dict:
    """Append the stop event (idempotent: a launch already stopped keeps its first stop)."""
    if rec.get("stop"):
        return rec
    stop = stop or now_iso()
    c = cost(rec.get("price_usd_per_hour") or 0.0, rec["start"], stop)
    ev = {
        "event": "stop",
        "launch_id": rec["launch_id"],
        "stop": stop,
        "cost_usd": c,
        "status": status,
        "detail": detail,
    }
    append(ev, runs_root)
    return rec | {k: v for k, v in ev.items() if k != "event"}


def render(recs: dict[str, dict]) -> str:
    head = f"{'LAUNCH':<26} {'PROVIDER':<8} {'HARDWARE':<22} {'INSTANCE':<20} {'START':<20} {'STOP':<20} {'USD/H':>7} {'COST':>8}  STATUS  ROWS"
    lines = [head]
    total = 0.0
    for r in recs.values():
        c = r.get("cost_usd")
        if c is None and r.get("start"):  # still running: cost so far
            c = cost(r.get("price_usd_per_hour") or 0.0, r["start"], now_iso())
        total += c or 0.0
        rows = ",".join(r.get("rows", []))
        lines.append(
            f"{r['launch_id']:<26} {r.get('provider', '?'):<8} {r.get('hardware', '?'):<22} "
            f"{(r.get('instance_id') or '-'):<20} {r.get('start', '')[:19]:<20} {(r.get('stop') or '-')[:19]:<20} "
            f"{(r.get('price_usd_per_hour') or 0):>7.3f} {(c or 0):>8.4f}  {r.get('status', '?')}  {rows}"
        )
    lines.append(f"total: {len(recs)} launch(es), {total:.4f} USD at list prices")
    return "\n".join(lines)
