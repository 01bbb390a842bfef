"""Verdicts: each metric of each run against its expectation, then one verdict per row.

PASS            measured within the rule, in the expectation's scope
FAIL            measured outside the rule (or the run's files do not match their checksums)
CONTAMINATED    the run reported noise or co-resident GPU work: rerun, not a failure
NOT-APPLICABLE  off-scope (other hardware, scale, image, checkpoint) or not measurable here, with why
MISSING         an in-scope expectation with no measured value and no recorded reason
ERROR           the run, or the part of it that should produce the metric, failed
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import expected as exp_mod
from . import fsio
from .errors import IntegrityError, ManifestError
from .manifest import find_row
from .tolerance import describe_rule

ORDER = ["ERROR", "FAIL", "MISSING", "CONTAMINATED", "PASS", "NOT-APPLICABLE"]
PASSING = {"PASS", "NOT-APPLICABLE"}


@dataclass
class MetricVerdict:
    metric: str
    verdict: str
    expected: object = None
    measured: object = None
    rule: str = ""
    why: str = ""
    source: str = ""
    values: list = field(default_factory=list)
    band: tuple | None = None  # (low, high) the rule allows, for plots
    paper: str = ""  # the paper's own value when it is off this run's scope (shown beside a blessed check)


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

    def to_json(self) -> dict:
        return asdict(self)


def row_verdict(metric_verdicts: list[MetricVerdict]) -> str:
    present = {m.verdict for m in metric_verdicts}
    if not present:
        return "NOT-APPLICABLE"
    for v in ORDER:
        if v in present and v != "NOT-APPLICABLE":
            return v
    return "NOT-APPLICABLE"


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


def _value(entry: dict, aggregate: str):
    if aggregate in entry:
        return entry[aggregate]
    if aggregate == "first":
        return entry["values"][0]
    return entry["values"][-1]


def check(rule, expected, entry: dict, aggregate: str, other_values=None, sample=None) -> tuple[bool, object, str, tuple | None]:
    """(passed, measured, explanation, band) for one metric under one rule."""
    values = entry["values"]
    k = rule.kind
    if k == "exact":
        bad = [v for v in values if v != expected]
        return (not bad, values[0] if len(set(map(str, values))) == 1 else values,
                "all repetitions identical to expected" if not bad else f"{len(bad)}/{len(values)} repetitions differ", None)
    if k == "decimals":
        want = round(float(expected), rule.places)
        got = [round(float(v), rule.places) for v in values]
        bad = [g for g in got if g != want]
        measured = got[0] if len(set(got)) == 1 else got
        why = (f"every repetition rounds to {want:.{rule.places}f}" if not bad
               else f"rounded to {rule.places} decimals: {', '.join(f'{g:.{rule.places}f}' for g in got)} vs {want:.{rule.places}f}")
        half = 0.5 * 10 ** (-rule.places)
        return (not bad, measured, why, (want - half, want + half))
    measured = _value(entry, aggregate)
    if k in ("abs", "rel"):
        exp_f, got = float(expected), float(measured)
        allowed = rule.value if k == "abs" else rule.value * abs(exp_f)
        diff = got - exp_f
        ok = math.isfinite(got) and abs(diff) <= allowed * (1 + 1e-12)
        rel = f" ({diff / exp_f * 100:+.3g}%)" if exp_f else ""
        return ok, measured, f"{aggregate} {got:.6g} differs by {diff:+.4g}{rel}; allowed ±{allowed:.4g}", (exp_f - allowed, exp_f + allowed)
    if k == "range":
        got = float(measured)
        lo_ok = rule.min is None or (got > rule.min if rule.exclusive else got >= rule.min)
        hi_ok = rule.max is None or (got < rule.max if rule.exclusive else got <= rule.max)
        return lo_ok and hi_ok, measured, f"{aggregate} {got:.6g} {'inside' if lo_ok and hi_ok else 'outside'} {describe_rule(rule)}", (rule.min, rule.max)
    if k == "stat":
        ref = sample if rule.against == "expected" else other_values
        return _stat(rule, [float(v) for v in values], [float(v) for v in (ref or [])])
    raise ValueError(f"unknown tolerance kind {k}")


def _stat(rule, a: list[float], b: list[float]):
    from scipy import stats  # only when a stat rule is actually checked

    if len(a) < 2 or len(b) < 2:
        return False, a, f"a {rule.test} test needs at least 2 values on each side (have {len(a)} and {len(b)})", None
    alt = {"no-difference": "two-sided", "greater": "greater", "less": "less"}[rule.expect]
    if rule.test == "welch":
        res = stats.ttest_ind(a, b, equal_var=False, alternative=alt)
    else:
        res = stats.mannwhitneyu(a, b, alternative=alt)
    p = float(res.pvalue) if not math.isnan(res.pvalue) else 1.0
    if rule.expect == "no-difference":
        ok = p >= rule.alpha
        why = f"{rule.test} p={p:.3g} {'≥' if ok else '<'} α={rule.alpha:g}: {'no significant difference' if ok else 'significant difference'}"
    else:
        ok = p < rule.alpha
        why = f"{rule.test} p={p:.3g} {'<' if ok else '≥'} α={rule.alpha:g}: {'significantly' if ok else 'not significantly'} {rule.expect}"
    mean_a = sum(a) / len(a)
    return ok, mean_a, why, None


def verify_run(run_dir: Path, integrity: bool = True) -> RowVerdict:
    """Judge one run directory against expected/ (integrity first: a changed byte fails, naming the file)."""
    run = _load_run(run_dir)
    base = dict(paper=run.get("paper", "?"), row=run.get("row", "?"), run_id=run.get("run_id", run_dir.name),
                run_dir=str(run_dir), scale=run.get("scale", "?"), hardware=run.get("hardware", "?"),
                gpu_models=run.get("gpu_models") or [])
    if integrity:
        problems = fsio.check_sums(run_dir)
        if problems:
            return RowVerdict(**base, verdict="FAIL", why="integrity: " + "; ".join(problems[:5]), metrics=[])
    try:
        manifest, row = find_row(f"{run['paper']}:{run['row']}")
    except ManifestError as e:
        return RowVerdict(**base, verdict="ERROR", why=str(e), metrics=[])
    ef = exp_mod.for_row(run["paper"], run["row"])
    if run.get("status") != "complete":
        msg = run.get("errors", {}).get("__run__") or f"run status is '{run.get('status')}'"
        hint = "" if run.get("status") == "error" else "; finish it with 'pack run --resume'"
        return RowVerdict(**base, verdict="ERROR", why=msg + hint, metrics=[])
    verdicts = judge_metrics(run, row, ef)
    verdict = row_verdict(verdicts)
    why = _row_why(verdict, verdicts, run)
    return RowVerdict(**base, verdict=verdict, why=why, metrics=verdicts)


def judge_metrics(run: dict, row, ef) -> list[MetricVerdict]:
    measured: dict = run.get("metrics", {})
    errors, na, contamination = run.get("errors", {}), run.get("not_applicable", {}), run.get("contamination", [])
    expectations = list(ef.expectations) if ef else []
    names = list(measured)
    for e in expectations:  # expected metrics the run did not produce (exact names only)
        if not any(ch in e.metric for ch in "*?[") and e.metric not in names:
            names.append(e.metric)
    out = []
    for name in names:
        exps = ef.for_metric(name) if ef else []
        spec = exp_mod.metric_spec(row, name)
        aggregate = spec.aggregate if spec else "mean"
        entry = measured.get(name)
        in_scope = [e for e in exps if e.scope.mismatch(run) is None]
        chosen = in_scope[0] if in_scope else None
        off_reason = exps[0].scope.mismatch(run) if exps and not in_scope else None
        mv = MetricVerdict(metric=name, verdict="NOT-APPLICABLE")
        paper_off = [x for x in exps if x.source.seed and x.scope.mismatch(run) is not None]
        if paper_off and (chosen is None or not chosen.source.seed):
            x = paper_off[0]
            mv.paper = f"paper value {fmt_value(x.value)} ({_source_text(x.source)}) is NOT-APPLICABLE here: {x.scope.mismatch(run)}"
        if entry is not None:
            mv.values = entry["values"]
            mv.measured = _value(entry, aggregate) if "mean" in entry else entry["values"][0]
        if entry is None:
            err, why_na = _lookup(errors, name), _lookup(na, name)
            if err:
                mv.verdict, mv.why = "ERROR", err
            elif why_na:
                mv.why = why_na
            elif chosen is not None:
                mv.verdict, mv.why = "MISSING", "expected in this scope but the run did not produce it"
            else:
                mv.why = off_reason or "not measured"
            if chosen is not None or exps:
                e = chosen or exps[0]
                mv.expected, mv.rule, mv.source = e.value, describe_rule(exp_mod.rule_for(e, row, name)), _source_text(e.source)
            out.append(mv)
            continue
        if not exps:
            mv.why = "no expectation recorded for this metric (measured only; 'pack bless' records one)"
            out.append(mv)
            continue
        e = chosen
        rule = exp_mod.rule_for(e, row, name) if e else None
        weaker = False
        if e is None:
            weak = [x for x in exps if x.off_scope is not None]
            if not weak:
                mv.why, mv.expected, mv.source = off_reason, exps[0].value, _source_text(exps[0].source)
                mv.rule = describe_rule(exp_mod.rule_for(exps[0], row, name))
                out.append(mv)
                continue
            e, rule, weaker = weak[0], weak[0].off_scope, True
        mv.expected, mv.rule, mv.source = e.value, describe_rule(rule) + (" (off-scope weaker rule)" if weaker else ""), _source_text(e.source)
        other = None
        if rule.kind == "stat" and rule.against.startswith("metric:"):
            other_entry = measured.get(rule.against[7:])
            other = other_entry["values"] if other_entry else []
        try:
            ok, got, why, band = check(rule, e.value, entry, aggregate, other_values=other, sample=e.values)
        except (TypeError, ValueError) as ex:
            mv.verdict, mv.why = "ERROR", f"cannot apply {rule.kind} rule: {ex}"
            out.append(mv)
            continue
        mv.measured, mv.band = got, band
        mv.verdict = "PASS" if ok else "FAIL"
        mv.why = why + (f"; {off_reason}, so the declared weaker rule applies" if weaker else "")
        if contamination and spec is not None and spec.contamination_sensitive:
            mv.why = f"would be {mv.verdict} ({why}); contaminated: " + "; ".join(contamination) + "; close co-resident GPU work and rerun"
            mv.verdict = "CONTAMINATED"
        out.append(mv)
    # An arm or metric family that failed without any judged metric under it (e.g. an engine arm of a
    # row whose values are not yet blessed) must still show as ERROR, never vanish from the verdict.
    covered = [m.metric for m in out if m.verdict == "ERROR"]
    for key, msg in errors.items():
        if key != "__run__" and not any(c == key or c.startswith(key + ".") for c in covered):
            out.append(MetricVerdict(metric=key, verdict="ERROR", why=msg))
    return out


def _row_why(verdict: str, verdicts: list[MetricVerdict], run: dict) -> str:
    if verdict == "PASS":
        n = sum(m.verdict == "PASS" for m in verdicts)
        na = sum(m.verdict == "NOT-APPLICABLE" for m in verdicts)
        return f"{n} metric(s) pass" + (f", {na} not applicable" if na else "")
    if verdict == "NOT-APPLICABLE":
        reasons = sorted({m.why for m in verdicts if m.why})
        return reasons[0] if len(reasons) == 1 else f"{len(verdicts)} metrics off scope or unmeasurable here"
    if verdict == "CONTAMINATED":
        return "contaminated: " + "; ".join(run.get("contamination", [])) + " — rerun on a quiet GPU"
    bad = [m for m in verdicts if m.verdict == verdict]
    return f"{len(bad)} metric(s) {verdict}: " + ", ".join(m.metric for m in bad[:6])


def _load_run(run_dir: Path) -> dict:
    path = run_dir / "run.json"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise IntegrityError(f"{path}: missing; this is not a finished run directory (or the file was deleted)") from None
    try:
        return json.loads(text)
    except ValueError:
        raise IntegrityError(f"{path}: truncated or not JSON; the run was interrupted while writing, or the file was damaged") from None


def latest_runs(root: Path) -> list[Path]:
    """The newest run directory of every row found under root (a runs/ tree, a paper or a row folder)."""
    if (root / "run.json").is_file():
        return [root]
    by_row: dict[Path, Path] = {}
    for rj in sorted(root.rglob("run.json")):
        d = rj.parent
        if ".tmp" in d.name or "reps" in d.parts[len(root.parts):]:
            continue
        by_row[d.parent] = max(by_row.get(d.parent, d), d, key=lambda p: p.name)
    return [by_row[k] for k in sorted(by_row)]


def exit_code(rows: list[RowVerdict]) -> int:
    return 0 if all(r.verdict in PASSING for r in rows) else 1
