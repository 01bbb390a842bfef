"""expected/<paper>/<row>.yaml: the values a row should reproduce, where they hold, where they come from.

    paper: paperB
    row: mcr-null
    expectations:
      - metric: baseline.decode_tok_s        # a metric name or a glob
        value: 39.28
        tolerance: {kind: rel, value: 0.05}   # optional: else the manifest's rule for the metric
        scope: {gpu: [RTX 4060]}               # where the value holds (hardware, gpu, image, scale, params)
        off_scope: null                        # weaker rule elsewhere; null -> NOT-APPLICABLE off scope
        source: {seed: 000_7cd8c1fac65d41df.txt, table: "1. Local: MCR null re-run"}

Only `pack bless` writes here.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import Field, StrictInt, StrictStr, ValidationError, model_validator

from . import fsio, paths
from .errors import ManifestError
from .manifest import Manifest, Row
from .schema_errors import describe
from .strict import Number, Strict, did_you_mean
from .tolerance import Scope, Tolerance
from .yamlio import dump, line_for, load_with_lines


class Source(Strict):
    seed: str | None = None  # seed file name
    table: str | None = None  # table or section in it
    entry: str | None = None  # journal entry date, for seed 004
    blessed_run: str | None = None  # run id that `pack bless` took the value from
    blessed_at: str | None = None
    note: str | None = None

    @model_validator(mode="after")
    def _some(self):
        if not (self.seed or self.blessed_run):
            raise ValueError("a source needs 'seed' (and table) or 'blessed_run'")
        return self


class Expectation(Strict):
    metric: str
    value: StrictInt | Number | StrictStr | None = (
        None  # a finite number, or a string for exact rules (a sha256)
    )
    values: list[Number] | None = None  # a reference sample, for stat rules against "expected"
    tolerance: Tolerance | None = None
    scope: Scope = Scope()
    off_scope: Tolerance | None = None
    source: Source
    note: str = ""


class ExpectedFile(Strict):
    paper: str
    row: str
    expectations: list[Expectation] = Field(default_factory=list)
    path: Path | None = Field(None, exclude=True)

    def for_metric(self, name: str) -> list[Expectation]:
        return [e for e in self.expectations if e.metric == name or fnmatch.fnmatchcase(name, e.metric)]


def rule_for(exp: Expectation, row: Row, metric: str):
    """The tolerance in force: the expectation's own, else the manifest's for that metric (or glob)."""
    return _in_force(exp, metric_spec(row, metric))


def _in_force(exp: Expectation, spec):
    return exp.tolerance if exp.tolerance is not None else (spec.tolerance if spec else None)


@dataclass(frozen=True)
class Candidate:
    """An expectation covering a metric, with the rule in force for it (None: no tolerance declared)."""

    expectation: Expectation
    rule: Any


@dataclass(frozen=True)
class MetricLookup:
    """Everything expected/ and the manifest hold for one metric, read in one call: the expectations
    covering it (file order, each with its rule in force) and the row's spec (aggregate, contamination)."""

    candidates: list[Candidate]
    expectations: list[Expectation]  # the candidates' expectations, in the same order
    spec: Any  # manifest.MetricSpec or None
    aggregate: str  # the spec's aggregate, else "mean"


def lookup(ef: ExpectedFile | None, row: Row, metric: str) -> MetricLookup:
    """One metric's expectations with their rules (rule_for) and its spec (metric_spec)."""
    spec = metric_spec(row, metric)
    exps = ef.for_metric(metric) if ef else []
    candidates = [Candidate(e, _in_force(e, spec)) for e in exps]
    return MetricLookup(candidates, exps, spec, spec.aggregate if spec else "mean")


def metric_spec(row: Row, metric: str):
    """The row's spec for a metric: its exact name, else the most specific matching glob."""
    if metric in row.metrics:
        return row.metrics[metric]
    matches = [p for p in row.metrics if fnmatch.fnmatchcase(metric, p)]
    if not matches:
        return None
    return row.metrics[max(matches, key=lambda p: len(p.replace("*", "").replace("?", "")))]


def _paper_value_in_scope(ef: ExpectedFile, metric: str, run: dict) -> bool:
    """A value transcribed from the paper already covers this metric here: blessing must not shadow it."""
    return any(e.source.seed and e.scope.mismatch(run) is None for e in ef.for_metric(metric))


def path_for(paper: str, row_id: str) -> Path:
    return paths.expected_dir() / paper / f"{row_id}.yaml"


