"""Verdicts rendered for people and machines: terminal table, Markdown, one self-contained HTML
file with plots (measured vs expected with the tolerance band), JSON and JUnit XML."""

from __future__ import annotations

import base64
import html
import io
import json
from datetime import datetime, timezone
from xml.sax.saxutils import escape, quoteattr

from .verify import RowVerdict

MEANING = {
    "PASS": "reproduced within the paper's tolerance, in the expectation's scope",
    "FAIL": "measured outside the tolerance, or the run's files do not match their checksums",
    "CONTAMINATED": "the measurement saw noise or co-resident GPU work; rerun it, this is not a failure",
    "NOT-APPLICABLE": "off-scope (other hardware, scale, image, checkpoint) or not measurable here; the reason is given",
    "MISSING": "an expected metric that the run did not produce",
    "ERROR": "the run, or the part that should produce the metric, failed",
}


def fmt(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, list):
        return "[" + ", ".join(fmt(x) for x in v[:4]) + (", …" if len(v) > 4 else "") + "]"
    return str(v)


def table(rows: list[RowVerdict], details: bool = True) -> str:
    """The terminal table: one line per row, then one indented line per metric."""
    lines = []
    w = max([len(f"{r.paper}:{r.row}") for r in rows] + [10])
    lines.append(f"{'ROW':<{w}}  {'VERDICT':<14}  {'SCALE':<5}  {'HARDWARE':<10}  WHY")
    for r in rows:
        lines.append(f"{r.paper + ':' + r.row:<{w}}  {r.verdict:<14}  {r.scale:<5}  {r.hardware:<10}  {r.why}")
        if details:
            for m in r.metrics:
                lines.append(f"    {m.verdict:<14} {m.metric}: measured {fmt(m.measured)}, expected {fmt(m.expected)} ({m.rule or 'no rule'})"
                             + (f" — {m.why}" if m.why else ""))
                if m.paper:
                    lines.append(f"    {'':<14} {m.paper}")
    counts = summary_counts(rows)
    lines.append("")
    lines.append("rows: " + ", ".join(f"{k} {v}" for k, v in counts.items() if v))
    return "\n".join(lines)


def summary_counts(rows: list[RowVerdict]) -> dict:
    keys = ["PASS", "FAIL", "CONTAMINATED", "NOT-APPLICABLE", "MISSING", "ERROR"]
    return {k: sum(r.verdict == k for r in rows) for k in keys}


def to_json(rows: list[RowVerdict]) -> str:
    return json.dumps({"schema": "pack.verdicts/1", "generated_at": _now(), "summary": summary_counts(rows),
                       "rows": [r.to_json() for r in rows]}, indent=2, default=str)


def markdown(rows: list[RowVerdict]) -> str:
    out = ["# Reproduction report", "", f"Generated {_now()}.", ""]
    out.append("| Row | Verdict | Scale | Hardware | Why |")
    out.append("|---|---|---|---|---|")
    for r in rows:
        out.append(f"| `{r.paper}:{r.row}` | **{r.verdict}** | {r.scale} | {r.hardware} | {_md(r.why)} |")
    out.append("")
    for r in rows:
        out.append(f"## {r.paper}:{r.row} — {r.verdict}")
        out.append("")
        out.append(f"Run `{r.run_id}` on {r.hardware} ({', '.join(r.gpu_models) or 'no GPU'}), scale {r.scale}.")
        out.append("")
        if r.metrics:
            out.append("| Metric | Verdict | Paper / expected | Reproduced | Rule | Source | Why |")
            out.append("|---|---|---|---|---|---|---|")
            for m in r.metrics:
                out.append(f"| `{m.metric}` | {m.verdict} | {fmt(m.expected)} | {fmt(m.measured)} | {_md(m.rule)} | {_md(m.source)} | {_md(m.why + ('; ' + m.paper if m.paper else ''))} |")
            out.append("")
    out.append("## What the verdicts mean")
    out.append("")
    for k, v in MEANING.items():
        out.append(f"- **{k}**: {v}")
    return "\n".join(out) + "\n"


def _md(s) -> str:
    return str(s or "").replace("|", "\\|").replace("\n", " ")


def plot_row(r: RowVerdict) -> str | None:
    """A PNG (base64) of measured vs expected with the tolerance band, one panel per checked metric."""
    checked = [m for m in r.metrics if isinstance(m.measured, (int, float)) and isinstance(m.expected, (int, float))
               and not isinstance(m.measured, bool)]
    if not checked:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    checked = checked[:12]
    fig, axes = plt.subplots(len(checked), 1, figsize=(7, 0.9 + 0.75 * len(checked)), squeeze=False)
    colors = {"PASS": "#2e7d32", "FAIL": "#c62828", "CONTAMINATED": "#ef6c00"}
    for ax, m in zip(axes[:, 0], checked, strict=False):
        exp_v = float(m.expected)
        lo, hi = m.band if m.band else (exp_v, exp_v)
        lo = exp_v if lo is None else lo
        hi = exp_v if hi is None else hi
        vals = [float(v) for v in m.values if isinstance(v, (int, float))] or [float(m.measured)]
        span = max(hi - lo, abs(exp_v) * 1e-3, max(abs(v - exp_v) for v in vals), 1e-12)
        ax.axvspan(lo, hi, color="#90caf9", alpha=0.5, label="tolerance")
        ax.axvline(exp_v, color="#1565c0", lw=1.5, label="expected")
        ax.scatter(vals, [0] * len(vals), color=colors.get(m.verdict, "#555"), zorder=3, s=28, label="measured (reps)")
        ax.set_xlim(min(lo, *vals) - 0.3 * span, max(hi, *vals) + 0.3 * span)
        ax.set_yticks([])
        ax.set_title(f"{m.metric} — {m.verdict}", fontsize=8, loc="left")
        ax.tick_params(labelsize=7)
    axes[0, 0].legend(fontsize=6, loc="upper right")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
