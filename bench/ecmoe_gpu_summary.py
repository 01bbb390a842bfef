"""Turn the runs of bench/gpu/ecmoe.sh into $OUT/ecmoe_gpu.json and $OUT/ecmoe_gpu.md (GPU name, date).

python bench/ecmoe_gpu_summary.py RUNS_DIR OUT_DIR [HOOK_BENCH_JSON]
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path

ROWS = {"task2": ("ecmoe", "task2-mid-sweep"), "inference": ("latent-bridge", "ablation5-inference-quick")}


def newest_run(runs: Path, paper: str, row: str) -> dict | None:
    found = sorted((runs / paper / row).glob("*/run.json"))
    return json.loads(found[-1].read_text()) if found else None


def value(run: dict, name: str):
    entry = run["metrics"].get(name)
    return entry["values"][0] if entry else None


def fmt(v, spec: str) -> str:
    return "—" if v is None else format(v, spec)


def task2_table(run: dict) -> list[str]:
    out = [
        f"Baseline perplexity {fmt(value(run, 'baseline.ppl'), '.4f')} over "
        f"{value(run, 'n_response_tokens')} response tokens ({value(run, 'n_sequences')} sequences); metrics "
        f"on {value(run, 'metric_tokens')} tokens per MoE block ({value(run, 'n_moe_blocks')} blocks).",
        "",
        "| method | bits | MSE | cosine | SNR (dB) | ppl compressed | Δ | ppl uncompressed | Δ |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for method in ("absmax", "zeropoint"):
        for bits in (8, 4, 2):
            t = f"{method}_int{bits}"
            if value(run, f"{t}.mse") is None:
                continue
            out.append(
                f"| {method} | {bits} | {fmt(value(run, f'{t}.mse'), '.3g')} | "
                f"{fmt(value(run, f'{t}.cosine'), '.4f')} | {fmt(value(run, f'{t}.snr_db'), '.2f')} | "
                f"{fmt(value(run, f'{t}.compressed.ppl'), '.4f')} | "
                f"{fmt(value(run, f'{t}.compressed.ppl_delta'), '+.4f')} | "
                f"{fmt(value(run, f'{t}.uncompressed.ppl'), '.4f')} | "
                f"{fmt(value(run, f'{t}.uncompressed.ppl_delta'), '+.4f')} |"
            )
    return out


def inference_table(run: dict) -> list[str]:
    out = [
        "| input | tokens read | batch | ms / sample | samples / s | peak GB | above weights GB | KV MiB | "
        "speedup | peak mem reduction |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for cfg in ("text", "latent64", "latent32"):
        for b in (1, 4, 8):
            p = f"{cfg}.b{b}"
            if value(run, f"{p}.ms_per_sample") is None:
                continue
            red = value(run, f"{p}.mem_reduction_pct")
            out.append(
                f"| {cfg} | {value(run, f'{cfg}.prompt_tokens')} | {b} | "
                f"{fmt(value(run, f'{p}.ms_per_sample'), '.1f')} | "
                f"{fmt(value(run, f'{p}.samples_per_s'), '.2f')} | "
                f"{fmt(value(run, f'{p}.peak_mem_gb'), '.2f')} | "
                f"{fmt(value(run, f'{p}.extra_mem_gb'), '.3f')} | "
                f"{fmt(value(run, f'{p}.kv_cache_mb'), '.1f')} | {fmt(value(run, f'{p}.speedup'), '.2f')} | "
                f"{'—' if red is None else f'{red:.1f}%'} |"
            )
    return out


def main(argv: list[str]) -> int:
    runs, out = Path(argv[0]), Path(argv[1])
    hook = (
        json.loads(Path(argv[2]).read_text().splitlines()[0])
        if len(argv) > 2 and Path(argv[2]).is_file()
        else None
    )
    found = {k: newest_run(runs, *v) for k, v in ROWS.items()}
    first = next((r for r in found.values() if r), {})
    gpu = ", ".join(first.get("gpu_models") or []) or "no GPU (CPU)"
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    doc = {
        "gpu": gpu,
        "date": date,
        "hook_overhead": hook,
        "runs": {
            k: None
            if r is None
            else {
                "row": r["row"],
                "scale": r["scale"],
                "status": r["status"],
                "wall_s": r.get("wall_s"),
                "errors": r.get("errors"),
                "params": r.get("params"),
                "metrics": {n: e["values"][0] for n, e in r["metrics"].items()},
            }
            for k, r in found.items()
        },
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "ecmoe_gpu.json").write_text(json.dumps(doc, indent=2, default=str))
    md = [
        f"# ECMoE Task 2 sweep and seed 002 Ablation 5 on {gpu}",
        "",
        f"Measured {date} with bench/gpu/ecmoe.sh.",
        "",
    ]
    if found["task2"]:
        r = found["task2"]
        md += (
            [
                f"## Task 2 on {r['params'].get('model')} ({r['params'].get('dtype')}; {r['scale']} scale, "
                f"{r['status']}, {r.get('wall_s', 0):.0f} s)",
                "",
            ]
            + task2_table(r)
            + [""]
        )
    if found["inference"]:
        r = found["inference"]
        p = r["params"]
        md += (
            [
                f"## Ablation 5: {p.get('model')} generating {p.get('max_new_tokens')} tokens for "
                f"{p.get('n_samples')} samples ({r['scale']} scale, {r['status']}, "
                f"{r.get('wall_s', 0):.0f} s)",
                "",
            ]
            + inference_table(r)
            + [""]
        )
    if hook:
        md += [
            "## Hook overhead (bench/ecmoe_hook_overhead.py)",
            "",
            f"{hook['model']} on {hook['device']} ({hook['dtype']}), batch "
            f"{hook['batch'][0]}×{hook['batch'][1]}: no hook {hook['ms']['none']:.2f} ms, no-op hook "
            f"{hook['ms']['noop']:.2f} ms, INT8 hook {hook['ms']['int8']:.2f} ms, the same arithmetic with "
            f"its result discarded adds {hook['arith_in_model_ms']:.2f} ms in the model "
            f"({hook['ms']['arith']:.2f} ms in a loop outside it) → overhead beyond the arithmetic "
            f"{100 * hook['hook_overhead_beyond_arith']:+.2f}% (target ≤ 5%).",
            "",
        ]
    (out / "ecmoe_gpu.md").write_text("\n".join(md))
    print("\n".join(md))
    return 0 if all(r and r["status"] == "complete" for r in found.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
