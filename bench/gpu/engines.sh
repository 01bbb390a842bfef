#!/usr/bin/env bash
# GPU evidence for the quantization variable and the GPU test suite, in one device call (~6 min):
#   1. forensics mid-exp0 + mid-exp3 at full scale: the mid-size synthetic MoE in bf16, then quantized
#      while loading by bitsandbytes (LLM.int8 and NF4 arms), uniform JSON and L2 against the baseline;
#   2. pytest tests/gpu.
#
#   OUT=/tmp/out bash bench/gpu/engines.sh    (repo root; bitsandbytes and pydantic wheels installed first)
#
# Files in $OUT: engines_log.txt, exp3_results.json (per-row status, metrics, reasons), exp3_analysis.md,
# pytest_gpu.txt.
set -uo pipefail
: "${OUT:?set OUT to an output directory}"
mkdir -p "$OUT"
PY=${PY:-python3}
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}"
RUNS=$(mktemp -d /tmp/engines-runs.XXXXXX)
LOG="$OUT/engines_log.txt"; : > "$LOG"
$PY -c "import bitsandbytes as b, torch, transformers as t; print('bitsandbytes', b.__version__, '| torch', torch.__version__, \
'| transformers', t.__version__, '|', torch.cuda.get_device_name(0))" 2>&1 | tail -2 | tee -a "$LOG"
T0=$SECONDS
timeout --signal=INT 300 $PY -m pack run mid-exp0 mid-exp3 --scale full --out "$RUNS" >"$RUNS/rows.out" 2>"$RUNS/rows.err"
echo "== rows rc=$? in $(( SECONDS - T0 ))s" | tee -a "$LOG"
tail -25 "$RUNS/rows.err" >> "$LOG"
$PY -m pack verify "$RUNS/forensics" --brief >> "$LOG" 2>&1
$PY -m pack analyze forensics "$RUNS/forensics/mid-exp0" "$RUNS/forensics/mid-exp3" --out "$RUNS/analysis" --no-plots \
  --title "exp3 (bitsandbytes) on $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1), $(date -u +%F)" >>"$LOG" 2>&1
cp "$RUNS/analysis/analysis.md" "$OUT/exp3_analysis.md" 2>/dev/null
$PY - "$RUNS" "$OUT/exp3_results.json" <<'PY'
import json, sys
from pathlib import Path
runs, out = Path(sys.argv[1]), Path(sys.argv[2])
rows = {}
for rj in sorted(runs.glob("forensics/*/*/run.json")):
    r = json.loads(rj.read_text())
    rows[r["row"]] = {k: r.get(k) for k in ("status", "wall_s", "counters", "errors", "not_applicable", "gpu_models")}
    rows[r["row"]]["metrics"] = {k: v["values"] for k, v in r.get("metrics", {}).items()}
out.write_text(json.dumps(rows, indent=1, default=str))
for row, r in rows.items():
    keys = [k for k in r["metrics"] if k.endswith(("reps_bit_identical", "l2_hidden_last", "first_token_divergence",
                                                     "peak_memory_gib", "runtime_mean_s", "quantized_modules"))]
    print(row, r["status"], {k: r["metrics"][k] for k in keys}, r["errors"] or "", r["not_applicable"] or "")
PY
T1=$SECONDS
timeout 240 $PY -m pytest -q tests/gpu -p no:cacheprovider -rA > "$OUT/pytest_gpu.txt" 2>&1
echo "== pytest tests/gpu rc=$? in $(( SECONDS - T1 ))s" | tee -a "$LOG"
tail -15 "$OUT/pytest_gpu.txt"
echo "== done in ${SECONDS}s"
