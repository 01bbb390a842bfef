"""The one owner of a run folder: its layout, its record (run.json), its integrity, which run is newest.

    runs/<paper>/<row>/<run-id>/
        run.json          the RunRecord: status, params + hash, target, timings per rep, aggregated metrics
        env.json          the environment fingerprint, GPU processes at start and end
        reps/rep-NNN/     one repetition: rep.json (its RepResult), artifacts, its own SHA256SUMS;
                          built in reps/.rep-NNN.tmp and renamed into place when it is done
        summary/          metrics over all repetitions (the experiment's optional summarize())
        run.log           what the pack logged; error.txt: the traceback of a crashed repetition
        SHA256SUMS        every file above, written last: a run folder without it is unfinished
        .pack.lock        flock'ed by the one process running or resuming it (never checksummed)

Every other module asks this one for a path or a record; none spells `reps/rep-NNN` itself. Its parts:
pack/run_record.py (run.json's model and reader), pack/aggregates.py (metrics over repetitions, and
the recomputation the integrity check compares), pack/run_lock.py (the one-writer flock); their public
names are importable from here too.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from . import fsio, run_lock
from .aggregates import aggregate, compare_aggregates
from .results import RepResult
from .run_lock import RunInUse
from .run_record import (
    RUN_SCHEMA,
    MetricAggregate,
    RepTiming,
    RunRecord,
    RunRecordError,
    RunStatus,
    read_record,
    resume_command,
)

__all__ = [  # the run folder's public names, its parts' included
    "RUN_SCHEMA",
    "MetricAggregate",
    "RepTiming",
    "RunDir",
    "RunInUse",
    "RunRecord",
    "RunRecordError",
    "RunStatus",
    "aggregate",
    "all_runs",
    "compare_aggregates",
    "count_finished_reps",
    "is_finished_rep_key",
    "is_run_dir",
    "latest",
    "read_record",
    "rep_name",
    "resume_command",
    "runs_of",
]

RUN_FILE = "run.json"
ENV_FILE = "env.json"
LOG_FILE = "run.log"
ERROR_FILE = "error.txt"
REPS_DIR = "reps"
REP_FILE = "rep.json"
SUMMARY_DIR = "summary"
SUMMARY_FILE = "summary.json"


def rep_name(i: int) -> str:
    return f"rep-{i:03d}"


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


@dataclass(frozen=True)
class RunDir:
    """A run folder. `record` is read (and checked) once; the paths are the layout's only spelling."""

    path: Path

    @property
    def run_json(self) -> Path:
        return self.path / RUN_FILE

    @property
    def env_json(self) -> Path:
        return self.path / ENV_FILE

    @property
    def log_path(self) -> Path:
        return self.path / LOG_FILE

    @property
    def error_path(self) -> Path:
        return self.path / ERROR_FILE

    @property
    def reps_dir(self) -> Path:
        return self.path / REPS_DIR

    @property
    def summary_dir(self) -> Path:
        return self.path / SUMMARY_DIR

    @property
    def sums_path(self) -> Path:
        return self.path / fsio.SUMS_NAME

    @property
    def lock_path(self) -> Path:
        return self.path / fsio.LOCK_NAME

    @property
    def name(self) -> str:
        return self.path.name

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the folder's exclusive lock for a run or resume (RunInUse if another process holds it)."""
        with run_lock.hold(self.lock_path, self.path):
            yield

    def holder(self) -> int | None:
        """The pid of the pack process running this folder right now (0 if unknown), or None."""
        return run_lock.holder(self.lock_path)

    def is_sealed(self) -> bool:
        """True once the run's write sequence ended (the checksum file is written last)."""
        return self.sums_path.is_file()

    def unfinished(self) -> str | None:
        """Why this run is not finished, as the verdict's sentence; None when its write sequence ended."""
        rec = self.record
        how = f"resume it with `{resume_command(rec)}`"
        pid = self.holder()
        if pid is not None:
            who = f" (pid {pid})" if pid else ""
            return f"unfinished: a pack process{who} is still running it; wait for it to end"
        if rec.status == RunStatus.running or not self.is_sealed():
            return f"unfinished: the run stopped before it ended; {how}"
        if rec.status == RunStatus.interrupted:
            return f"unfinished: interrupted; {how}"
        return None

    def rep_dir(self, i: int) -> Path:
        return self.reps_dir / rep_name(i)

    def rep_tmp(self, i: int) -> Path:
        return self.reps_dir / f".{rep_name(i)}.tmp"

    def partial_reps(self) -> list[Path]:
        return sorted(self.reps_dir.glob(".rep-*.tmp"))

    def stale_temp_files(self) -> list[Path]:
        """Temp files of atomic writes a killed process never renamed (garbage by construction)."""
        return sorted(p for p in self.path.glob(".*.tmp") if p.is_file())

    @cached_property
    def record(self) -> RunRecord:
        return read_record(self.run_json)

    def write_record(self, record: RunRecord) -> None:
        fsio.write_json_atomic(self.run_json, record.as_dict())
        self.__dict__["record"] = record

    def finished_rep_indices(self) -> list[int]:
        """Indices of repetition folders that were renamed into place (checksums not checked here)."""
        out = []
        for p in self.reps_dir.glob("rep-[0-9][0-9][0-9]"):
            if p.is_dir() and (p / REP_FILE).is_file():
                out.append(int(p.name[4:]))
        return sorted(out)

    def rep_doc(self, i: int) -> dict | None:
        """rep.json of repetition i ({index, timing, result}), or None if absent or unreadable."""
        return _read_json(self.rep_dir(i) / REP_FILE)

    def finished_rep(self, i: int) -> RepResult | None:
        """Repetition i's result if its folder is finished and still matches its checksums, else None."""
        d = self.rep_dir(i)
        if not (d / REP_FILE).is_file() or fsio.check_sums(d):
            return None
        data = self.rep_doc(i)
        return RepResult.from_json(data["result"]) if data else None

    def summary_result(self) -> RepResult | None:
        data = _read_json(self.summary_dir / SUMMARY_FILE)
        return RepResult.from_json(data) if isinstance(data, dict) else None

    def integrity(self) -> list[str]:
        """One sentence per problem: files against SHA256SUMS, then run.json's metrics against the reps."""
        problems = fsio.check_sums(self.path)
        return problems + self.aggregate_problems()

    def aggregate_problems(self) -> list[str]:
        """Recompute every metric's aggregate from reps/*/rep.json (and summary/); compare with run.json."""
        rec = self.record
        reps: list[RepResult] = []
        for t in rec.reps:
            doc = self.rep_doc(t.index)
            if doc is None or "result" not in doc:
                return [
                    f"{self.rep_dir(t.index) / REP_FILE}: missing or unreadable, but run.json lists "
                    f"repetition {t.index + 1}"
                ]
            reps.append(RepResult.from_json(doc["result"]))
        summary = self.summary_result() if rec.status == RunStatus.complete else None
        recomputed = {k: MetricAggregate.model_validate(v) for k, v in aggregate(reps, summary).items()}
        problems = compare_aggregates(self.run_json, rec.metrics, recomputed, REP_FILE)
        return problems + self._notes_problems(reps, summary)

    def _notes_problems(self, reps: list[RepResult], summary: RepResult | None) -> list[str]:
        """What the repetitions reported that run.json must carry: an error, contamination or
        not-applicable note dropped from the record (and re-hashed) would turn ERROR/CONTAMINATED
        into PASS."""
        rec, dropped = self.record, []
        if rec.status != RunStatus.complete:  # the runner merges the notes only when the run completes
            return []
        for r in reps + ([summary] if summary else []):
            dropped += [f"error '{k}'" for k in r.errors if k not in rec.errors]
            dropped += [f"contamination '{c}'" for c in r.contamination if str(c) not in rec.contamination]
            dropped += [f"'{k}' not applicable" for k in r.not_applicable if k not in rec.not_applicable]
        return [
            f"{self.run_json}: a repetition reported {what}, which run.json does not carry"
            for what in dict.fromkeys(dropped)
        ]


