"""Verdicts rendered for people and machines: terminal table, Markdown, JSON and JUnit XML here; the
self-contained HTML page with its charts in report_html.py.

Every view leads with the same headline: checks counted by evidence basis (paper / reference /
harness), so a page full of PASS never reads as "the papers reproduced" when it compared against
this pack's own blessed runs or ran stand-in scripts. Failures come first.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from xml.sax.saxutils import escape, quoteattr

from .verify import BASES, CHECKED, ORDER, RowVerdict

MEANING = {
    "PASS": "within the rule of its expectation, in that expectation's scope; what it shows depends on "
    "its basis",
    "FAIL": "measured outside the rule, or the run's files do not match their checksums",
    "CONTAMINATED": "the measurement saw noise or co-resident GPU work; rerun it, this is not a failure",
    "NOT-APPLICABLE": "off-scope (other hardware, scale, image, checkpoint), not measurable here, or the "
    "row's "
    "variable never ran; the reason is given",
    "MISSING": "an expected metric (or pattern) that the run did not produce",
    "ERROR": "the run, or the part that should produce the metric, failed",
}
BASIS_MEANING = {
    "paper": "compared with a value transcribed from the paper (seed), in the scope where the paper "
    "measured it",
    "reference": "compared with a blessed run of this pack: a regression/consistency check, not the "
    "paper's number",
    "harness": "a stand-in that exercises the pack's own plumbing (the manifest says why); says nothing "
    "about the paper",
}


def fmt(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, list):
        return "[" + ", ".join(fmt(x) for x in v[:4]) + (", …" if len(v) > 4 else "") + "]"
    return str(v)


def failures_first(rows: list[RowVerdict]) -> list[RowVerdict]:
    return sorted(rows, key=lambda r: ORDER.index(r.verdict) if r.verdict in ORDER else 0)


def basis_counts(rows: list[RowVerdict]) -> dict:
    """{basis: {PASS, FAIL, CONTAMINATED}} over checked metrics, plus paper values that do not hold here."""
    out: dict = {b: {v: 0 for v in sorted(CHECKED)} for b in BASES}
    out["paper"].update(off_scope=0, not_measured=0, where_they_hold=[])
    out["paper"]["requirements_hold"] = 0
    for r in rows:
        for m in r.metrics:
            if m.basis in out and m.checked:
                out[m.basis][m.verdict] += 1
                if m.basis == "paper" and m.verdict == "PASS" and is_requirement(m):
                    out["paper"]["requirements_hold"] += 1
            if m.paper:
                out["paper"]["off_scope"] += 1
                if m.paper_holds and m.paper_holds not in out["paper"]["where_they_hold"]:
                    out["paper"]["where_they_hold"].append(m.paper_holds)
            elif m.basis == "paper" and m.verdict in ("NOT-APPLICABLE", "MISSING", "ERROR"):
                out["paper"]["not_measured"] += 1
    return out


def is_requirement(m) -> bool:
    """A seed's requirement (a bound with no number to reproduce, or a 0/1 property such as bit-exact
    repetitions or valid JSON) rather than one of the paper's measured numbers."""
    return m.expected is None or (
        m.rule == "exact" and m.expected in (0, 1) and not isinstance(m.expected, str)
    )


def _n(c: dict) -> str:
    parts = [f"{c['PASS']} pass", f"{c['FAIL']} fail"] + (
        [f"{c['CONTAMINATED']} contaminated"] if c["CONTAMINATED"] else []
    )
    return ", ".join(parts)


def headline(rows: list[RowVerdict]) -> list[str]:
    """Three lines, one per basis, then the row counts: what these verdicts are evidence of."""
    c = basis_counts(rows)
    p = c["paper"]
    where = p["where_they_hold"]
    held = f" (where they hold: {'; '.join(where[:4])}{'; …' if len(where) > 4 else ''})" if where else ""
    nm = f", {p['not_measured']} not measurable here" if p["not_measured"] else ""
    req = p["requirements_hold"]
    numbers = p["PASS"] - req
    reqs = f" and {req} of the seeds' requirements hold (bounds, bit-exactness, valid JSON)" if req else ""
    lines = [
        f"paper values: {numbers} reproduced here{reqs}, {p['FAIL']} failed, "
        f"{p['off_scope']} off scope{held}{nm}",
        f"reference checks (against a blessed run of this pack, not the paper): {_n(c['reference'])}",
        f"harness checks (stand-ins that exercise the pack's plumbing): {_n(c['harness'])}",
    ]
    if numbers == 0:
        lines.append(
            "no paper number was reproduced by these runs; their PASS verdicts are regression, "
            "harness and requirement checks"
        )
    counts = summary_counts(rows)
    lines.append("rows: " + ", ".join(f"{k} {v}" for k, v in counts.items() if v))
    return lines


