"""What an experiment hands back for one repetition, and the context it runs in."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Value = float | int | str


@dataclass
class RepResult:
    """One repetition's outcome.

    metrics: name -> number (or a string for `exact` checks such as a sha256).
    errors: metric name or prefix ("compress" covers "compress.decode_tok_s") -> why it has no value.
    contamination: reasons this measurement is not clean (co-resident GPU work, throttling, ...).
    not_applicable: metric name or prefix -> why it cannot be measured here (backend absent, GPU-only).
    info: anything else worth keeping in the rep's JSON (small; large data goes to files in rep_dir).
    """

    metrics: dict[str, Value] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    contamination: list[str] = field(default_factory=list)
    not_applicable: dict[str, str] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "metrics": self.metrics,
            "errors": self.errors,
            "contamination": self.contamination,
            "not_applicable": self.not_applicable,
            "info": self.info,
        }

    @classmethod
    def from_json(cls, d: dict) -> RepResult:
        return cls(
            metrics=d.get("metrics", {}),
            errors=d.get("errors", {}),
            contamination=d.get("contamination", []),
            not_applicable=d.get("not_applicable", {}),
            info=d.get("info", {}),
        )


@dataclass
class RunContext:
    """Handed to every experiment call.

    run_dir: the run's directory; rep_dir: where this repetition writes its artifacts (it is
    renamed into place only when the repetition finishes, so partial files never survive a kill).
    cache: lives for the whole process: load a model once, reuse it across reps and configurations.
    """

    run_dir: Path
    rep_dir: Path
    rep_index: int
    reps: int
    scale: str
    seed: int
    device: str  # "cpu" or "cuda"
    hardware: str
    deadline: float  # time.monotonic() after which the row's max runtime is exceeded
    cache: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)  # experiment-specific facts (executable sha, model hash)
    counters: dict = field(default_factory=dict)  # e.g. {"model_loads": 1}, shown in the run log
    previous: list[RepResult] = field(default_factory=list)  # this run's finished repetitions, in order

    def rep_folder(self, i: int) -> Path:
        """Where finished repetition i of this run keeps its artifacts (e.g. a signals file)."""
        from .rundir import RunDir  # the one owner of the run folder's layout

        return RunDir(self.run_dir).rep_dir(i)

    def log(self, msg: str) -> None:
        print(f"[{self.hardware} rep {self.rep_index + 1}/{self.reps}] {msg}", file=sys.stderr, flush=True)

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    def seconds_left(self) -> float:
        return self.deadline - time.monotonic()


CACHE: dict = {}  # the process-wide model cache behind RunContext.cache
