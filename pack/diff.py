"""`pack diff A B`: two runs (or bundles, or runs trees) side by side, per metric and per environment fact.

For each row both sides ran: every metric's A and B value (the row's aggregate over repetitions), the
delta, and whether B lies within the metric's tolerance of A — the rule `pack verify` would apply (the
in-scope expectation's own, else the manifest's). Beside it, what differs between the two machines
(the fields `pack env --diff` shows). This is how an author's L40S run meets a reviewer's H100 run.
"""

from __future__ import annotations

import json
from contextlib import ExitStack, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from . import paths
from .errors import IntegrityError, PackError
from .rundir import RunDir, latest

if TYPE_CHECKING:
    from .provenance import FieldDiff


@dataclass
class Side:
    label: str
    runs: dict[tuple[str, str], Path]  # (paper, row) -> newest run folder
    root: Path | None = None  # the manifests/expected to judge with (a bundle's own), else the project's
    skipped: list[str] = field(default_factory=list)  # damaged runs, with why


@dataclass
class MetricDiff:
    metric: str
    a: object
    b: object
    delta: float | None
    rel: float | None
    rule: str
    within: bool | None  # None: no rule, or a value that is not a number
    why: str = ""


@dataclass
class RowDiff:
    paper: str
    row: str
    a_run: str
    b_run: str
    metrics: list[MetricDiff]
    env: list[FieldDiff]  # provenance.FieldDiff: what differs between the two runs' env.json
    note: str = ""  # e.g. the two runs are of different scales, so their numbers measure different things


def open_side(target: str, label: str, stack: ExitStack, limits=None) -> Side:
    """A run folder, a runs tree, a paper's runs or a bundle -> its newest run per row."""
    p = Path(target)
    if p.is_file():
        from . import bundle

        opened, tmp = bundle.safe_open(p, limits)
        stack.callback(tmp.cleanup)
        runs = {
            (str(r.meta.get("paper")), str(r.meta.get("row"))): r.path for r in opened.runs if not r.problems
        }
        skipped = [
            f"{r.meta.get('paper')}:{r.meta.get('row')}: damaged ({'; '.join(r.problems)})"
            for r in opened.runs
            if r.problems
        ]
        root = opened.root / "context" if (opened.root / "context" / "manifests").is_dir() else None
        return Side(label, runs, root, skipped)
    if not p.is_dir():
        root = paths.runs_dir() / target
        if not root.is_dir():
            raise PackError(
                f"{target}: no such run folder, runs tree or bundle (nor runs of a paper of that name "
                f"under {paths.runs_dir()})"
            )
        p = root
    side = Side(label, {})
    for d in (rd.path for rd in latest(p)):
        try:
            problems = RunDir(d).integrity()  # checksums and run.json against its repetitions
        except IntegrityError as e:
            problems = [str(e)]
        run = _read(RunDir(d).run_json)
        if problems or run is None:
            side.skipped.append(f"{d}: damaged ({'; '.join(problems) or 'run.json unreadable'})")
            continue
        side.runs[(run.get("paper", "?"), run.get("row", "?"))] = d
    return side


