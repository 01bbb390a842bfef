#!/usr/bin/env bash
# The throughput harness on a GPU: a null re-run that must be clean, then the same run with a
# co-resident matmul load on the same GPU that must turn CONTAMINATED and say why.
#
#   OUT=/tmp/out bash bench/gpu/throughput.sh          on an H100/H200 (paperB:harness-null, full scale:
#                                                       TinyLlama-1.1B's shape, bf16, transformers backend)
#   OUT=/tmp/out bash bench/gpu/throughput.sh --cpu    the same steps on the CPU (smoke scale, a CPU
#                                                       burner as the co-resident load)
# Writes into $OUT: throughput_gpu.md, throughput_gpu.json (both tables, GPU name, date), the two
# runs' summaries and per-run CSVs, pack.log; with KEEP_RUNS=1 the run folders (runs/clean, runs/loaded).
# About 2-3 minutes on an H100.
set -euo pipefail
: "${OUT:?set OUT to an output directory}"
export PYTHONPATH="${PYTHONPATH:-.}"
PY="${PY:-python3}"
ROW="${ROW:-paperB:harness-null}"   # or paperB:llamacpp-null-mid (a CUDA build of llama-cpp-python)
SCALE=full; HW=local-gpu; LOAD_ARGS=(); MODE=gpu
if [[ "${1:-}" == "--cpu" ]]; then SCALE=smoke; HW=cpu; LOAD_ARGS=(--cpu); MODE=cpu; fi
mkdir -p "$OUT"
WORK="$(mktemp -d)"
LOAD_PID=""
cleanup() { if [[ -n "$LOAD_PID" ]]; then kill "$LOAD_PID" 2>/dev/null || true; wait "$LOAD_PID" 2>/dev/null || true; fi; }
trap cleanup EXIT
T0=$SECONDS

# A llama.cpp CUDA build may need the folder it linked cuBLAS from (bench/gpu/llamacpp_wheel.sh); only
# the pack run gets it, not the torch load process (torch keeps its own wheels' cuBLAS).
LENV=(env); [[ -n "${LLAMACPP_LD_LIBRARY_PATH:-}" ]] && LENV=(env LD_LIBRARY_PATH="$LLAMACPP_LD_LIBRARY_PATH")
run_row() {  # prints the run directory
  "${LENV[@]}" "$PY" -m pack run "$ROW" --scale "$SCALE" --hw "$HW" --out "$WORK/runs" 2>>"$WORK/pack.log" \
    | awk -F'\t' '{print $3}' | tail -1
}

echo "== 1/2: null re-run on a quiet $MODE ($SCALE scale)"
CLEAN="$(run_row || true)"
[[ -d "$CLEAN" ]] || { tail -30 "$WORK/pack.log"; echo "the clean run failed"; exit 1; }

echo "== 2/2: the same with a co-resident load"
"$PY" bench/gpu/matmul_load.py --ready "$WORK/load.ready" --seconds 300 "${LOAD_ARGS[@]}" &
LOAD_PID=$!
for _ in $(seq 120); do [[ -f "$WORK/load.ready" ]] && break; sleep 0.5; done
[[ -f "$WORK/load.ready" ]] || { echo "the co-resident load did not start"; exit 1; }
echo "   load running on: $(cat "$WORK/load.ready") (pid $LOAD_PID)"
LOADED="$(run_row || true)"
cleanup; LOAD_PID=""
[[ -d "$LOADED" ]] || { tail -30 "$WORK/pack.log"; echo "the loaded run failed"; exit 1; }

"$PY" bench/gpu/throughput_report.py "$OUT" "clean=$CLEAN" "co-resident load=$LOADED"
cp "$(ls "$CLEAN"/summary/*_summary.json | head -1)" "$OUT/clean_summary.json"
cp "$(ls "$LOADED"/summary/*_summary.json | head -1)" "$OUT/loaded_summary.json"
cp "$(ls "$CLEAN"/summary/*.csv | head -1)" "$OUT/clean_runs.csv"
cp "$(ls "$LOADED"/summary/*.csv | head -1)" "$OUT/loaded_runs.csv"
if [[ "${KEEP_RUNS:-0}" == 1 ]]; then  # the run folders themselves, for pack verify / the docs
  mkdir -p "$OUT/runs" && cp -r "$CLEAN" "$OUT/runs/clean" && cp -r "$LOADED" "$OUT/runs/loaded"
fi
cp "$WORK/pack.log" "$OUT/pack.log"
echo "verdicts: clean=$("$PY" -c "import json,sys;print(json.load(open(sys.argv[1]))['runs'][0]['verdict'])" "$OUT/throughput_gpu.json")" \
     "loaded=$("$PY" -c "import json,sys;print(json.load(open(sys.argv[1]))['runs'][1]['verdict'])" "$OUT/throughput_gpu.json")"
echo "done in $((SECONDS - T0)) s; files in $OUT: $(ls "$OUT" | tr '\n' ' ')"
