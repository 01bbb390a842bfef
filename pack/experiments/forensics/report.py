"""Terminal / Markdown tables and plots for forensics analysis reports (analysis.Experiment.report())."""

from __future__ import annotations

import math
from pathlib import Path

from .analysis import HEADLINE, summary_row


def jsonable(x):
    """inf / nan -> strings, so the analysis JSON stays strict JSON."""
    if isinstance(x, float) and not math.isfinite(x):
        return "inf" if x > 0 else "-inf" if x < 0 else "nan"
    if isinstance(x, dict):
        return {k: jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    return x


def _g(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        if math.isinf(v):
            return "∞"
        return f"{v:.4g}"
    return str(v)


def _signal_order(names) -> list[str]:
    def key(s):
        kind = 0 if s.startswith("hidden") else 1 if s.startswith("key") else 2
        layer = s.rsplit("_", 1)[-1]
        return kind, int(layer) if layer.isdigit() else 10_000

    return sorted((n for n in names if not n.endswith("/last")), key=key)


def summary_table(reports: list[dict]) -> str:
    """The seed's DETECTABILITY SUMMARY, headline signal (hidden states, last layer)."""
    lines = [
        f"{'Experiment':<20} {'Variable':<20} {'Baseline L2':<14} {'Max Signal L2':<15} {'SNR':<10} Detection"
    ]
    lines.append("-" * 92)
    for rep in reports:
        row = summary_row(rep)
        h = row["headline"] or {}
        det = h.get("detectability", "n/a")
        if row["one_hardware_kind"]:
            det = "n/a (one hardware kind)"
        lines.append(
            f"{row['experiment']:<20} {row['variable']:<20} {_g(h.get('baseline_l2')):<14} "
            f"{_g(h.get('max_signal_l2')):<15} {_g(h.get('snr')):<10} {det}"
        )
    return "\n".join(lines)


def markdown(reports: list[dict], title: str = "Floating-point forensics", header: dict | None = None) -> str:
    out = [f"# {title}", ""]
    for k, v in (header or {}).items():
        out.append(f"- {k}: {v}")
    if header:
        out.append("")
    hws = sorted({h for r in reports for h in r.get("hardware_names", r["hardware"])})
    out.append(f"Hardware in these files: {', '.join(hws) or 'none'}.")
    if all(r["one_hardware_kind"] for r in reports):
        out += [
            "",
            "Only one hardware kind is present, so there is no cross-hardware baseline: SNR and the "
            "Strong/Moderate/Weak classification need a second GPU kind (merge its files). Within-hardware "
            "distances are reported; with bit-identical repetitions any distance above 0 separates a "
            "configuration from the baseline on this machine.",
        ]
    out += [
        "",
        "## Summary (hidden states, last layer)",
        "",
        "| experiment | variable | cross-HW baseline L2 | max within-HW L2 | SNR | detectability |",
        "|---|---|---|---|---|---|",
    ]
    for rep in reports:
        row = summary_row(rep)
        h = row["headline"] or {}
        det = "n/a (one hardware kind)" if row["one_hardware_kind"] else h.get("detectability", "n/a")
        out.append(
            f"| {row['experiment']} | {row['variable']} | {_g(h.get('baseline_l2'))} | "
            f"{_g(h.get('max_signal_l2'))} | {_g(h.get('snr'))} | {det} |"
        )
    for rep in reports:
        out += [
            "",
            f"## {rep['experiment']} ({rep['variable']})",
            "",
            "### Reproducibility within configurations",
            "",
            "| config | status | reps | bit-identical | max L2 between reps |",
            "|---|---|---|---|---|",
        ]
        for cid, r in rep["reproducibility"].items():
            out.append(
                f"| {cid} | {r['status']} | {r['reps']} | {'yes' if r['bit_identical'] else 'NO'} | "
                f"{_g(r['max'])} |"
            )
        for hw, rows in rep["within_hardware_detectability"].items():
            if not rows:
                continue
            sigs = _signal_order(
                {s for row in rows.values() for s in row["distance"] if isinstance(row["distance"][s], dict)}
            )
            out += [
                "",
                f"### Within {hw}: mean L2 against {next(iter(rows.values()))['baseline_config']}",
                "",
                "| signal | " + " | ".join(rows) + " |",
                "|---|" + "---|" * len(rows),
            ]
            for s in sigs:
                cells = []
                for row in rows.values():
                    v = row["distance"].get(s, {}).get("mean")
                    snr = row.get("snr", {}).get(s)
                    cells.append(
                        _g(v) + (f" (SNR {_g(snr)}, {row['classification'][s]})" if snr is not None else "")
                    )
                out.append(f"| {s} | " + " | ".join(cells) + " |")
            out.append(
                "| first token divergence | "
                + " | ".join(str(row["distance"]["first_token_divergence"]) for row in rows.values())
                + " |"
            )
            out.append(
                "| top-k id mismatch | "
                + " | ".join(_g(row["distance"].get("topk_id_mismatch")) for row in rows.values())
                + " |"
            )
        if rep["cross_hardware_baseline"]:
            out += ["", "### Cross-hardware baseline (noise)", "", "| signal | mean L2 |", "|---|---|"]
            out += [
                f"| {s} | {_g(v)} |"
                for s, v in rep["noise"].items()
                if s in _signal_order(rep["noise"]) + ["logprobs"]
            ]
        for pair, block in rep["cross_hardware_detectability"].items():
            if not block["variants"]:
                continue
            out += [
                "",
                f"### Cross-hardware detectability {pair} (variant vs other kind's baseline, ÷ baseline vs "
                "baseline)",
                "",
                "| variant | " + HEADLINE + " ratio | logprobs ratio |",
                "|---|---|---|",
            ]
            for label, row in block["variants"].items():
                out.append(
                    f"| {label} | {_g(row['ratio'].get(HEADLINE))} | {_g(row['ratio'].get('logprobs'))} |"
                )
    return "\n".join(out) + "\n"


def bar_values(vals: list[float | None]) -> tuple[float, list[float], list[str]]:
    """(log-axis floor, bar heights, bar labels) for SNR or L2 bars. No value (the reference
    experiment has no variant) is labelled "n/a" and drawn empty at the floor, never as a tiny bar;
    an exact 0 sits at the floor labelled "0": neither may read as a measured small value."""
    positive = [v for v in vals if v]
    floor = min(positive) / 10 if positive else 1e-12
    heights = [floor if v is None else max(min(v, 1e6), floor) for v in vals]
    labels = ["n/a" if v is None else "0" if v == 0 else f"{v:.4g}" for v in vals]
    return floor, heights, labels


def plots(reports: list[dict], out_dir: Path) -> list[Path]:
    """L2 by layer for each variable (hidden states and keys), and SNR (or L2) bars. PNG files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for rep in reports:
        series = []
        for hw, rows in rep["within_hardware_detectability"].items():
            for label, row in rows.items():
                series.append((f"{hw} {label}", row["distance"]))
        if not series:
            continue
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
        for ax, sig in zip(axes, ("hidden_states", "key_vectors"), strict=True):
            for name, d in series:
                pts = sorted(
                    (int(k.rsplit("_", 1)[1]), v["mean"])
                    for k, v in d.items()
                    if k.startswith(sig + "/layer_")
                )
                ys = [max(y, 1e-12) for _, y in pts]
                ax.plot([x for x, _ in pts], ys, marker="o", label=name)
            ax.set_yscale("log")
            ax.set_xlabel("layer")
            ax.set_ylabel("mean L2 vs baseline")
            ax.set_title(sig)
            ax.grid(alpha=0.3)
        axes[0].legend(fontsize=7)
        fig.suptitle(f"{rep['experiment']}: L2 by layer (zeros drawn at 1e-12)")
        fig.tight_layout()
        p = out_dir / f"l2_by_layer_{rep['experiment']}.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        written.append(p)
    rows = [summary_row(r) for r in reports]
    if rows:
        fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(rows)), 3.6))
        one_kind = all(r["one_hardware_kind"] for r in rows)
        vals = [((r["headline"] or {}).get("max_signal_l2" if one_kind else "snr")) for r in rows]
        floor, heights, labels = bar_values(vals)
        bars = ax.bar(
            [r["experiment"] for r in rows], heights, color=["none" if v is None else "C0" for v in vals]
        )
        ax.set_yscale("log")
        ax.set_ylim(floor, max(heights + ([] if one_kind else [10.0])) * 4)
        for bar, text in zip(bars, labels, strict=True):
            x = bar.get_x() + bar.get_width() / 2
            ax.text(x, bar.get_height() * 1.1, text, ha="center", va="bottom", fontsize=8)
        if not one_kind:
            for y, name in ((10, "Strong"), (3, "Moderate"), (1, "Weak")):
                ax.axhline(y, ls="--", lw=0.8, color="gray")
                ax.text(-0.45, y * 1.05, name, fontsize=7, color="gray")
        ax.set_ylabel(
            "max within-HW L2 (one hardware kind)" if one_kind else "SNR (hidden states, last layer)"
        )
        ax.tick_params(axis="x", rotation=30)
        fig.tight_layout()
        p = out_dir / ("l2_bars.png" if one_kind else "snr_bars.png")
        fig.savefig(p, dpi=110)
        plt.close(fig)
        written.append(p)
    return written