def load_expected(path: Path) -> ExpectedFile:
    data, lines = load_with_lines(path)
    try:
        ef = ExpectedFile.model_validate(data or {})
    except ValidationError as e:
        raise ManifestError(describe(e, path, lines, models_by_loc=_allowed)) from None
    return ef.model_copy(update={"path": path})


def _allowed(loc) -> list[str]:
    names = [p for p in loc if isinstance(p, str)]
    if not names:
        return list(ExpectedFile.model_fields)
    last = names[-1]
    table = {"expectations": Expectation, "scope": Scope, "source": Source}
    if last in table:
        return list(table[last].model_fields)
    if last in ("tolerance", "off_scope"):
        return ["kind", "value", "places", "min", "max", "exclusive", "test", "alpha", "expect", "against"]
    return []


def for_row(paper: str, row_id: str) -> ExpectedFile | None:
    path = path_for(paper, row_id)
    return load_expected(path) if path.is_file() else None


def check_file(path: Path, manifests: dict[str, Manifest]) -> list[str]:
    """Every problem with one expected file against the manifests (row exists, rules complete)."""
    try:
        ef = load_expected(path)
    except ManifestError as e:
        return e.problems
    data, lines = load_with_lines(path)
    problems = []
    m = manifests.get(ef.paper)
    if m is None:
        return [
            f"{path}:{line_for(lines, ('paper',))}: no manifest for paper '{ef.paper}'; check "
            f"manifests/{ef.paper}.yaml exists"
        ]
    if path.parent.name != ef.paper or path.stem != ef.row:
        problems.append(
            f"{path}: file must be expected/{ef.paper}/{ef.row}.yaml to match its paper and row fields"
        )
    ids = [r.id for r in m.rows]
    if ef.row not in ids:
        hint = did_you_mean(ef.row, ids, n=1, listing=False) or f"rows of {ef.paper}: {', '.join(ids)}"
        return problems + [
            f"{path}:{line_for(lines, ('row',))}: expectation for row '{ef.row}', which does not exist in "
            f"{m.path}; {hint}"
        ]
    row = m.row(ef.row)
    for i, e in enumerate(ef.expectations):
        where = f"{path}:{line_for(lines, ('expectations', i))}"
        rule = rule_for(e, row, e.metric)
        if rule is None:
            problems.append(
                f"{where}: metric '{e.metric}' has no tolerance; add 'tolerance' here or under the row's "
                f"metrics in {m.path}"
            )
            continue
        if rule.needs_value and e.value is None:
            problems.append(
                f"{where}: metric '{e.metric}' uses a {rule.kind} tolerance but has no 'value'; add the "
                "expected value"
            )
        elif rule.needs_value and rule.needs_number and isinstance(e.value, str):
            problems.append(
                f"{where}: metric '{e.metric}' uses a {rule.kind} tolerance but its value {e.value!r} is a "
                "string; write it as a number (no quotes)"
            )
        elif isinstance(e.value, str) and _reads_as_number(e.value):  # exact '79367' never equals 79367
            problems.append(
                f"{where}: metric '{e.metric}' value {e.value!r} is text that reads as a number (YAML "
                "reads a quoted number, or one like 1e400 without a dot, as text), so an exact check "
                "could never pass; write a finite number without quotes, like 79367 or 1.0e+3"
            )
        if rule.kind == "stat" and rule.against_metric is None and not e.values:
            problems.append(
                f"{where}: metric '{e.metric}' uses a stat test against 'expected' but has no 'values' sample"
            )
    return problems + _narrow_difference_problems(ef, row, path, lines)


def _band_width(exp: Expectation, row: Row) -> float | None:
    rule = rule_for(exp, row, exp.metric)
    if rule is None or rule.kind not in ("abs", "rel") or isinstance(exp.value, (str, bool, type(None))):
        return None
    return rule.allowed(float(exp.value))


def narrow_differences(ef: ExpectedFile, row: Row) -> list[tuple[int, float, Expectation, float]]:
    """'X_delta' (X minus a reference) allowed less drift than X itself can FAIL while every term
    passes: a false FAIL built into the file. Returns (index, delta's width, term, term's width) for
    each, per scope, for abs/rel bands. A paper's own tolerance on a difference is its requirement
    and is left alone."""
    out = []
    by_key = {(e.metric, e.scope.describe()): e for e in ef.expectations}
    for i, e in enumerate(ef.expectations):
        if not e.metric.endswith("_delta") or e.source.seed:
            continue
        term = by_key.get((e.metric[: -len("_delta")], e.scope.describe()))
        delta_w = _band_width(e, row)
        term_w = _band_width(term, row) if term is not None else None
        if delta_w is not None and term_w is not None and delta_w < term_w * (1 - 1e-9):
            out.append((i, delta_w, term, term_w))
    return out


