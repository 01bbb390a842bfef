"""Verdicts: choose each metric's expectation, let its rule (pack/tolerance.py) judge it, build the row.

PASS            measured within the rule, in the expectation's scope
FAIL            measured outside the rule (or the run's files do not match their checksums)
CONTAMINATED    the run reported noise or co-resident GPU work: rerun, not a failure
NOT-APPLICABLE  off-scope (other hardware, scale, image, checkpoint) or not measurable here, with why;
                a whole row is NOT-APPLICABLE when its experiment records not_applicable["__row__"]
MISSING         an in-scope expectation (a name or a glob) that no produced metric answers
ERROR           the run, or the part of it that should produce the metric, failed

Every judged metric names its evidence `basis`: `paper` (a value transcribed from a paper/seed, in
its scope), `reference` (a blessed run of this pack: a regression check) or `harness` (the row's
scale only exercises the pack's plumbing: ScaleProfile.harness says why). A row names its strongest.
"""

from __future__ import annotations

import fnmatch
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import expected as exp_mod
from .errors import ManifestError
from .manifest import find_row
from .rundir import RunDir, RunRecordError
from .tolerance import Rule, Stat

ORDER = ["ERROR", "FAIL", "MISSING", "CONTAMINATED", "PASS", "NOT-APPLICABLE"]
PASSING = {"PASS", "NOT-APPLICABLE"}
CHECKED = {"PASS", "FAIL", "CONTAMINATED"}  # verdicts where a rule was actually applied
BASES = ("paper", "reference", "harness")  # strongest first
ROW_KEY = "__row__"  # not_applicable[ROW_KEY]: the experiment's variable never ran in this run


@dataclass
class MetricVerdict:
    metric: str
    verdict: str
    expected: object = None
    measured: object = None
    rule: str = ""
    why: str = ""
    source: str = ""
    basis: str = ""  # paper / reference / harness; "" when no expectation covers the metric
    values: list = field(default_factory=list)
    band: tuple | None = None  # (low, high) the rule allows, for plots; a None side is unbounded
    paper: str = ""  # the paper's own value when it is off this run's scope (shown beside a blessed check)
    paper_holds: str = ""  # where that off-scope paper value holds ("GPU RTX 4060, scale full")
    checked: bool = False  # a rule was applied (CONTAMINATED can also mark an unjudged noisy measurement)


@dataclass
class RowVerdict:
    paper: str
    row: str
    run_id: str
    run_dir: str
    scale: str
    hardware: str
    gpu_models: list
    verdict: str
    why: str
    metrics: list[MetricVerdict]
    basis: str = ""  # the strongest basis among the row's checked metrics
    harness: str = ""  # why this row's scale only exercises the pack's plumbing, when it does
    image: str | None = None
    started_at: str | None = None  # ISO-8601 UTC, from the run record
    finished_at: str | None = None

    @property
    def duration_s(self) -> float | None:
        from datetime import datetime

        try:
            return (
                datetime.fromisoformat(self.finished_at) - datetime.fromisoformat(self.started_at)
            ).total_seconds()
        except (TypeError, ValueError):
            return None

    def to_json(self) -> dict:
        """asdict, with NaN/inf written as null and named in each metric's `non_finite` note (valid JSON)."""
        d = asdict(self)
        for m in d["metrics"]:
            notes = []
            m["measured"] = _finite(m["measured"], "measured", notes)
            m["values"] = _finite(m["values"], "values", notes)
            m["expected"] = _finite(m["expected"], "expected", notes)
            if notes:
                m["non_finite"] = "written as null: " + ", ".join(notes)
        return _finite(d, "row", [])


def _finite(v, where: str, notes: list):
    if isinstance(v, float) and not math.isfinite(v):
        notes.append(f"{where}={v}")
        return None
    if isinstance(v, (list, tuple)):
        return [_finite(x, f"{where}[{i}]", notes) for i, x in enumerate(v)]
    if isinstance(v, dict):
        return {k: _finite(x, f"{where}.{k}", notes) for k, x in v.items()}
    return v


def row_verdict(metric_verdicts: list[MetricVerdict]) -> str:
    present = {m.verdict for m in metric_verdicts}
    for v in ORDER:
        if v in present and v != "NOT-APPLICABLE":
            return v
    return "NOT-APPLICABLE"


