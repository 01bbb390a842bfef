"""The self-contained HTML report: headline by basis, provenance, one overview chart, failures first,
then per-row tables and per-metric plots where they carry information. matplotlib is imported lazily."""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import subprocess
from pathlib import Path

from . import __version__
from .report import BASIS_MEANING, MEANING, failures_first, fmt, headline, now_iso, summary_counts
from .verify import ORDER, RowVerdict

COLORS = {
    "PASS": "#2e7d32",
    "FAIL": "#d32f2f",
    "ERROR": "#6a1b9a",
    "CONTAMINATED": "#ef6c00",
    "MISSING": "#0277bd",
    "NOT-APPLICABLE": "#9e9e9e",
}
MARKERS = {"paper": "D", "reference": "o", "harness": "^"}
CLIP = 3.0  # overview deviations beyond ±3 tolerances are drawn at the edge


def deviation(m) -> float:
    """(measured - expected) / tolerance: |d| <= 1 inside the rule. One-sided ranges: 0 far inside,
    1 at the bound, above 1 on the violating side. Rules with no numeric band (exact, stat) and
    list-valued measurements: 0 when they pass, the right edge when they do not."""
    if not m.band or isinstance(m.measured, (list, str, bool)) or not isinstance(m.measured, (int, float)):
        return 0.0 if m.verdict == "PASS" else CLIP
    lo, hi = m.band
    x = float(m.measured)
    if lo is not None and hi is not None:
        half = (hi - lo) / 2
        mid = (hi + lo) / 2
        return (x - mid) / half if half > 0 else (0.0 if x == mid else CLIP * (1 if x > mid else -1))
    bound = lo if lo is not None else hi
    scale = abs(bound) or 1.0
    over = ((bound - x) if lo is not None else (x - bound)) / scale  # > 0: on the violating side
    return 1 + over if over > 0 else max(0.0, 1 + over)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"axes.formatter.useoffset": False, "font.size": 8})
    return plt


def _png(fig, plt) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    try:  # a 256-colour palette keeps the self-contained page small; the plots use a handful of colours
        from PIL import Image

        small = io.BytesIO()
        Image.open(io.BytesIO(buf.getvalue())).convert("RGB").quantize(256).save(
            small, format="PNG", optimize=True
        )
        buf = small
    except ImportError:
        pass
    return base64.b64encode(buf.getvalue()).decode()


def overview_chart(rows: list[RowVerdict]) -> str | None:
    """Every checked metric's normalised deviation, one line per row, colour = verdict, marker = basis."""
    points = [(i, deviation(m), m) for i, r in enumerate(rows) for m in r.metrics if m.checked]
    if not points:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 0.9 + 0.28 * len(rows)))
    ax.axvspan(-1, 1, color="#e3f2fd", zorder=0)
    ax.axvline(0, color="#1565c0", lw=0.8, zorder=1)
    seen = set()
    for k, (i, d, m) in enumerate(points):
        clipped = max(-CLIP, min(CLIP, d))
        jitter = ((k * 37) % 11 - 5) * 0.03
        key = (m.verdict, m.basis)
        ax.scatter(
            [clipped],
            [i + jitter],
            s=22,
            color=COLORS.get(m.verdict, "#555"),
            marker=MARKERS.get(m.basis, "x"),
            edgecolors="white",
            linewidths=0.4,
            zorder=3,
            label=None if key in seen else f"{m.verdict} · {m.basis}",
        )
        seen.add(key)
    ax.set_yticks(range(len(rows)), [f"{r.paper}:{r.row} ({r.verdict})" for r in rows], fontsize=7)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xlim(-CLIP - 0.2, CLIP + 0.2)
    ax.set_xlabel(
        "(measured − expected) / tolerance   ·   |x| ≤ 1 is inside the rule (shaded)   ·   "
        f"clipped at ±{CLIP:g}\none-sided ranges: 0 far inside, 1 = the bound   ·   "
        "exact and stat checks: 0 when they pass, right edge when not"
    )
    ax.grid(axis="x", color="#eee")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=7, frameon=False, title="verdict · basis")
    return _png(fig, plt)