def runs_of(row_dir: Path) -> list[RunDir]:
    """The run folders of one row, newest first (a folder counts once it holds run.json)."""
    if not row_dir.is_dir():
        return []
    dirs = [
        p for p in row_dir.iterdir() if p.is_dir() and not p.name.startswith(".") and (p / RUN_FILE).is_file()
    ]
    return [RunDir(p) for p in sorted(dirs, key=lambda p: p.name, reverse=True)]


def is_run_dir(path: Path) -> bool:
    return (path / RUN_FILE).is_file()


def all_runs(root: Path) -> list[RunDir]:
    """Every run folder under root (a runs/ tree, a paper or a row folder, or a run folder itself)."""
    if is_run_dir(root):
        return [RunDir(root)]
    out = []
    for rj in sorted(root.rglob(RUN_FILE)):
        d = rj.parent
        rel = d.parts[len(root.parts) :]
        if ".tmp" in d.name or REPS_DIR in rel or SUMMARY_DIR in rel or d.name.startswith("."):
            continue
        out.append(RunDir(d))
    return out


def latest(root: Path) -> list[RunDir]:
    """The newest run folder of every row found under root."""
    by_row: dict[Path, RunDir] = {}
    for rd in all_runs(root):
        cur = by_row.get(rd.path.parent)
        if cur is None or rd.name > cur.name:
            by_row[rd.path.parent] = rd
    return [by_row[k] for k in sorted(by_row)]


def count_finished_reps(runs_root: Path, rows: list[str]) -> int:
    """Finished repetitions of every run of `rows` ('paper:row') under runs_root (launch progress)."""
    n = 0
    for ref in rows:
        paper, _, row = ref.partition(":")
        n += sum(len(rd.finished_rep_indices()) for rd in runs_of(runs_root / paper / row))
    return n


def is_finished_rep_key(key: str) -> bool:
    """True for a result key (a path in a sink) that is a finished repetition's rep.json."""
    return re.search(rf"(^|/){REPS_DIR}/rep-[0-9]{{3}}/{re.escape(REP_FILE)}$", key) is not None
