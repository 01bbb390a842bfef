"""run.json: the run's record (`RunRecord`), its schema, and the one reader that checks it.

The folder it lives in, and everything else about that folder, is pack/rundir.py's.
"""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationError

from .errors import IntegrityError
from .strict import Strict

RUN_SCHEMA = "pack.run/1"


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
