"""Manifests: one YAML per paper, rows with params, scale profiles, targets and metric tolerances.

    manifests/<paper>.yaml  ->  Manifest (defaults merged, matrices expanded)  ->  Row  ->  Row.at(scale)

Loading collects every problem in every file before raising, so a manifest with three mistakes
is reported once, with three lines.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, StrictInt, ValidationError, field_validator

from . import catalog, paths, registry
from .errors import ManifestError
from .schema_errors import describe, fields_at
from .strict import Number, Strict, did_you_mean
from .tolerance import Tolerance
from .yamlio import line_for, load_with_lines

SCALES = ("smoke", "full")
NON_MANIFESTS = {"hardware.yaml", "images.yaml"}
# Bounds that keep a typo from switching a limit off: a row runs at most a week, at most 10000 times.
MAX_SECONDS = 7 * 24 * 3600
MAX_REPS = 10_000
Reps = Annotated[StrictInt, Field(ge=1, le=MAX_REPS)]
Seconds = Annotated[Number, Field(gt=0, le=MAX_SECONDS)]
Estimate = Annotated[Number, Field(ge=0, le=MAX_SECONDS)]


class Target(Strict):
    """What a row must run on: a hardware class from hardware.yaml and an image variant from images.yaml."""

    hardware: str
    image: str | None = None


class MetricSpec(Strict):
    """How one metric is judged. The key may be a glob ("*.decode_tok_s") matching several metrics."""

    tolerance: Tolerance | None = None  # default rule; an expectation may carry its own
    unit: str = ""
    description: str = ""
    aggregate: Literal["mean", "median", "min", "max", "first", "last"] = "mean"  # over repetitions
    contamination_sensitive: bool = False  # CONTAMINATED instead of a verdict when the run saw noise


class ScaleProfile(Strict):
    """A scale's overrides: `smoke` runs on a CPU with tiny synthetic inputs, `full` is the paper's
    setting."""

    params: dict[str, Any] = {}
    target: Target | None = None
    reps: Reps | None = None
    max_runtime_s: Seconds | None = None
    runtime_estimate_s: Estimate | None = None
    description: str = ""
    # Set when this scale only exercises the pack's plumbing (e.g. "stand-in training script: no model
    # is trained"): its checks are then basis `harness`, never evidence about the paper.
    harness: str = ""


class Row(Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    cell: str  # the paper cell this row reproduces: "Seed 000, Tolerances: throughput"
    experiment: str  # registry key
    description: str = ""
    params: dict[str, Any] = {}
    scales: dict[Literal["smoke", "full"], ScaleProfile] = {}
    target: Target
    reps: Reps = 1
    metrics: dict[str, MetricSpec] = {}
    max_runtime_s: Seconds = 3600
    runtime_estimate_s: Estimate = 60
    matrix: dict[str, list[Any]] | None = None
    tags: list[str] = []

    @field_validator("matrix")
    @classmethod
    def _matrix(cls, v):
        if v is not None:
            for k, vals in v.items():
                if not vals:
                    raise ValueError(f"matrix axis '{k}' has no values")
        return v

    def at(self, scale: str) -> ResolvedRow:
        if scale not in SCALES:
            raise ManifestError(f"unknown scale '{scale}'; use one of: {', '.join(SCALES)}")
        prof = self.scales.get(scale, ScaleProfile())
        params = deep_merge(self.params, prof.params)
        return ResolvedRow(
            row=self,
            scale=scale,
            params=params,
            target=prof.target or self.target,
            reps=prof.reps or self.reps,
            max_runtime_s=prof.max_runtime_s or self.max_runtime_s,
            runtime_estimate_s=(
                self.runtime_estimate_s if prof.runtime_estimate_s is None else prof.runtime_estimate_s
            ),
        )


@dataclass(frozen=True)
class ResolvedRow:
    """A row at one scale: everything a run needs, params merged."""

    row: Row
    scale: str
    params: dict
    target: Target
    reps: int
    max_runtime_s: float
    runtime_estimate_s: float

    @property
    def id(self) -> str:
        return self.row.id

    def params_hash(self) -> str:
        blob = json.dumps(
            {"experiment": self.row.experiment, "params": self.params, "scale": self.scale},
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


class Manifest(Strict):
    paper: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_\-]*$")
    title: str
    source: str  # which seed document / table this manifest transcribes
    version: StrictInt = 1
    description: str = ""
    defaults: dict[str, Any] = {}
    rows: list[Row]
    path: Path | None = Field(None, exclude=True)

    def row(self, row_id: str) -> Row:
        for r in self.rows:
            if r.id == row_id:
                return r
        raise ManifestError(unknown_row(row_id, [r.id for r in self.rows]))


def deep_merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def expand_matrix(raw: dict) -> list[dict]:
    """`matrix: {rank: [256, 512]}` on row `sweep` -> rows `sweep.rank-256`, `sweep.rank-512`."""
    matrix = raw.get("matrix")
    if (
        not isinstance(matrix, dict)
        or not matrix
        or not all(isinstance(v, list) and v for v in matrix.values())
    ):
        return [raw]
    keys = list(matrix)
    out = []
    for combo in itertools.product(*(matrix[k] for k in keys)):
        row = copy.deepcopy(raw)
        row["matrix"] = None
        row["params"] = deep_merge(row.get("params") or {}, dict(zip(keys, combo, strict=False)))
        suffix = ".".join(f"{k}-{v}" for k, v in zip(keys, combo, strict=False))
        row["id"] = f"{raw.get('id')}.{suffix}"
        row.setdefault("tags", [])
        row["tags"] = list(row["tags"]) + [f"matrix:{raw.get('id')}"]
        out.append(row)
    return out


def _allowed(loc: tuple) -> list[str]:
    """The keys allowed where an unknown key `loc + (key,)` was found (for "did you mean")."""
    return fields_at(Manifest, loc)


def load_manifest(path: Path) -> Manifest:
    data, lines = load_with_lines(path, expect=dict)
    problems: list[str] = []
    defaults = data.get("defaults") or {}
    raw_rows = data.get("rows")
    if not isinstance(raw_rows, list):
        raise ManifestError(f"{path}:{line_for(lines, ('rows',)) or 1}: 'rows' must be a list of rows")
    rows: list[Row] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(raw_rows):
        if not isinstance(raw, dict):
            problems.append(f"{path}:{line_for(lines, ('rows', i))}: row {i} must be a mapping")
            continue
        merged = deep_merge(defaults if isinstance(defaults, dict) else {}, raw)
        for j, expanded in enumerate(expand_matrix(merged)):
            if j == 0:  # references are the same for every matrix cell: check them once
                problems += _check_refs(expanded, path, lines, i)
            rid = str(raw.get("id", f"#{i}"))
            try:
                row = Row.model_validate(expanded)
            except ValidationError as e:
                if j == 0:
                    problems += describe(
                        e,
                        path,
                        lines,
                        base=("rows", i),
                        models_by_loc=lambda loc: _allowed(("rows", 0) + loc),
                    )
                continue
            problems += check_params(row, path, lines, i, rid)
            if row.id in seen:
                problems.append(
                    f"{path}:{line_for(lines, ('rows', i))}: row id '{row.id}' is used twice; "
                    f"give each row its own id"
                )
            seen[row.id] = i
            rows.append(row)
    header = {k: v for k, v in data.items() if k not in ("rows",)}
    try:
        manifest = Manifest.model_validate({**header, "rows": []})
    except ValidationError as e:
        problems += describe(e, path, lines, models_by_loc=_allowed)
        manifest = None
    if manifest is not None and manifest.paper != path.stem:
        problems.append(
            f"{path}:{line_for(lines, ('paper',))}: paper '{manifest.paper}' must match the file "
            f"name '{path.stem}'"
        )
    if problems:
        raise ManifestError(list(dict.fromkeys(problems)))
    return manifest.model_copy(update={"rows": rows, "path": path})


def check_params(row: Row, path: Path, lines: dict, i: int, rid: str) -> list[str]:
    """Every problem with a row's params at both scales, as its experiment's `Params` model sees them.

    Each error names the line of the param key (the scale's override, else the row's, the matrix
    axis or the manifest's defaults), so a typo is found by `pack validate`, not by a paid run.
    """
    if not registry.known(row.experiment):
        return []  # _check_refs names the unknown experiment
    model = registry.params_model(row.experiment)
    by_scale: dict[str, list[str]] = {}
    for scale in SCALES:
        try:
            model.model_validate(row.at(scale).params)
            by_scale[scale] = []
        except ValidationError as e:
            by_scale[scale] = describe(
                e,
                path,
                lines,
                base=("params",),
                models_by_loc=lambda loc: fields_at(model, loc),
                line_of=lambda loc, s=scale: _param_line(lines, i, s, loc),
            )
    # A mistake seen at both scales is said once; one seen at one scale names it.
    problems = []
    for scale in SCALES:
        for p in by_scale[scale]:
            file_line, _, msg = p.partition(": ")
            both = all(p in by_scale[s] for s in SCALES)
            label = f"row '{rid}'" if both else f"row '{rid}' at scale {scale}"
            problems.append(f"{file_line}: {label}: {msg}")
    return list(dict.fromkeys(problems))


def _param_line(lines: dict, i: int, scale: str, loc: tuple) -> int | None:
    """The line where param `loc` is set: the deepest key found in the sources a row's params merge."""
    loc = tuple(p for p in loc if p != "params")
    bases = [
        ("rows", i, "scales", scale, "params"),
        ("rows", i, "params"),
        ("rows", i, "matrix"),
        ("defaults", "params"),
    ]
    for n in range(len(loc), -1, -1):
        for b in bases:
            if b + loc[:n] in lines:
                return lines[b + loc[:n]]
    return line_for(lines, ("rows", i))


def _check_refs(raw: dict, path: Path, lines: dict, i: int) -> list[str]:
    """Experiment, hardware and image names of one raw row (checked even when its schema fails)."""
    rid = raw.get("id", f"#{i}")
    problems = []
    exp = raw.get("experiment")
    if isinstance(exp, str) and not registry.known(exp):
        where = f"{path}:{line_for(lines, ('rows', i, 'experiment'))}"
        problems.append(f"{where}: row '{rid}': " + registry.unknown_message(exp))
    targets = [(("target",), raw.get("target"))]
    for s, prof in (raw.get("scales") or {}).items():
        if isinstance(prof, dict):
            targets.append((("scales", s, "target"), prof.get("target")))
    for loc, t in targets:
        if not isinstance(t, dict):
            continue
        field = ".".join(loc)
        hw, img = t.get("hardware"), t.get("image")
        if isinstance(hw, str) and hw not in catalog.hardware():
            where = f"{path}:{line_for(lines, ('rows', i) + loc + ('hardware',))}"
            problems.append(
                f"{where}: row '{rid}' {field}.hardware: "
                + catalog.unknown("hardware", hw, catalog.hardware(), paths.manifests_dir() / "hardware.yaml")
            )
        if isinstance(img, str) and img not in catalog.images().variants:
            where = f"{path}:{line_for(lines, ('rows', i) + loc + ('image',))}"
            problems.append(
                f"{where}: row '{rid}' {field}.image: "
                + catalog.unknown(
                    "image", img, catalog.images().variants, paths.manifests_dir() / "images.yaml"
                )
            )
    return problems


def manifest_files() -> list[Path]:
    """The paper manifests; a manifests folder that is missing or holds none is an error naming it."""
    d = paths.manifests_dir()
    if not d.is_dir():
        raise ManifestError(
            f"{d}: no manifests folder here ({paths.where_from()}); point PACK_HOME at a "
            f"checkout of the pack or run from inside one"
        )
    files = sorted(p for p in d.glob("*.yaml") if p.name not in NON_MANIFESTS)
    if not files:
        raise ManifestError(
            f"{d}: holds no paper manifests (*.yaml) ({paths.where_from()}); point "
            f"PACK_HOME at a checkout of the pack"
        )
    return files


@lru_cache(maxsize=1)
def _all(root: Path) -> tuple[tuple[Manifest, ...], dict[Path, list[str]]]:
    out, broken = [], {}
    for f in manifest_files():
        try:
            out.append(load_manifest(f))
        except ManifestError as e:
            broken[f] = e.problems
    return tuple(out), broken


def load_all() -> tuple[tuple[Manifest, ...], dict[Path, list[str]]]:
    """(the manifests that load, {broken file: its problems}): one bad file does not hide the others."""
    return _all(paths.manifests_dir())


def all_manifests() -> tuple[Manifest, ...]:
    """Every manifest; any broken one is an error listing all problems of all files."""
    out, broken = load_all()
    if broken:
        raise ManifestError([p for problems in broken.values() for p in problems])
    return out


def usable_manifests() -> tuple[Manifest, ...]:
    """The manifests that load; each broken file is named on stderr and skipped."""
    out, broken = load_all()
    from .index import skipping

    for f, problems in broken.items():
        if f not in _WARNED:  # once per process, however many commands ask
            _WARNED.add(f)
            _warn(skipping(f, problems))
    return out


_WARNED: set[Path] = set()


def get_manifest(paper: str) -> Manifest:
    path = paths.manifests_dir() / f"{paper}.yaml"
    if not path.is_file():
        known = [p.stem for p in manifest_files()]
        raise ManifestError(
            f"no manifest for paper '{paper}' ({path} does not exist); " + did_you_mean(paper, known, n=2)
        )
    return load_manifest(path)


def find_row(ref: str) -> tuple[Manifest, Row]:
    """A row by id (`exp6a`) or paper-qualified id (`paperB:mcr-null`)."""
    paper, _, rid = ref.rpartition(":")
    manifests = [get_manifest(paper)] if paper else usable_manifests()
    ids = []
    for m in manifests:
        for r in m.rows:
            if r.id == rid:
                return m, r
            ids.append(r.id)
    broken = [] if paper else [p for problems in load_all()[1].values() for p in problems]
    if broken:  # the row may be in a manifest that does not load: its problems are the answer
        raise ManifestError(broken + [unknown_row(ref, ids) + " (of the manifests that load)"])
    raise ManifestError(unknown_row(ref, ids))


def unknown_row(ref: str, ids: list[str]) -> str:
    hint = did_you_mean(ref.rpartition(":")[2], ids, listing=False) or "run 'pack list' to see the rows"
    return f"unknown row '{ref}'; {hint}"


def _warn(text: str) -> None:
    import sys

    print(f"pack: warning: {text}", file=sys.stderr)
