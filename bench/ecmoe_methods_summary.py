"""Turn the runs of bench/gpu/ecmoe_methods.sh into $OUT/ecmoe_methods.{json,md} and copy each row's
loss curves ($OUT/curves/<row>.loss_curves.{png,json}).

python bench/ecmoe_methods_summary.py RUNS_DIR OUT_DIR

The Markdown says the GPU, the date and, per row and ratio, the training time, the peak CUDA memory,
the reconstruction metrics and the perplexities; the JSON keeps every metric of every run.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path


def newest_runs(runs: Path) -> list[dict]:
    out = []
    for row_dir in sorted((runs / "ecmoe").glob("methods-*")):
        found = sorted(row_dir.glob("*/run.json"))
        if found:
            run = json.loads(found[-1].read_text())
            run["_dir"] = str(found[-1].parent)
            out.append(run)
    return out


def value(run: dict, name: str):
    entry = run["metrics"].get(name)
    return entry["values"][0] if entry else None


def fmt(v, spec: str) -> str:
    return "—" if v is None else format(v, spec)


def ratios(run: dict) -> list[int]:
    return sorted({int(m.group(1)) for k in run["metrics"] if (m := re.match(r"r(\d+)\.", k))})


def gpu_name(runs: list[dict]) -> str:
    names = sorted({g for r in runs for g in r.get("gpu_models") or []})
    return ", ".join(names) or "no GPU (CPU run)"


def table(runs: list[dict]) -> list[str]:
    out = [
        "| row | status | wall s | ratio | train s | peak MiB | MSE | cosine | SNR dB | ppl comp "
        "| ppl uncomp | e2e val before → after |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        if run["experiment"] == "ecmoe_distribution":
            out.append(
                f"| {run['row']} | {run['status']} | {fmt(run.get('wall_s'), '.1f')} | — | — | — | "
                f"dispatch std {fmt(value(run, 'dispatch.std_first_layer'), '.3g')} → "
                f"{fmt(value(run, 'dispatch.std_last_layer'), '.3g')}, kurtosis max "
                f"{fmt(value(run, 'dispatch.kurtosis_max'), '.3g')} | | | | | |"
            )
            continue
        for r in ratios(run) or [None]:
            t = f"r{r}"
            e2e = ""
            if value(run, f"{t}.e2e.val_loss") is not None:
                e2e = f"{value(run, f'{t}.e2e.val_loss_init'):.4f} → {value(run, f'{t}.e2e.val_loss'):.4f}"
            out.append(
                f"| {run['row']} | {run['status']} | {fmt(run.get('wall_s'), '.1f')} | {r}x | "
                f"{fmt(value(run, f'{t}.train_s'), '.2f')} | {fmt(value(run, f'{t}.peak_mem_mib'), '.0f')} | "
                f"{fmt(value(run, f'{t}.mse'), '.4g')} | {fmt(value(run, f'{t}.cosine'), '.4f')} | "
                f"{fmt(value(run, f'{t}.snr_db'), '.2f')} | "
                f"{fmt(value(run, f'{t}.compressed.ppl'), '.4f')} | "
                f"{fmt(value(run, f'{t}.uncompressed.ppl'), '.4f')} | {e2e} |"
            )
    return out


def main(runs_dir: str, out_dir: str) -> int:
    runs, out = Path(runs_dir), Path(out_dir)
    found = newest_runs(runs)
    curves = out / "curves"
    curves.mkdir(parents=True, exist_ok=True)
    for run in found:
        for name in ("loss_curves.png", "loss_curves.json", "distribution.json"):
            src = Path(run["_dir"]) / "reps" / "rep-000" / name
            if src.is_file():
                shutil.copy(src, curves / f"{run['row']}.{name}")
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%MZ")
    baseline = next((value(r, "baseline.ppl") for r in found if value(r, "baseline.ppl")), None)
    md = [
        f"# ECMoE built-in methods on {gpu_name(found)} ({now})",
        "",
        f"{len(found)} rows; baseline perplexity {fmt(baseline, '.4f')} (a random-weight model: harness "
        "evidence of the code path at size, not the journal's figures). "
        "Loss curves: curves/<row>.loss_curves.png.",
        "",
        *table(found),
        "",
    ]
    (out / "ecmoe_methods.md").write_text("\n".join(md))
    slim = [{k: v for k, v in r.items() if k not in ("params", "_dir")} for r in found]
    (out / "ecmoe_methods.json").write_text(
        json.dumps({"date": now, "gpu": gpu_name(found), "runs": slim}, indent=1)
    )
    print("\n".join(md))
    bad = [r["row"] for r in found if r["status"] != "complete"]
    return 1 if bad or not found else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
