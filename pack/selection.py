"""Which runs `pack verify`, `report`, `bundle` and `status` judge: one selection for all four.

Targets are run folders, runs trees, paper names, `paper:row` or row ids (a bundle is judged whole:
its runs were selected when it was made). Per row AND scale
the newest finished, complete run is judged; when none of that row and scale completed, the newest
one is (so its ERROR shows). A newer run passed over — unfinished, errored or damaged — is named on
stderr, never hidden; `--run-id` judges exactly that run, `--scale` only that scale.
`state_of` is the one definition of "finished" and `newest_finished` the one choice of "the newest
finished run": a run still running, killed before its seal, interrupted, errored or damaged is not one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import PackError
from .run_record import RunRecordError, RunStatus
from .rundir import RunDir, all_runs, runs_of


def scale_of(rd: RunDir) -> str:
    """The run's scale: from its record, or from its id (<stamp>-<scale>-<hash>) if the record is damaged."""
    try:
        return rd.record.scale
    except RunRecordError:
        parts = rd.name.split("-")
        return parts[1] if len(parts) >= 3 else "?"


def state_of(rd: RunDir) -> str | None:
    """None for a finished, complete run; else one sentence saying why it is not that."""
    try:
        rec = rd.record
    except RunRecordError as e:
        return str(e)
    unfinished = rd.unfinished()
    if unfinished:
        return unfinished
    if rec.status != RunStatus.complete:
        return "errored: " + (rec.errors.get("__run__") or f"status '{rec.status.value}'")
    return None


def newest_finished(runs: list[RunDir]) -> RunDir | None:
    """The newest (by run id) finished, complete run among `runs`, or None."""
    return next(
        (rd for rd in sorted(runs, key=lambda rd: rd.name, reverse=True) if state_of(rd) is None), None
    )


def latest_finished(row_dir: Path, scale: str) -> RunDir | None:
    """The newest finished, complete run of one row folder at one scale (`pack status`), or None."""
    return newest_finished([rd for rd in runs_of(row_dir) if scale_of(rd) == scale])


@dataclass(frozen=True)
class Selection:
    """The runs a command judges, and what it must say about the runs it passed over."""

    runs: list[RunDir]
    notes: list[str]


def select(root: Path, *, scale: str | None = None, run_id: str | None = None) -> Selection:
    """Which runs under root are judged: per row AND scale, the newest finished complete run (or, when
    no run of that row and scale completed, the newest one, so its ERROR shows); `run_id` picks exactly
    that run. A newer run passed over (unfinished, errored, damaged) is named in `notes`, never hidden."""
    runs = all_runs(root)
    if run_id is not None:
        chosen = [rd for rd in runs if rd.name == run_id and (scale is None or scale_of(rd) == scale)]
        return Selection(chosen, [])
    groups: dict[tuple[Path, str], list[RunDir]] = {}
    for rd in runs:
        sc = scale_of(rd)
        if scale is None or sc == scale:
            groups.setdefault((rd.path.parent, sc), []).append(rd)
    chosen, notes = [], []
    for (row_dir, sc), group in sorted(groups.items(), key=lambda kv: (str(kv[0][0]), kv[0][1])):
        group.sort(key=lambda rd: rd.name, reverse=True)
        pick = newest_finished(group) or group[0]
        chosen.append(pick)
        ref = f"{row_dir.parent.name}:{row_dir.name}"
        for rd in group[: group.index(pick)]:
            notes.append(
                f"{ref} ({sc}): judged {pick.name}, not the newer run {rd.name}: {state_of(rd)} "
                f"(pass --run-id {rd.name} to judge it)"
            )
    return Selection(chosen, notes)


BUNDLE_SUFFIXES = (".tar.gz", ".tgz", ".tar")


def _root_for(target: str, runs_root: Path) -> Path:
    """The folder a non-path target (paper, paper:row, row id) names under the runs root."""
    from .manifest import find_row, usable_manifests
    from .strict import did_you_mean

    if "/" in target or target.startswith(".") or target.endswith(BUNDLE_SUFFIXES):
        raise PackError(
            f"{target}: no such file or directory; pass a run folder, a runs tree, a bundle, "
            "a paper name or a paper:row id"
        )
    manifests = usable_manifests()
    papers = {m.paper for m in manifests}
    if target in papers:
        return runs_root / target
    rows = [r.id for m in manifests for r in m.rows]
    if ":" not in target and target not in rows:
        hint = did_you_mean(target, sorted(papers) + rows, listing=False)
        raise PackError(
            f"'{target}' is neither a file or folder here nor a known paper or row; "
            + (f"{hint} " if hint else "")
            + "(`pack list` shows the papers and rows)"
        )
    m, r = find_row(target)
    return runs_root / m.paper / r.id


def runs_for(
    target: str | None, *, runs_root: Path, scale: str | None = None, run_id: str | None = None
) -> Selection:
    """The selected runs of one target: a run folder, a runs tree, a paper, paper:row or row id, or (None)
    the whole runs root. A target naming nothing, or holding no run, is one sentence."""
    if target is None:
        root = runs_root
    elif Path(target).is_dir():
        root = Path(target)
    elif Path(target).exists():
        raise PackError(f"{target}: not a run folder, runs tree or bundle (.tar.gz made by 'pack bundle')")
    else:
        root = _root_for(target, runs_root)
    if not root.is_dir():
        raise PackError(
            f"no runs found under {root}; run rows first with 'pack run', or pass a run folder or bundle"
        )
    sel = select(root, scale=scale, run_id=run_id)
    if not sel.runs:
        what = f"run {run_id}" if run_id else "run folders"
        raise PackError(
            f"no {what} found in {root}"
            + (f" at scale {scale}" if scale else "")
            + "; run rows first with 'pack run'"
        )
    return sel
