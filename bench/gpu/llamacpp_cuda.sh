#!/usr/bin/env bash
# llama.cpp on CUDA (issue: real engines on the GPU), on a GPU machine that cannot reach the index:
#   1. build llama-cpp-python's CUDA wheel from the trimmed sdist that `make llamacpp-cuda-src` made
#      (one architecture, flash-attention kernels off), with the machine's own nvcc, cuBLAS and cores;
#   2. Paper B's null re-run on that engine (paperB:llamacpp-null-mid, full scale: TinyLlama-1.1B's
#      shape as a Q8_0 GGUF, all layers on the GPU), clean, then with a co-resident matmul load;
#   3. the harness overhead against llama.cpp's own decode clock, on the GPU.
#
#   OUT=/tmp/out bash bench/gpu/llamacpp_cuda.sh    (repo root; carry build/llamacpp-src.tar.gz and .whl)
# (bench/gpu/issue14.sh runs the same steps and more, within one call's budget, and is the one to use.)
#
# Files in $OUT: llamacpp_build.txt (tail of the build log, wheel size, build seconds), throughput_gpu.md /
# .json (both runs' tables), clean_summary.json, loaded_summary.json, llamacpp_overhead.json, log.txt.
set -uo pipefail
: "${OUT:?set OUT to an output directory}"
mkdir -p "$OUT"
SITE=${SITE:-/tmp/site}
PY=${PY:-python3}
LOG="$OUT/log.txt"; : > "$LOG"
say() { echo "$*" | tee -a "$LOG"; }

say "== CUDA wheel (bench/gpu/llamacpp_wheel.sh: built once, reused while the machine stays warm)"
OUT="$OUT" PY="$PY" SITE="$SITE" bash bench/gpu/llamacpp_wheel.sh 2>&1 | tee -a "$LOG" || exit 1
D=$(cat build/llamacpp-cuda-wheel/*/cublas_libdir 2>/dev/null | head -1)
[ -n "$D" ] && export LLAMACPP_LD_LIBRARY_PATH="$D${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
  && export LD_LIBRARY_PATH="$LLAMACPP_LD_LIBRARY_PATH"
export PYTHONPATH="$SITE:.${PYTHONPATH:+:$PYTHONPATH}"

say "== probe: which configurations load and decode (each in its own process)"
[ "${PROBE:-1}" = 1 ] && timeout 200 $PY bench/gpu/llamacpp_probe.py "$OUT/llamacpp_probe.json" 2>&1 | tail -3 | tee -a "$LOG"

say "== null re-run on the GPU engine (clean, then loaded)"
BUDGET=${BUDGET_S:-570}   # the whole script stays inside one 10-minute device call
ROW=paperB:llamacpp-null-mid OUT="$OUT" PY="$PY" timeout $(( BUDGET - SECONDS - 70 )) bash bench/gpu/throughput.sh 2>&1 | tail -30 | tee -a "$LOG"

say "== harness overhead on the GPU"
[ "${OVERHEAD:-1}" = 1 ] && [ $(( BUDGET - SECONDS )) -gt 40 ] && timeout $(( BUDGET - SECONDS - 10 )) $PY bench/throughput_overhead.py --layers 22 --runs 3 --n-decode 256 --n-gpu-layers -1 --qtype Q8_0 \
  > "$OUT/llamacpp_overhead.json" 2>>"$LOG"
cat "$OUT/llamacpp_overhead.json" | tee -a "$LOG"
say "== done in ${SECONDS}s"