def row_basis(metric_verdicts: list[MetricVerdict], verdict: str) -> str:
    """The strongest basis (paper > reference > harness) among the metrics that carry the row's verdict:
    a FAIL row whose only failure is a regression check is `reference`, even beside a passing paper value.
    '' for a NOT-APPLICABLE row (nothing was judged)."""
    pool = [m for m in metric_verdicts if m.verdict == verdict and verdict != "NOT-APPLICABLE"]
    return next((b for b in BASES if any(m.basis == b for m in pool)), "")


def fmt_value(v) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def _source_text(src) -> str:
    if src.blessed_run:
        return f"blessed run {src.blessed_run}"
    parts = [src.seed, src.table, f"entry {src.entry}" if src.entry else None]
    return ", ".join(p for p in parts if p)


def _lookup(table: dict, metric: str):
    """errors / not_applicable are keyed by metric name or by its prefix ('compress' for 'compress.tok_s')."""
    if metric in table:
        return table[metric]
    for key, msg in table.items():
        if metric.startswith(key + "."):
            return msg
    return None


def verify_run(run_dir: Path, integrity: bool = True) -> RowVerdict:
    """Judge one run directory against expected/. A damaged run.json or an unfinished run is this row's
    ERROR (other rows are still judged); then integrity: a changed byte, or run.json's aggregates
    disagreeing with the per-repetition files, FAILs naming the file."""
    rd = RunDir(run_dir)
    try:
        run = rd.record.as_dict()
    except RunRecordError as e:  # one damaged run.json is that row's ERROR; the other rows are judged
        in_layout = len(run_dir.parts) >= 3 and re.match(
            r"\d{8}T\d{6}Z-", run_dir.name
        )  # runs/<paper>/<row>/<id>
        paper, row = (run_dir.parts[-3], run_dir.parts[-2]) if in_layout else ("?", "?")
        return RowVerdict(
            paper=paper,
            row=row,
            run_id=run_dir.name,
            run_dir=str(run_dir),
            scale="?",
            hardware="?",
            gpu_models=[],
            verdict="ERROR",
            why=str(e),
            metrics=[],
        )
    base = dict(
        paper=run.get("paper", "?"),
        row=run.get("row", "?"),
        run_id=run.get("run_id", run_dir.name),
        run_dir=str(run_dir),
        scale=run.get("scale", "?"),
        hardware=run.get("hardware", "?"),
        gpu_models=run.get("gpu_models") or [],
        image=run.get("image"),
        started_at=run.get("started_at"),
        finished_at=run.get("finished_at"),
    )
    unfinished = rd.unfinished()
    if unfinished:
        return RowVerdict(**base, verdict="ERROR", why=unfinished, metrics=[])
    if integrity:
        problems = rd.integrity()
        if problems:
            return RowVerdict(**base, verdict="FAIL", why="integrity: " + "; ".join(problems), metrics=[])
    try:
        manifest, row = find_row(f"{run['paper']}:{run['row']}")
    except ManifestError as e:
        return RowVerdict(**base, verdict="ERROR", why=str(e), metrics=[])
    ef = exp_mod.for_row(run["paper"], run["row"])
    if run.get("status") != "complete":
        msg = run.get("errors", {}).get("__run__") or f"run status is '{run.get('status')}'"
        return RowVerdict(**base, verdict="ERROR", why=msg, metrics=[])
    return build_row(base, judge_metrics(run, row, ef), run, harness_reason(row, run.get("scale")))


def harness_reason(row, scale: str | None) -> str:
    """The manifest's sentence saying this row's scale only exercises the pack's plumbing, or ''."""
    prof = row.scales.get(scale) if scale else None
    return getattr(prof, "harness", "") or ""


@dataclass(frozen=True)
class Choice:
    """The expectation a metric is judged by, the rule in force, and whether it applies here."""

    expectation: exp_mod.Expectation | None
    rule: Rule | None
    judged: bool  # False: the expectation is off this run's scope with no weaker rule (shown, not checked)
    off_scope: str | None = None  # why the first expectation does not hold here
    weaker: bool = False  # judged by the expectation's declared off-scope rule


