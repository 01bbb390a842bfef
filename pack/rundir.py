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

Every other module asks this one for a path or a record; none spells `reps/rep-NNN` itself.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import re
import statistics
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationError

from . import fsio
from .errors import EXIT_USAGE, IntegrityError, PackError
from .results import RepResult
from .strict import Strict

RUN_SCHEMA = "pack.run/1"
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


class RunStatus(str, Enum):
    running = "running"
    complete = "complete"
    error = "error"
    interrupted = "interrupted"


class Record(Strict):
    """Strict, but mutable: the runner fills a record in as repetitions finish."""

    model_config = ConfigDict(extra="forbid", frozen=False, populate_by_name=True, validate_assignment=True)


class RepTiming(Record):
    started_at: str
    wall_s: int | float
    index: int
    kept: bool


class MetricAggregate(Record):
    """One metric over the repetitions: the verdict-ready form (numbers get mean/std/min/max/median)."""

    values: list[Any]
    n: int
    mean: float | None = None
    std: float | None = None
    min: float | None = None
    max: float | None = None
    median: float | None = None

    def as_dict(self) -> dict:
        return self.model_dump(exclude_none=True)


class RunRecord(Record):
    """run.json. Written atomically at the start, after every repetition and at the end."""

    schema_version: Literal["pack.run/1"] = Field(RUN_SCHEMA, alias="schema")
    paper: str
    row: str
    run_id: str
    cell: str
    experiment: str
    scale: str
    params: dict[str, Any]
    params_hash: str
    target: dict[str, Any]
    hardware: str
    gpu_models: list[str]
    hardware_mismatch: str | None = None  # detected GPUs differ from `hardware` (catalog.resolve_hardware)
    image: str | None = None
    seed: int
    reps_planned: int
    max_runtime_s: int | float
    status: RunStatus
    started_at: str
    resumed: bool
    reps: list[RepTiming] = []
    metrics: dict[str, MetricAggregate] = {}
    errors: dict[str, str] = {}
    contamination: list[str] = []
    not_applicable: dict[str, str] = {}
    experiment_provenance: dict[str, Any] = {}
    finished_at: str | None = None
    expected_sha256: str | None = None  # the row's expectation file at the start (pack status: stale?)
    wall_s: int | float | None = None
    counters: dict[str, Any] = {}

    def as_dict(self) -> dict:
        """The JSON form (the judging code and run.json read this shape)."""
        d = self.model_dump(by_alias=True, mode="python")
        d["status"] = self.status.value
        d["metrics"] = {k: v.as_dict() for k, v in self.metrics.items()}
        return d


class RunRecordError(IntegrityError):
    """run.json is missing, damaged, of an unknown schema, or does not fit the schema."""


class RunInUse(PackError):
    """Another pack process holds the run folder's lock."""

    exit_code = EXIT_USAGE


def resume_command(rec: RunRecord) -> str:
    return f"pack run {rec.paper}:{rec.row} --scale {rec.scale} --resume"