def _round_up(x: float) -> float:
    """x to 4 significant digits, never below x (a tolerance written for a file)."""
    v = float(f"{x:.4g}")
    return v if v >= x else float(f"{x * 1.001:.4g}")


def _narrow_difference_problems(ef: ExpectedFile, row: Row, path: Path, lines: dict) -> list[str]:
    return [
        f"{path}:{line_for(lines, ('expectations', i))}: metric '{ef.expectations[i].metric}' allows "
        f"±{delta_w:.4g} but its term '{term.metric}' may drift ±{term_w:.4g} at {term.value:.6g}, so the "
        f"difference can FAIL while both terms PASS; widen it to at least ±{term_w:.4g} (or tighten "
        f"'{term.metric}')"
        for i, delta_w, term, term_w in narrow_differences(ef, row)
    ]


def _reads_as_number(text: str) -> bool:
    try:
        float(text.replace("_", ""))
    except ValueError:
        try:
            int(text, 0)  # 0x10, 0o17
        except ValueError:
            return False
    return True


def expected_files() -> list[Path]:
    return sorted(paths.expected_dir().glob("*/*.yaml"))


def bless(run: dict, metrics: list[str] | None, row: Row, note: str = "") -> Path:
    """Write a run's measured values into expected/<paper>/<row>.yaml, scoped to its scale and hardware.

    Existing expectations for other scopes are kept; one with the same metric and scope is replaced.
    """
    path = path_for(run["paper"], run["row"])
    existing = load_expected(path) if path.is_file() else ExpectedFile(paper=run["paper"], row=run["row"])
    # A reference belongs to the device that produced it, whatever the row targets: on a GPU host the
    # rows compute on the GPU (RunContext.device), and a CPU-target row's llama.cpp or torch numbers
    # differ there in the last bits. "cpu" matches a run with no GPU.
    scope: dict[str, Any] = {
        "scale": [run["scale"]],
        "gpu": sorted(set(run.get("gpu_models") or [])) or ["cpu"],
    }
    chosen = metrics or [m for m in sorted(run["metrics"]) if not _paper_value_in_scope(existing, m, run)]
    unknown = [m for m in chosen if m not in run["metrics"]]
    if unknown:
        raise ManifestError(
            f"run {run['run_id']} has no metric {', '.join(unknown)}; it has: "
            f"{', '.join(sorted(run['metrics']))}"
        )
    new: list[dict[str, Any]] = []
    for name in chosen:
        spec = metric_spec(row, name)
        entry = run["metrics"][name]
        agg = spec.aggregate if spec else "mean"
        vals = entry["values"]
        if (
            all(isinstance(v, int) for v in vals)
            or not isinstance(vals[0], (int, float))
            or len(set(vals)) == 1
        ):
            value = vals[0]  # integers and identical repetitions are recorded as measured, not averaged
        else:
            value = entry.get(agg, vals[-1])
        item: dict[str, Any] = {"metric": name, "value": value}
        if spec is None or spec.tolerance is None:
            item["tolerance"] = (
                {"kind": "exact"} if isinstance(value, str) else {"kind": "rel", "value": 1e-6}
            )
        if (
            spec
            and spec.tolerance is not None
            and spec.tolerance.kind == "stat"
            and spec.tolerance.against_metric is None
        ):
            item["values"] = entry["values"]
        item["scope"] = scope
        item["source"] = {
            "blessed_run": run["run_id"],
            "blessed_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        if note:
            item["note"] = note
        new.append(item)
    keep = [
        e.model_dump(exclude_none=True, exclude_defaults=True)
        for e in existing.expectations
        if not (e.metric in chosen and e.scope.model_dump(exclude_none=True) == scope)
    ]
    doc = {"paper": run["paper"], "row": run["row"], "expectations": keep + new}
    # A blessed difference gets at least its term's band, or it would FAIL while both terms PASS.
    for i, _, _, term_w in narrow_differences(ExpectedFile.model_validate(doc), row):
        if i >= len(keep):
            doc["expectations"][i]["tolerance"] = {"kind": "abs", "value": _round_up(term_w)}
    ExpectedFile.model_validate(doc)  # never write a file the verifier would reject
    fsio.write_text_atomic(path, dump(doc))
    return path