.PASS{background:#e8f5e9}.FAIL{background:#ffebee}.CONTAMINATED{background:#fff3e0}.ERROR{background:#fce4ec}
.MISSING{background:#ede7f6}.NOT-APPLICABLE{background:#f5f5f5;color:#555}code{font-size:12px}"""


def html_report(rows: list[RowVerdict], title: str = "Paper vs reproduced") -> str:
    e = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title><style>{CSS}</style></head><body>",
             f"<h1>{e(title)}</h1><p>Generated {e(_now())}. "
             + ", ".join(f"{k}: {v}" for k, v in summary_counts(rows).items() if v) + "</p>",
             "<table><tr><th>Row</th><th>Verdict</th><th>Scale</th><th>Hardware</th><th>Why</th></tr>"]
    for r in rows:
        parts.append(f"<tr class='{r.verdict}'><td><a href='#{e(r.paper)}-{e(r.row)}'><code>{e(r.paper)}:{e(r.row)}</code></a></td>"
                     f"<td><b>{r.verdict}</b></td><td>{e(r.scale)}</td><td>{e(r.hardware)}</td><td>{e(r.why)}</td></tr>")
    parts.append("</table>")
    for r in rows:
        parts.append(f"<h2 id='{e(r.paper)}-{e(r.row)}'>{e(r.paper)}:{e(r.row)} — {r.verdict}</h2>")
        parts.append(f"<p>Run <code>{e(r.run_id)}</code> on {e(r.hardware)} ({e(', '.join(r.gpu_models) or 'no GPU')}), scale {e(r.scale)}.</p>")
        if r.metrics:
            parts.append("<table><tr><th>Metric</th><th>Verdict</th><th>Paper / expected</th><th>Reproduced</th><th>Rule</th><th>Source</th><th>Why</th></tr>")
            for m in r.metrics:
                parts.append(f"<tr class='{m.verdict}'><td><code>{e(m.metric)}</code></td><td>{m.verdict}</td><td>{e(fmt(m.expected))}</td>"
                             f"<td>{e(fmt(m.measured))}</td><td>{e(m.rule)}</td><td>{e(m.source)}</td><td>{e(m.why)}{'<br><i>' + e(m.paper) + '</i>' if m.paper else ''}</td></tr>")
            parts.append("</table>")
        png = plot_row(r)
        if png:
            parts.append(f"<img alt='measured vs expected for {e(r.row)}' src='data:image/png;base64,{png}'>")
    parts.append("<h2>What the verdicts mean</h2><ul>" + "".join(f"<li><b>{k}</b>: {e(v)}</li>" for k, v in MEANING.items()) + "</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)


def junit(rows: list[RowVerdict]) -> str:
    """JUnit XML: one testsuite per paper, one testcase per metric; CONTAMINATED and NOT-APPLICABLE are skipped."""
    by_paper: dict[str, list[RowVerdict]] = {}
    for r in rows:
        by_paper.setdefault(r.paper, []).append(r)
    out = ['<?xml version="1.0" encoding="UTF-8"?>', "<testsuites name='pack verify'>"]
    for paper, rs in by_paper.items():
        cases = []
        for r in rs:
            ms = r.metrics or [None]
            for m in ms:
                name = m.metric if m else "(row)"
                verdict = m.verdict if m else r.verdict
                why = m.why if m else r.why
                cases.append((r.row, name, verdict, why))
        fails = sum(c[2] in ("FAIL", "MISSING") for c in cases)
        errors = sum(c[2] == "ERROR" for c in cases)
        skipped = sum(c[2] in ("CONTAMINATED", "NOT-APPLICABLE") for c in cases)
        out.append(f"<testsuite name={quoteattr(paper)} tests='{len(cases)}' failures='{fails}' errors='{errors}' skipped='{skipped}'>")
        for row, name, verdict, why in cases:
            out.append(f"  <testcase classname={quoteattr(paper + '.' + row)} name={quoteattr(name)}>")
            if verdict in ("FAIL", "MISSING"):
                out.append(f"    <failure message={quoteattr(verdict)}>{escape(why or '')}</failure>")
            elif verdict == "ERROR":
                out.append(f"    <error message='ERROR'>{escape(why or '')}</error>")
            elif verdict in ("CONTAMINATED", "NOT-APPLICABLE"):
                out.append(f"    <skipped message={quoteattr(verdict + ': ' + (why or ''))}/>")
            out.append("  </testcase>")
        out.append("</testsuite>")
    out.append("</testsuites>")
    return "\n".join(out) + "\n"


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