def table(rows: list[RowVerdict], details: bool = True, fancy: bool | None = None) -> str:
    """The terminal table: one line per row, then one indented line per metric; the headline last.
    On a terminal (fancy=None: stdout is one) it is drawn to fit its width (pack/console.py)."""
    from .console import is_terminal

    if fancy or (fancy is None and is_terminal()):
        return _fancy_table(rows, details)
    lines = []
    w = max([len(f"{r.paper}:{r.row}") for r in rows] + [10])
    lines.append(f"{'ROW':<{w}}  {'VERDICT':<14}  {'BASIS':<9}  {'SCALE':<5}  {'HARDWARE':<10}  WHY")
    for r in failures_first(rows):
        lines.append(
            f"{r.paper + ':' + r.row:<{w}}  {r.verdict:<14}  {r.basis or '—':<9}  {r.scale:<5}  "
            f"{r.hardware:<10}  {r.why}"
        )
        if details:
            if r.harness:
                lines.append(f"    {'':<14} harness scale: {r.harness}")
            for m in r.metrics:
                basis = f" [{m.basis}]" if m.basis else ""
                lines.append(
                    f"    {m.verdict:<14} {m.metric}{basis}: measured {fmt(m.measured)}, "
                    f"expected {fmt(m.expected)} ({m.rule or 'no rule'})" + (f" — {m.why}" if m.why else "")
                )
                if m.paper:
                    lines.append(f"    {'':<14} {m.paper}")
    lines.append("")
    lines += headline(rows)
    return "\n".join(lines)


def _fancy_table(rows: list[RowVerdict], details: bool) -> str:
    """The same rows and metric lines as `table`, as one table whose WHY column folds to the terminal."""
    from .console import prose
    from .console import table as draw

    cells = []
    for r in failures_first(rows):
        cells.append([f"{r.paper}:{r.row}", r.verdict, r.basis or None, r.scale, r.hardware, r.why])
        if not details:
            continue
        if r.harness:
            cells.append(["", "", "", "", "", f"harness scale: {r.harness}"])
        for m in r.metrics:
            why = f"measured {fmt(m.measured)}, expected {fmt(m.expected)} ({m.rule or 'no rule'})"
            why += (f" — {m.why}" if m.why else "") + (f"; {m.paper}" if m.paper else "")
            cells.append([f"  {m.metric}", m.verdict, m.basis or "", "", "", why])
    headers = ["ROW", "VERDICT", "BASIS", "SCALE", "HARDWARE", "WHY"]
    return draw(headers, cells, fancy=True) + "\n\n" + prose(headline(rows), fancy=True)


def summary_counts(rows: list[RowVerdict]) -> dict:
    keys = ["PASS", "FAIL", "CONTAMINATED", "NOT-APPLICABLE", "MISSING", "ERROR"]
    return {k: sum(r.verdict == k for r in rows) for k in keys}


def to_json(rows: list[RowVerdict], meta: dict | None = None) -> str:
    """Valid JSON (NaN/inf are null with a note, never bare NaN). meta: what produced the verdicts
    (reviewer.verdict_meta: the expectations judged against, pack version, environment)."""
    doc = {
        "schema": "pack.verdicts/2",
        "generated_at": now_iso(),
        "summary": summary_counts(rows),
        "basis": basis_counts(rows),
        "headline": headline(rows),
        **(meta or {}),
        "rows": [r.to_json() for r in rows],
    }
    return json.dumps(doc, indent=2, default=str, allow_nan=False)


