"""Tables for the GPU null re-run: one row per run (clean, with co-resident load), from run.json
and the verifier. Writes OUT/throughput_gpu.md and OUT/throughput_gpu.json; prints the Markdown.

    python3 bench/gpu/throughput_report.py OUT LABEL=RUN_DIR [LABEL=RUN_DIR ...]
"""

import json
import sys
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pack import gpuinfo  # noqa: E402
from pack.verify import verify_run  # noqa: E402


def one(label: str, run_dir: Path) -> dict:
    run = json.loads((run_dir / "run.json").read_text())
    m = run["metrics"]
    v = verify_run(run_dir)

    def val(name, key="mean"):
        e = m.get(name)
        return None if e is None else e.get(key, e["values"][0])

    return {
        "label": label,
        "row": f"{run['paper']}:{run['row']}",
        "scale": run["scale"],
        "run_id": run["run_id"],
        "reps": run["reps_planned"],
        "verdict": v.verdict,
        "why": v.why,
        "baseline_tok_s": val("baseline.decode_tok_s"),
        "baseline_std": val("baseline.decode_tok_s", "std"),
        "mcr_tok_s": val("mcr.decode_tok_s"),
        "mcr_std": val("mcr.decode_tok_s", "std"),
        "baseline_cv": val("baseline.decode_tok_s_cv"),
        "mcr_cv": val("mcr.decode_tok_s_cv"),
        "delta_pct": val("mcr.delta_pct"),
        "variance_ratio": val("mcr.variance_ratio"),
        "delta_ci": [val("mcr.delta_pct_ci_low"), val("mcr.delta_pct_ci_high")],
        "variance_p": val("mcr.variance_p"),
        "prefill_ms": val("baseline.prefill_ms"),
        "roofline_fraction": val("baseline.roofline_fraction"),
        "bandwidth_gbs": val("device_bandwidth_gbs"),
        "contamination": run.get("contamination", []),
        "metrics": [
            {
                "metric": x.metric,
                "verdict": x.verdict,
                "measured": x.measured,
                "expected": x.expected,
                "rule": x.rule,
            }
            for x in v.metrics
            if x.verdict != "NOT-APPLICABLE"
        ],
    }


def fmt(x, spec):
    return "—" if x is None else format(x, spec)


def main() -> None:
    out = Path(sys.argv[1])
    pairs = [a.split("=", 1) for a in sys.argv[2:]]
    runs = [one(label, Path(run_dir)) for label, run_dir in pairs]
    gpus = [g["name"] for g in gpuinfo.gpus()] or ["no GPU (CPU dry run)"]
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Throughput null re-run: clean vs co-resident load",
        "",
        f"GPU: {', '.join(gpus)} · driver {gpuinfo.driver_version() or '—'} · {now}",
        "",
        "| run | verdict | baseline tok/s (CV) | mcr tok/s (CV) | delta % [95% CI] | variance ratio (Brown–Forsythe p) "
        "| prefill ms | roofline | reps |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        lines.append(
            f"| {r['label']} | **{r['verdict']}** | {fmt(r['baseline_tok_s'], '.2f')} ({fmt(r['baseline_cv'], '.2%')}) | "
            f"{fmt(r['mcr_tok_s'], '.2f')} ({fmt(r['mcr_cv'], '.2%')}) | {fmt(r['delta_pct'], '+.2f')} "
            f"[{fmt(r['delta_ci'][0], '+.2f')}, {fmt(r['delta_ci'][1], '+.2f')}] | "
            f"{fmt(r['variance_ratio'], '.2f')}x (p {fmt(r['variance_p'], '.2g')}) | "
            f"{fmt(r['prefill_ms'], '.2f')} | {fmt(r['roofline_fraction'], '.3%')} | {r['reps']} |"
        )
    for r in runs:
        lines += ["", f"**{r['label']}** ({r['row']}, {r['scale']}, run {r['run_id']}): {r['why']}"]
        for c in r["contamination"]:
            lines.append(f"- {c}")
    md = "\n".join(lines) + "\n"
    (out / "throughput_gpu.md").write_text(md)
    (out / "throughput_gpu.json").write_text(
        json.dumps({"gpus": gpus, "date": now, "runs": runs}, indent=2, default=str)
    )
    print(md)


if __name__ == "__main__":
    main()