def choose(found: exp_mod.MetricLookup, run: dict) -> Choice:
    """In-scope expectation first; else a declared weaker off-scope rule; else the first, unjudged."""
    for c in found.candidates:
        if c.expectation.scope.mismatch(run) is None:
            return Choice(c.expectation, c.rule, True)
    if not found.candidates:
        return Choice(None, None, False)
    first = found.candidates[0]
    off = first.expectation.scope.mismatch(run)
    weak = [e for e in found.expectations if e.off_scope is not None]
    if weak:
        return Choice(weak[0], weak[0].off_scope, True, off, weaker=True)
    return Choice(first.expectation, first.rule, False, off)


def basis_of(e: exp_mod.Expectation, harness: str, judged: bool) -> str:
    if harness and judged:
        return "harness"
    return "paper" if e.source.seed else "reference"


def metric_names(run: dict, ef) -> list[str]:
    """Measured metrics, then expected names the run did not produce, then in-scope globs nothing matched."""
    names = list(run.get("metrics", {}))
    for e in ef.expectations if ef else []:
        if any(ch in e.metric for ch in "*?["):
            if e.scope.mismatch(run) is None and not any(fnmatch.fnmatchcase(n, e.metric) for n in names):
                names.append(e.metric)
        elif e.metric not in names:
            names.append(e.metric)
    return list(dict.fromkeys(names))


def judge_metrics(run: dict, row, ef) -> list[MetricVerdict]:
    harness = harness_reason(row, run.get("scale"))
    out = [judge_metric(name, run, row, ef, harness) for name in metric_names(run, ef)]
    return out + unjudged_errors(run, out)


def judge_metric(name: str, run: dict, row, ef, harness: str = "") -> MetricVerdict:
    found = exp_mod.lookup(ef, row, name)  # the one call into expected/ and the manifest for this metric
    exps, spec, aggregate = found.expectations, found.spec, found.aggregate
    entry = run.get("metrics", {}).get(name)
    c = choose(found, run)
    mv = MetricVerdict(metric=name, verdict="NOT-APPLICABLE")
    if c.expectation is not None:
        e = c.expectation
        mv.expected, mv.source, mv.basis = e.value, _source_text(e.source), basis_of(e, harness, c.judged)
        mv.rule = (c.rule.describe() if c.rule else "none") + (" (off-scope weaker rule)" if c.weaker else "")
    _note_paper_off_scope(mv, exps, run, c)
    if entry is None:
        return _unmeasured(mv, name, run, c)
    mv.values = entry["values"]
    mv.measured = shown_value(entry, aggregate)
    contamination = run.get("contamination") or []
    sensitive = bool(contamination and spec is not None and spec.contamination_sensitive)
    if not exps or not c.judged:
        mv.why = (
            "no expectation recorded for this metric (measured only; 'pack bless' records one)"
            if not exps
            else c.off_scope or "off scope"
        )
        if sensitive:  # the run itself says this measurement is noise: a reviewer must not read it as clean
            mv.verdict, mv.basis = "CONTAMINATED", ""  # nothing was judged: no basis to count
            mv.why = (
                f"{mv.why}; measured under contamination: {'; '.join(contamination)}; rerun on a quiet GPU"
            )
        return mv
    if c.rule is None:
        mv.verdict, mv.why = (
            "ERROR",
            f"no tolerance for '{name}': add one to the expectation or the manifest's metrics",
        )
        return mv
    try:
        chk = c.rule.check(c.expectation.value, entry["values"], aggregate, _reference(c, run))
    except (TypeError, ValueError, ArithmeticError) as ex:  # ArithmeticError: overflow, decimal limits
        mv.verdict, mv.why = "ERROR", f"cannot apply the {c.rule.kind} rule: {ex or type(ex).__name__}"
        return mv
    mv.measured, mv.band, mv.checked = chk.measured, chk.band, True
    mv.verdict = "PASS" if chk.passed else "FAIL"
    mv.why = chk.why + (f"; {c.off_scope}, so the declared weaker rule applies" if c.weaker else "")
    if sensitive:
        mv.why = (
            f"would be {mv.verdict} ({chk.why}); contaminated: "
            + "; ".join(contamination)
            + "; close co-resident GPU work and rerun"
        )
        mv.verdict = "CONTAMINATED"
    return mv


def shown_value(entry: dict, aggregate: str):
    """The value shown before (or without) a check: the run's aggregate, else the first repetition."""
    if "mean" not in entry:
        return entry["values"][0]
    return entry.get(aggregate, entry["values"][0 if aggregate == "first" else -1])