def _read(path: Path) -> dict | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _number(v) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def diff_row(a_dir: Path, b_dir: Path, root: Path | None) -> RowDiff:
    from . import expected as exp_mod
    from .manifest import find_row
    from .provenance import diff as env_diff
    from .tolerance import describe_rule
    from .verify import shown_value

    a, b = _read(RunDir(a_dir).run_json), _read(RunDir(b_dir).run_json)
    with paths.using_root(root) if root is not None else nullcontext():
        try:
            _, row = find_row(f"{a['paper']}:{a['row']}")
        except PackError:
            row = None
        ef = exp_mod.for_row(a["paper"], a["row"]) if row is not None else None
    metrics = []
    ma, mb = a.get("metrics", {}), b.get("metrics", {})
    for name in list(ma) + [n for n in mb if n not in ma]:
        ea, eb = ma.get(name), mb.get(name)
        found = exp_mod.lookup(ef, row, name) if row is not None else None
        agg = found.aggregate if found else "mean"
        va = shown_value(ea, agg) if ea else None
        vb = shown_value(eb, agg) if eb else None
        rule = None
        if found is not None:
            in_scope = [c.rule for c in found.candidates if c.expectation.scope.mismatch(a) is None]
            rule = in_scope[0] if in_scope else (found.spec.tolerance if found.spec else None)
        fa, fb = _number(va), _number(vb)
        delta = fb - fa if fa is not None and fb is not None else None
        rel = delta / abs(fa) if delta is not None and fa else None
        md = MetricDiff(name, va, vb, delta, rel, describe_rule(rule) if rule else "no rule", None)
        if ea is None or eb is None:
            md.why = "only in " + ("B" if ea is None else "A")
        elif rule is not None and rule.kind != "range":
            try:  # B judged with A as the expected value (a stat rule: A's repetitions as the sample)
                chk = rule.check(va, eb["values"], agg, ea["values"] if rule.kind == "stat" else None)
                md.within, md.why = chk.passed, chk.why
            except (TypeError, ValueError) as e:
                md.why = f"cannot compare: {e}"
        elif rule is not None:  # a range is not a distance: say whether each side lies in it
            try:
                ok_a, ok_b = (rule.check(None, e["values"], agg).passed for e in (ea, eb))
            except (TypeError, ValueError) as e:
                md.why = f"cannot compare: {e}"
            else:
                md.within = ok_a == ok_b
                md.why = f"A {'inside' if ok_a else 'outside'}, B {'inside' if ok_b else 'outside'} the range"
        metrics.append(md)
    env_a, env_b = _read(RunDir(a_dir).env_json) or {}, _read(RunDir(b_dir).env_json) or {}
    note = ""
    if a.get("scale") != b.get("scale") or a.get("params_hash") != b.get("params_hash"):
        note = (
            f"A ran scale {a.get('scale')} (params {str(a.get('params_hash'))[:8]}), "
            f"B scale {b.get('scale')} "
            f"(params {str(b.get('params_hash'))[:8]}): different settings, so a difference is expected"
        )
    return RowDiff(
        a["paper"],
        a["row"],
        a.get("run_id", a_dir.name),
        b.get("run_id", b_dir.name),
        metrics,
        env_diff(env_a, env_b),
        note,
    )


def compare(a: Side, b: Side) -> dict:
    rows = [diff_row(a.runs[k], b.runs[k], a.root or b.root) for k in sorted(set(a.runs) & set(b.runs))]
    return {
        "schema": "pack.diff/1",
        "a": a.label,
        "b": b.label,
        "rows": [asdict(r) for r in rows],
        "only_in_a": [f"{p}:{r}" for p, r in sorted(set(a.runs) - set(b.runs))],
        "only_in_b": [f"{p}:{r}" for p, r in sorted(set(b.runs) - set(a.runs))],
        "skipped": [f"A {s}" for s in a.skipped] + [f"B {s}" for s in b.skipped],
    }


def beyond(doc: dict) -> int:
    """How many compared metrics lie outside their tolerance."""
    return sum(m["within"] is False for r in doc["rows"] for m in r["metrics"])


def _fmt(v) -> str:
    if v is None:
        return "—"
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def render(doc: dict, fancy: bool | None = None) -> str:
    """The comparison as text: per row a metric table and the environment differences (pack/console.py
    draws them to fit the terminal when stdout is one, fancy=None)."""
    from .console import is_terminal, prose, table

    fancy = is_terminal() if fancy is None else fancy
    out: list[str] = []

    def say(*lines: str) -> None:  # sentences wrap to a terminal's width; tables are drawn to fit it
        out.append(prose(lines, fancy=fancy, indent=4))

    say(f"A: {doc['a']}", f"B: {doc['b']}")
    for r in doc["rows"]:
        say("", f"{r['paper']}:{r['row']}   A {r['a_run']}   B {r['b_run']}")
        if r["note"]:
            say(f"  note: {r['note']}")
        cells = []
        for m in r["metrics"]:
            within = {True: "yes", False: "NO", None: "—"}[m["within"]]
            rel = f"{m['rel'] * 100:+.3g}%" if m["rel"] is not None else "—"
            delta = f"{m['delta']:+.4g}" if m["delta"] is not None else "—"
            rule = m["rule"] + (f" — {m['why']}" if m["why"] and m["within"] is not True else "")
            cells.append([m["metric"], _fmt(m["a"]), _fmt(m["b"]), delta, rel, within, rule])
        out.append(
            table(["METRIC", "A", "B", "DELTA", "REL", "WITHIN", "RULE"], cells, fancy=fancy, indent=2)
        )
        if r["env"]:
            say("  environment (A -> B):")
            env = [[k, x, y] for k, x, y in r["env"]]
            out.append(table(["FIELD", "A", "B"], env, wrap=["A", "B"], fancy=fancy, indent=4))
        else:
            say("  environment: identical")
    for key, what in (("only_in_a", "only in A"), ("only_in_b", "only in B"), ("skipped", "not compared")):
        if doc[key]:
            say("", f"{what}:", *[f"  {x}" for x in doc[key]])
    n = sum(len(r["metrics"]) for r in doc["rows"])
    say("", f"{len(doc['rows'])} row(s), {n} metric(s) compared, {beyond(doc)} outside tolerance")
    return "\n".join(out)
