"""`pack status [PAPER]`: per row and scale, the last finished run, its verdict and basis, and whether it
is stale.

A run is stale when what it would run with today differs from what it ran with: the row's params at
that scale (their hash), the pack version, the image variant, or the expectation file (its sha256
when the run recorded one, else its modification time against the run's end, said as such). A row
and scale with no finished run is missing. Verdicts are recomputed now, as `pack verify` would, of
the run `pack verify` would pick (pack/selection.py: a run still running, killed before its seal,
interrupted, errored or damaged is not finished).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from . import __version__, fsio, paths
from .run_record import RunRecord

SCALES = ("smoke", "full")


@dataclass
class RowStatus:
    paper: str
    row: str
    scale: str
    run_id: str | None
    run_dir: str | None
    finished_at: str | None
    verdict: str | None  # the row verdict now; None when no finished run exists (state "missing")
    why: str
    basis: str = ""  # what the verdict compared against: paper / reference / harness (verify's row basis)
    stale: list[str] = field(default_factory=list)  # what changed since the run (empty: up to date)


def _read(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _when(stamp: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(stamp) if stamp else None
    except ValueError:
        return None


def staleness(rec: RunRecord, env: dict, rrow, expected_path: Path | None) -> list[str]:
    """What changed since the run (empty: up to date); expected_path=None leaves the expectation out."""
    out = []
    if rec.params_hash != rrow.params_hash():
        out.append(f"params changed (run {rec.params_hash[:8]}, manifest now {rrow.params_hash()[:8]})")
    ran_with = (env.get("pack") or {}).get("version")
    if ran_with and ran_with != __version__:
        out.append(f"pack version changed ({ran_with} -> {__version__})")
    image_now = rrow.target.image
    if image_now and rec.image and rec.image != image_now:
        out.append(f"image changed ({rec.image} -> {image_now})")
    if expected_path is not None and expected_path.is_file():
        if rec.expected_sha256:
            if rec.expected_sha256 != fsio.sha256_file(expected_path):
                out.append(f"expectation file changed since the run ({expected_path.name}, sha256 differs)")
        else:
            finished = _when(rec.finished_at)
            mtime = datetime.fromtimestamp(expected_path.stat().st_mtime, tz=timezone.utc)
            if finished and mtime > finished:
                out.append(f"expectation file modified after the run ({expected_path.name}, by file time)")
    return out


def up_to_date(row_dir: Path, rrow, seed: int) -> Path | None:
    """For `pack run --resume`: the newest run with these params, if it is complete, intact, has the
    repetitions and seed asked for, and ran with this pack and image; None when there is work to do.
    (An expectation changed since does not call for a rerun: verify judges the run against today's.)"""
    from .errors import IntegrityError
    from .rundir import RunStatus, runs_of

    for rd in runs_of(row_dir):
        try:
            rec = rd.record
        except IntegrityError:
            continue
        if rec.params_hash != rrow.params_hash():
            continue
        if rec.status != RunStatus.complete or rec.reps_planned != rrow.reps or rec.seed != seed:
            return None
        if rd.integrity() or staleness(rec, _read(rd.env_json), rrow, None):
            return None
        return rd.path
    return None


def row_status(paper: str, row, scale: str, runs_root: Path) -> RowStatus:
    """One row at one scale: its newest finished run (selection.latest_finished, as verify picks it)
    judged now, and what changed since; missing when no run of that row and scale finished."""
    from . import expected
    from .selection import latest_finished
    from .verify import verify_run

    row_dir = runs_root / paper / row.id
    rd = latest_finished(row_dir, scale)
    if rd is None:
        return RowStatus(paper, row.id, scale, None, None, None, None, _missing_why(row_dir, scale))
    rec = rd.record
    verdict = verify_run(rd.path)
    stale = staleness(rec, _read(rd.env_json), row.at(scale), expected.path_for(paper, row.id))
    return RowStatus(
        paper,
        row.id,
        scale,
        rec.run_id,
        str(rd.path),
        rec.finished_at,
        verdict.verdict,
        verdict.why,
        verdict.basis,
        stale,
    )


def _missing_why(row_dir: Path, scale: str) -> str:
    """'no finished run', naming the newest run of that scale that is not finished and why."""
    from .rundir import runs_of
    from .selection import scale_of, state_of

    why = f"no finished {scale} run under {row_dir}"
    newest = next((rd for rd in runs_of(row_dir) if scale_of(rd) == scale), None)
    return f"{why} (newest, {newest.name}: {state_of(newest)})" if newest else why


def status(paper: str | None = None, runs_root: Path | None = None) -> list[RowStatus]:
    from .manifest import all_manifests, get_manifest

    runs_root = runs_root or paths.runs_dir()
    only = None
    if paper and ":" in paper:  # paper:row
        from .manifest import find_row

        m, only = find_row(paper)
        paper = m.paper
    manifests = [get_manifest(paper)] if paper else list(all_manifests())
    return [
        row_status(m.paper, row, scale, runs_root)
        for m in manifests
        for row in m.rows
        if only is None or row.id == only.id
        for scale in SCALES
    ]


def to_json(rows: list[RowStatus]) -> str:
    return fsio.json_text({"schema": "pack.status/1", "rows": [asdict(r) for r in rows]})


def render(rows: list[RowStatus]) -> str:
    from .console import table

    cells = []
    for r in rows:
        state = (
            "missing" if r.run_id is None else ("stale: " + "; ".join(r.stale) if r.stale else "up to date")
        )
        cells.append([f"{r.paper}:{r.row}", r.scale, r.verdict, r.basis or None, r.run_id, state])
    lines = [table(["ROW", "SCALE", "VERDICT", "BASIS", "LAST FINISHED RUN", "STATE"], cells)]
    n_missing = sum(r.run_id is None for r in rows)
    n_stale = sum(bool(r.stale) for r in rows)
    lines += [
        "",
        f"{len(rows)} row-scale(s): {len(rows) - n_missing - n_stale} up to date, {n_stale} stale, "
        f"{n_missing} missing",
    ]
    return "\n".join(lines)