def markdown(rows: list[RowVerdict]) -> str:
    out = ["# Reproduction report", "", f"Generated {now_iso()}.", ""]
    out += [f"- {line}" for line in headline(rows)] + [""]
    out.append("| Row | Verdict | Basis | Scale | Hardware | Why |")
    out.append("|---|---|---|---|---|---|")
    ordered = failures_first(rows)
    for r in ordered:
        out.append(
            f"| `{r.paper}:{r.row}` | **{r.verdict}** | {r.basis or '—'} | {r.scale} | {r.hardware} | "
            f"{_md(r.why)} |"
        )
    out.append("")
    for r in ordered:
        out.append(f"## {r.paper}:{r.row} — {r.verdict}" + (f" ({r.basis})" if r.basis else ""))
        out.append("")
        out.append(
            f"Run `{r.run_id}` on {r.hardware} ({', '.join(r.gpu_models) or 'no GPU'}), scale {r.scale}."
        )
        if r.harness:
            out.append(f"This scale is a harness: {_md(r.harness)}.")
        out.append("")
        if r.metrics:
            out.append("| Metric | Verdict | Basis | Expected | Measured | Rule | Source | Why |")
            out.append("|---|---|---|---|---|---|---|---|")
            for m in r.metrics:
                why = m.why + ("; " + m.paper if m.paper else "")
                out.append(
                    f"| `{m.metric}` | {m.verdict} | {m.basis or '—'} | {fmt(m.expected)} | "
                    f"{fmt(m.measured)} | "
                    f"{_md(m.rule)} | {_md(m.source)} | {_md(why)} |"
                )
            out.append("")
    out.append("## What the verdicts and bases mean")
    out.append("")
    out += [f"- **{k}**: {v}" for k, v in MEANING.items()]
    out += [f"- basis **{k}**: {v}" for k, v in BASIS_MEANING.items()]
    return "\n".join(out) + "\n"


def _md(s) -> str:
    return str(s or "").replace("|", "\\|").replace("\n", " ")


def html_report(rows: list[RowVerdict], title: str = "Paper vs reproduced") -> str:
    from .report_html import render

    return render(rows, title)


def junit(rows: list[RowVerdict]) -> str:
    """JUnit XML: one testsuite per paper, one testcase per metric (basis as a property);
    CONTAMINATED and NOT-APPLICABLE are skipped. Failure messages carry measured, expected and rule."""
    by_paper: dict[str, list[RowVerdict]] = {}
    for r in rows:
        by_paper.setdefault(r.paper, []).append(r)
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f"<testsuites name='pack verify' timestamp={quoteattr(now_iso())}>",
    ]
    for paper, rs in by_paper.items():
        cases = []
        for r in rs:
            per = (r.duration_s or 0.0) / max(len(r.metrics), 1)
            for m in r.metrics or [None]:
                if m is None:
                    cases.append((r, "(row)", r.verdict, r.why, r.basis, r.verdict, per))
                    continue
                msg = (
                    f"{m.verdict}: measured {fmt(m.measured)}, expected {fmt(m.expected)} "
                    f"({m.rule or 'no rule'})"
                )
                cases.append((r, m.metric, m.verdict, m.why, m.basis, msg, per))
        fails = sum(c[2] in ("FAIL", "MISSING") for c in cases)
        errors = sum(c[2] == "ERROR" for c in cases)
        skipped = sum(c[2] in ("CONTAMINATED", "NOT-APPLICABLE") for c in cases)
        total = sum(c[6] for c in cases)
        out.append(
            f"<testsuite name={quoteattr(paper)} tests='{len(cases)}' failures='{fails}' errors='{errors}' "
            f"skipped='{skipped}' time='{total:.3f}'>"
        )
        for r, name, verdict, why, basis, msg, t in cases:
            out.append(
                f"  <testcase classname={quoteattr(paper + '.' + r.row)} name={quoteattr(name)} "
                f"time='{t:.3f}'>"
            )
            out.append(
                f"    <properties><property name='basis' value={quoteattr(basis or 'none')}/>"
                f"<property name='verdict' value={quoteattr(verdict)}/>"
                f"<property name='run_id' value={quoteattr(r.run_id)}/></properties>"
            )
            if verdict in ("FAIL", "MISSING"):
                out.append(f"    <failure message={quoteattr(msg)}>{escape(why or '')}</failure>")
            elif verdict == "ERROR":
                out.append(f"    <error message={quoteattr(msg)}>{escape(why or '')}</error>")
            elif verdict in ("CONTAMINATED", "NOT-APPLICABLE"):
                out.append(f"    <skipped message={quoteattr(verdict + ': ' + (why or ''))}/>")
            out.append("  </testcase>")
        out.append("</testsuite>")
    out.append("</testsuites>")
    return "\n".join(out) + "\n"


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
