"""The compressors' loss curves as artifacts of the repetition: loss_curves.json and loss_curves.png.

The HTML report (pack/report_html.py) has no hook for a row's own artifacts yet, so the plot is a
file next to the JSON in the repetition folder (reps/rep-000/loss_curves.png), and the GPU script
copies it into its output. matplotlib is optional: without it only the JSON is written and the
repetition's info says so.
"""

from __future__ import annotations

import json
from pathlib import Path


def write(rep_dir: Path, curves: dict) -> dict:
    """curves: {tag: {"offline": [mean loss per step], "e2e": [loss per step], ...}} -> what was written."""
    (rep_dir / "loss_curves.json").write_text(json.dumps(curves, indent=1))
    written = {"json": "loss_curves.json"}
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        written["png"] = "not written: matplotlib is not installed"
        return written
    kinds = [k for k in ("offline", "e2e") if any(c.get(k) for c in curves.values())]
    if not kinds:
        return written
    fig, axes = plt.subplots(1, len(kinds), figsize=(5.5 * len(kinds), 3.6), squeeze=False)
    titles = {"offline": "offline: MSE + (1 - cos), mean over blocks", "e2e": "end-to-end: SFT loss (nats)"}
    for ax, kind in zip(axes[0], kinds, strict=False):
        for tag, c in curves.items():
            if c.get(kind):
                ax.plot(range(1, len(c[kind]) + 1), c[kind], label=tag)
        ax.set_title(titles[kind], fontsize=9)
        ax.set_xlabel("step")
        ax.set_yscale("log" if kind == "offline" else "linear")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(rep_dir / "loss_curves.png", dpi=90)
    plt.close(fig)
    written["png"] = "loss_curves.png"
    return written