def read_record(path: Path) -> RunRecord:
    """Parse and check run.json; every problem is one sentence naming the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RunRecordError(
            f"{path}: missing; this is not a finished run directory (or the file was deleted)"
        ) from None
    except (OSError, UnicodeDecodeError) as e:
        raise RunRecordError(f"{path}: cannot be read ({e.__class__.__name__}: {e})") from None
    try:
        data = json.loads(text)
    except ValueError:
        raise RunRecordError(
            f"{path}: truncated or not JSON; the run was interrupted while writing, or the file was damaged"
        ) from None
    if not isinstance(data, dict):
        raise RunRecordError(f"{path}: not a run record (a JSON object is expected)")
    schema = data.get("schema")
    if schema != RUN_SCHEMA:
        what = f"schema '{schema}'" if schema else "no 'schema' field"
        raise RunRecordError(
            f"{path}: {what}; this pack reads '{RUN_SCHEMA}' run records — upgrade pack to read newer runs"
        )
    try:
        return RunRecord.model_validate(data)
    except ValidationError as e:
        err = e.errors(include_url=False)[0]
        field = ".".join(str(p) for p in err["loc"])
        raise RunRecordError(
            f"{path}: field '{field}': {err['msg']}; the run record was damaged or edited"
        ) from None


def aggregate(reps: list[RepResult], summary: RepResult | None) -> dict[str, dict]:
    """name -> {values, n, mean, std, min, max, median}: MetricAggregate's JSON form over the repetitions
    (a summary's value stands in where no repetition has one)."""
    names: list[str] = []
    for r in reps + ([summary] if summary else []):
        for k in r.metrics:
            if k not in names:
                names.append(k)
    out = {}
    for name in names:
        values = [r.metrics[name] for r in reps if name in r.metrics]
        if summary and name in summary.metrics:
            values = [summary.metrics[name]] if not values else values
        entry: dict = {"values": values, "n": len(values)}
        nums = [_as_float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if nums and len(nums) == len(values):
            finite = [v for v in nums if math.isfinite(v)]
            try:
                mean = statistics.fmean(finite) if finite else float("nan")
                std = statistics.stdev(finite) if len(finite) > 1 else 0.0
            except (
                OverflowError
            ):  # values near ±1.8e308: recorded as NaN, judged (never passed) from `values`
                mean = std = float("nan")
            entry.update(mean=mean, std=std, min=min(nums), max=max(nums), median=statistics.median(nums))
        out[name] = entry
    return out


def _lock_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _as_float(v) -> float:
    """An int too large for a float (10**400 in a rep.json) is ±inf here, not an OverflowError."""
    try:
        return float(v)
    except OverflowError:
        return math.inf if v > 0 else -math.inf


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
        """Hold the folder's exclusive lock for a run or resume; RunInUse if another process holds it.
        The kernel drops the lock when the process dies, so a SIGKILLed run never blocks its resume."""
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid = _lock_pid(fd)
                who = f" (pid {pid})" if pid else ""
                raise RunInUse(
                    f"{self.path} is being run by another pack process{who}; "
                    "wait for it to finish, or stop it and continue with --resume"
                ) from None
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            yield
        finally:
            os.close(fd)  # closing drops the lock

    def holder(self) -> int | None:
        """The pid of the pack process running this folder right now (0 if unknown), or None."""
        try:
            fd = os.open(self.lock_path, os.O_RDONLY)
        except OSError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return _lock_pid(fd) or 0
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

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
        return compare_aggregates(self.run_json, rec.metrics, recomputed) + self._notes_problems(
            reps, summary
        )

    def _notes_problems(self, reps: list[RepResult], summary: RepResult | None) -> list[str]:
        """What the repetitions reported that run.json must carry: an error, contamination or
        not-applicable note dropped from the record (and re-hashed) would turn ERROR/CONTAMINATED into PASS."""
        rec, out = self.record, []
        if rec.status != RunStatus.complete:  # the runner merges the notes only when the run completes
            return out
        for r in reps + ([summary] if summary else []):
            for k in r.errors:
                if k not in rec.errors:
                    out.append(
                        f"{self.run_json}: a repetition reported error '{k}', which run.json does not carry"
                    )
            out += [
                f"{self.run_json}: a repetition reported contamination '{c}', which run.json does not carry"
                for c in r.contamination
                if str(c) not in rec.contamination
            ]
            out += [
                f"{self.run_json}: a repetition reported '{k}' not applicable, which run.json does not carry"
                for k in r.not_applicable
                if k not in rec.not_applicable
            ]
        return list(dict.fromkeys(out))


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, int) and isinstance(b, int):
        return a == b and isinstance(a, bool) == isinstance(b, bool)  # exact, and no float overflow
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return _same(_as_float(a), _as_float(b))
    return a == b


def compare_aggregates(
    where: Path, recorded: dict[str, MetricAggregate], recomputed: dict[str, MetricAggregate]
) -> list[str]:
    problems = []
    for name in sorted(set(recorded) | set(recomputed)):
        if name not in recomputed:
            problems.append(
                f"{where}: metric '{name}' is not in any repetition's {REP_FILE}; "
                "run.json disagrees with the per-repetition files"
            )
            continue
        if name not in recorded:
            problems.append(f"{where}: metric '{name}' of the per-repetition files is absent from run.json")
            continue
        got, want = recorded[name].as_dict(), recomputed[name].as_dict()
        for key in ("values", "n", "mean", "std", "min", "max", "median"):
            if not _same(got.get(key), want.get(key)):
                problems.append(
                    f"{where}: metric '{name}' {key} is {got.get(key)!r} but the per-repetition "
                    f"files give {want.get(key)!r}; run.json was edited or the repetitions "
                    "replaced"
                )
                break
    return problems


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