def _informative(m) -> bool:
    """A per-metric plot says more than the table only when repetitions spread or the rule is one-sided."""
    vals = [v for v in m.values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if not m.band or not m.checked or len(vals) != len(m.values) or not vals:
        return False
    return len(set(vals)) > 1 or None in m.band


def plot_row(r: RowVerdict) -> str | None:
    """Repetitions against the tolerance band (one-sided ranges drawn one-sided), one panel per metric."""
    checked = [m for m in r.metrics if _informative(m)][:10]
    if not checked:
        return None
    plt = _plt()
    fig, axes = plt.subplots(len(checked), 1, figsize=(7, 0.5 + 0.85 * len(checked)), squeeze=False)
    for ax, m in zip(axes[:, 0], checked, strict=False):
        vals = [float(v) for v in m.values]
        lo, hi = m.band
        ref = [b for b in (lo, hi) if b is not None] + vals
        span = max(max(ref) - min(ref), abs(max(ref, key=abs)) * 1e-3, 1e-12)
        left, right = min(ref) - 0.4 * span, max(ref) + 0.4 * span
        ax.axvspan(left if lo is None else lo, right if hi is None else hi, color="#bbdefb", zorder=0)
        if isinstance(m.expected, (int, float)) and not isinstance(m.expected, bool):
            ax.axvline(float(m.expected), color="#1565c0", lw=1.2)
        ax.scatter(vals, [0] * len(vals), color=COLORS.get(m.verdict, "#555"), zorder=3, s=26)
        ax.set_xlim(left, right)
        ax.set_yticks([])
        ax.set_title(
            f"{m.metric} — {m.verdict} ({m.basis}); rule {m.rule}; {len(vals)} repetitions",
            fontsize=8,
            loc="left",
        )
    fig.text(
        0.01,
        0.0,
        "shaded: what the rule allows · line: expected · dots: repetitions",
        fontsize=7,
        color="#555",
    )
    fig.tight_layout()
    return _png(fig, plt)


def provenance(rows: list[RowVerdict]) -> list[tuple[str, str]]:
    """Who judged what with which expectations: the checker's version and git sha, expected/'s hash,
    and each run's image, GPU and driver (from its env.json)."""
    from . import paths

    exp_dir = paths.expected_dir()
    h = hashlib.sha256()
    files = sorted(exp_dir.glob("*/*.yaml"))
    for f in files:
        h.update(str(f.relative_to(exp_dir)).encode() + b"\0" + f.read_bytes())
    items = [
        ("pack", f"{__version__} (git {_git_sha(Path(__file__).parent) or 'unknown'})"),
        (
            "expected/",
            f"{exp_dir} (git {_git_sha(exp_dir) or 'unknown'}), {len(files)} files, "
            f"sha256 {h.hexdigest()[:16]}…",
        ),
        ("generated", now_iso()),
    ]
    seen = {}
    for r in rows:
        env = _env(r.run_dir)
        gpu = env.get("gpu", {})
        key = (
            r.image or _known(env.get("container", {}).get("image")),
            ", ".join(r.gpu_models) or "no GPU",
            _known(gpu.get("driver")),
            env.get("pack", {}).get("git_sha"),
        )
        seen.setdefault(key, []).append(r.row)
    for (image, gpus, driver, sha), rs in seen.items():
        items.append(
            (
                f"runs of {len(rs)} row(s)",
                f"image {image or 'none (host)'} · {gpus} · GPU driver {driver or 'n/a'}"
                f" · pack git {str(sha or 'unknown')[:12]}",
            )
        )
    return items


def _known(v):
    return None if v in (None, "", "unavailable") else v


def _git_sha(where: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(where), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _env(run_dir: str) -> dict:
    from .rundir import RunDir

    try:
        return json.loads(RunDir(Path(run_dir)).env_json.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
.PASS{background:#e8f5e9}.FAIL{background:#ffcdd2}.CONTAMINATED{background:#ffe0b2}.ERROR{background:#e1bee7}
.MISSING{background:#b3e5fc}.NOT-APPLICABLE{background:#f5f5f5;color:#555}code{font-size:12px}
.headline{font-size:15px;border-left:4px solid #1565c0;padding:.3em 1em;background:#f5f9ff}
.headline li{margin:.2em 0}
.prov td{font-size:12px}.basis{font-variant:small-caps}"""


def render(rows: list[RowVerdict], title: str = "Paper vs reproduced") -> str:
    e = html.escape
    ordered = failures_first(rows)
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title>"
        f"<style>{CSS}</style></head><body>",
        f"<h1>{e(title)}</h1>",
        "<ul class='headline'>" + "".join(f"<li>{e(line)}</li>" for line in headline(rows)) + "</ul>",
        "<table class='prov'>"
        + "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in provenance(rows))
        + "</table>",
    ]
    chart = overview_chart(ordered)
    if chart:
        parts.append(
            "<h2>Every check at a glance</h2>"
            f"<img alt='normalised deviation of every checked metric' src='data:image/png;base64,{chart}'>"
        )
    parts.append(
        "<h2>Rows (failures first)</h2><table><tr><th>Row</th><th>Verdict</th><th>Basis</th><th>Scale</th>"
        "<th>Hardware</th><th>Why</th></tr>"
    )
    for r in ordered:
        parts.append(
            f"<tr class='{r.verdict}'><td><a href='#{e(r.paper)}-{e(r.row)}'>"
            f"<code>{e(r.paper)}:{e(r.row)}</code></a>"
            f"</td><td><b>{r.verdict}</b></td><td class='basis'>{e(r.basis or '—')}</td><td>{e(r.scale)}</td>"
            f"<td>{e(r.hardware)}</td><td>{e(r.why)}</td></tr>"
        )
    parts.append("</table>")
    for r in ordered:
        parts.append(
            f"<h2 id='{e(r.paper)}-{e(r.row)}'>{e(r.paper)}:{e(r.row)} — {r.verdict}"
            + (f" <span class='basis'>({e(r.basis)})</span>" if r.basis else "")
            + "</h2>"
        )
        parts.append(
            f"<p>Run <code>{e(r.run_id)}</code> on {e(r.hardware)} "
            f"({e(', '.join(r.gpu_models) or 'no GPU')}), "
            f"scale {e(r.scale)}, finished {e(r.finished_at or '—')}."
            + (f" <b>Harness scale:</b> {e(r.harness)}." if r.harness else "")
            + "</p>"
        )
        if r.metrics:
            parts.append(
                "<table><tr><th>Metric</th><th>Verdict</th><th>Basis</th><th>Expected</th><th>Measured</th>"
                "<th>Rule</th><th>Source</th><th>Why</th></tr>"
            )
            judged = [m for m in r.metrics if m.basis or m.verdict != "NOT-APPLICABLE"]
            judged.sort(key=lambda m: ORDER.index(m.verdict) if m.verdict in ORDER else 0)
            measured_only = [m for m in r.metrics if m not in judged]
            for m in judged:
                paper = f"<br><i>{e(m.paper)}</i>" if m.paper else ""
                parts.append(
                    f"<tr class='{m.verdict}'><td><code>{e(m.metric)}</code></td><td>{m.verdict}</td>"
                    f"<td class='basis'>{e(m.basis or '—')}</td><td>{e(fmt(m.expected))}</td>"
                    f"<td>{e(fmt(m.measured))}</td><td>{e(m.rule)}</td><td>{e(m.source)}</td>"
                    f"<td>{e(m.why)}{paper}</td></tr>"
                )
            if measured_only:
                names = ", ".join(f"{m.metric} = {fmt(m.measured)}" for m in measured_only)
                parts.append(
                    f"<tr class='NOT-APPLICABLE'><td colspan='8'>{len(measured_only)} measured only (no "
                    f"expectation recorded; 'pack bless' records one): {e(names)}</td></tr>"
                )
            parts.append("</table>")
        png = plot_row(r)
        if png:
            parts.append(
                f"<img alt='repetitions vs tolerance for {e(r.row)}' src='data:image/png;base64,{png}'>"
            )
    parts.append(
        "<h2>What the verdicts and bases mean</h2><ul>"
        + "".join(f"<li><b>{k}</b>: {e(v)}</li>" for k, v in MEANING.items())
        + "".join(f"<li>basis <b>{k}</b>: {e(v)}</li>" for k, v in BASIS_MEANING.items())
        + "</ul>"
    )
    counts = ", ".join(f"{k} {v}" for k, v in summary_counts(rows).items() if v)
    parts.append(f"<p>Rows: {e(counts)}.</p></body></html>")
    return "\n".join(parts)