def _reference(c: Choice, run: dict) -> list | None:
    """A stat rule's other sample: another metric of this run, or the expectation's own `values`."""
    if isinstance(c.rule, Stat) and c.rule.against_metric:
        other = run.get("metrics", {}).get(c.rule.against_metric)
        return other["values"] if other else []
    return c.expectation.values


def _note_paper_off_scope(mv: MetricVerdict, exps: list, run: dict, c: Choice) -> None:
    """A paper value that does not hold here is named beside whatever is checked instead."""
    if c.judged and c.expectation is not None and c.expectation.source.seed and not c.weaker:
        return
    for x in exps:
        why = x.scope.mismatch(run)
        if x.source.seed and why is not None:
            mv.paper = (
                f"paper value {fmt_value(x.value)} ({_source_text(x.source)}) is NOT-APPLICABLE here: {why}"
            )
            mv.paper_holds = x.scope.describe()
            return


def _unmeasured(mv: MetricVerdict, name: str, run: dict, c: Choice) -> MetricVerdict:
    err, why_na = _lookup(run.get("errors", {}), name), _lookup(run.get("not_applicable", {}), name)
    if err:
        mv.verdict, mv.why = "ERROR", err
    elif why_na:
        mv.why = why_na
    elif c.judged:
        glob = any(ch in name for ch in "*?[")
        mv.verdict = "MISSING"
        mv.why = (
            "expected in this scope but no produced metric matches this pattern"
            if glob
            else "expected in this scope but the run did not produce it"
        )
    else:
        mv.why = c.off_scope or "not measured"
    return mv


def unjudged_errors(run: dict, judged: list[MetricVerdict]) -> list[MetricVerdict]:
    """An arm or metric family that failed without any judged metric under it (e.g. an engine arm of a
    row whose values are not yet blessed) must still show as ERROR, never vanish from the verdict."""
    covered = [m.metric for m in judged if m.verdict == "ERROR"]
    return [
        MetricVerdict(metric=key, verdict="ERROR", why=msg)
        for key, msg in (run.get("errors") or {}).items()
        if key != "__run__" and not any(c == key or c.startswith(key + ".") for c in covered)
    ]


def build_row(base: dict, verdicts: list[MetricVerdict], run: dict, harness: str = "") -> RowVerdict:
    """The row's verdict, basis and one-line why; a row whose variable never ran is NOT-APPLICABLE."""
    row_na = (run.get("not_applicable") or {}).get(ROW_KEY)
    if row_na:
        for m in verdicts:
            if m.verdict in ("PASS", "MISSING", "CONTAMINATED"):
                m.why = f"not counted: {row_na} (would be {m.verdict}: {m.why})"
                m.verdict, m.checked = "NOT-APPLICABLE", False
    verdict = row_verdict(verdicts)
    why = row_na if row_na and verdict == "NOT-APPLICABLE" else _row_why(verdict, verdicts, run)
    return RowVerdict(
        **base,
        verdict=verdict,
        why=why,
        metrics=verdicts,
        basis=row_basis(verdicts, verdict),
        harness=harness,
    )


def _row_why(verdict: str, verdicts: list[MetricVerdict], run: dict) -> str:
    if verdict == "PASS":
        passed = [m for m in verdicts if m.verdict == "PASS"]
        by = ", ".join(
            f"{sum(m.basis == b for m in passed)} {b}" for b in BASES if any(m.basis == b for m in passed)
        )
        na = sum(m.verdict == "NOT-APPLICABLE" for m in verdicts)
        return f"{len(passed)} metric(s) pass ({by})" + (f", {na} not applicable" if na else "")
    if verdict == "NOT-APPLICABLE":
        reasons = sorted({m.why for m in verdicts if m.why})
        if not verdicts:
            return "no metric measured or expected"
        return reasons[0] if len(reasons) == 1 else f"{len(verdicts)} metrics off scope or unmeasurable here"
    if verdict == "CONTAMINATED":
        return "contaminated: " + "; ".join(run.get("contamination", [])) + " — rerun on a quiet GPU"
    bad = [m for m in verdicts if m.verdict == verdict]
    return f"{len(bad)} metric(s) {verdict}: " + ", ".join(m.metric for m in bad[:6])


def exit_code(rows: list[RowVerdict]) -> int:
    return 0 if all(r.verdict in PASSING for r in rows) else 1
