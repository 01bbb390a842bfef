"""exp0 at the true Qwen3-30B-A3B shape (random bf16 weights) on one 80 GB GPU: does it fit, how long.

    PYTHONPATH=. python bench/forensics_30b_fit.py --out /tmp/runs --json fit.json          # GPU (full scale)
    PYTHONPATH=. python bench/forensics_30b_fit.py --scale smoke --out /tmp/runs   # CPU dry run (tiny model)

Runs the manifest row `shape30b-exp0` through `pack run` (48 layers, 128 experts top-8, hidden 2048,
~30.5 B parameters, ~6k-token prompt, 30 decode steps, 3 repetitions) and reports the model build
time, per-repetition decode time, peak GPU memory (torch.cuda.max_memory_allocated during the
decode, weights included) and whether the repetitions were bit-identical. One line on stdout.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", default="full", choices=["smoke", "full"])
    ap.add_argument("--out", type=Path, required=True, help="runs directory")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    if a.scale == "full":
        try:
            import torch

            if not torch.cuda.is_available():
                print("forensics 30B fit: needs a CUDA GPU (80 GB); use --scale smoke for a CPU dry run")
                return 2
        except ImportError:
            print("forensics 30B fit: torch is not installed")
            return 2
    t0 = time.perf_counter()
    res = subprocess.run(
        [sys.executable, "-m", "pack", "run", "shape30b-exp0", "--scale", a.scale, "--out", str(a.out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t0
    line = (res.stdout.strip().splitlines() or [""])[-1]
    if res.returncode != 0 or "\t" not in line:
        tail = (res.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"forensics 30B fit: pack run failed ({res.returncode}): {tail}")
        return 1
    run_dir = Path(line.split("\t")[2])
    run = json.loads((run_dir / "run.json").read_text())
    doc = json.loads(next((run_dir / "summary").glob("reference_baseline.json")).read_text())
    cfg = doc["configurations"][0]
    m = run["metrics"]
    out = {
        "scale": a.scale,
        "run_dir": str(run_dir),
        "status": run["status"],
        "wall_s": round(wall, 1),
        "model": doc["experiment_metadata"]["model"],
        "model_size": doc["experiment_metadata"]["model_size"],
        "gpu": run.get("gpu_models"),
        "prompt_tokens": doc["experiment_metadata"]["sequence_length"],
        "decode_steps": doc["experiment_metadata"]["decode_steps"],
        "load_s": cfg["model_info"].get("load_s"),
        "runtime_s_per_rep": m.get("baseline.runtime_s", {}).get("values"),
        "peak_memory_gib": m.get("baseline.peak_memory_gib", {}).get("values", [None])[0],
        "reps_bit_identical": m.get("baseline.reps_bit_identical", {}).get("values", [None])[0],
    }
    if a.json:
        a.json.write_text(json.dumps(out, indent=2))
    rts = out["runtime_s_per_rep"] or []
    print(
        f"forensics 30B fit: {out['status']}, {out['model']} ({out['model_size']}), build {out['load_s']} s, "
        f"decode {', '.join(f'{x:.2f}' for x in rts)} s per rep ({out['prompt_tokens']}-token prompt, "
        f"{out['decode_steps']} steps), peak {out['peak_memory_gib']} GiB, bit-identical reps: "
        f"{out['reps_bit_identical']}, total {out['wall_s']} s"
    )
    return 0 if run["status"] == "complete" else 1


if __name__ == "__main__":
    sys.exit(main())
