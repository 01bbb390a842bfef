#!/usr/bin/env bash
# ECMoE Task 2 on mid-qwen3-moe (every method and bit width, both router modes) and seed 002's
# Ablation 5 table (text prompt vs 64 / 32 soft tokens at batch 1/4/8, Llama-3.1-8B shape), on one
# GPU, in under 6 minutes; then the hook-overhead benchmark at that size and a device self-check.
#
#   OUT=/tmp/out bash bench/gpu/ecmoe.sh          # on the GPU machine (full scale of the two rows)
#   OUT=/tmp/out bash bench/gpu/ecmoe.sh --cpu    # the same steps at smoke scale on a CPU (local check)
#
# Writes into $OUT: ecmoe_gpu.json, ecmoe_gpu.md (GPU name, date), ecmoe_hook_overhead.json, ecmoe_gpu.log.
# Needs torch, transformers, numpy, pyyaml, click, pydantic; no lm-eval, no network.
set -uo pipefail
: "${OUT:?set OUT to the output directory}"
mkdir -p "$OUT"
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python3}
SCALE=full
HOOK_ARGS=(--model mid-qwen3-moe --batch 8 --seq 1024 --reps 15 --experts "")
if [ "${1:-}" = "--cpu" ]; then
  SCALE=smoke
  HOOK_ARGS=(--model tiny-qwen3-moe --batch 4 --seq 128 --reps 7 --device cpu)
fi
RUNS=$(mktemp -d)
LOG="$OUT/ecmoe_gpu.log"
start=$(date +%s)
{
  echo "== device self-check: a compressor on another device hands back the layer's device and dtype"
  $PY - <<'PY'
import torch
from pack.experiments.ecmoe.quantize import quant_dequant
if torch.cuda.is_available():
    x = torch.randn(4, 8, 1024, device="cuda", dtype=torch.bfloat16)
    y = quant_dequant(x, "absmax", 8, compute_device="cpu")
    assert y.device == x.device and y.dtype == x.dtype, f"device/dtype check failed: {y.device} {y.dtype}"
    # CPU and GPU fp32 arithmetic may round differently in the last bit; the contract is device and dtype.
    diff = (y.float() - quant_dequant(x, "absmax", 8).float()).abs().max().item()
    print("ok:", torch.cuda.get_device_name(0), f"cuda -> cpu compressor -> cuda, bf16 kept; max |cpu - gpu| {diff:.3g}")
else:
    print("skipped: no CUDA device")
PY
  echo "== pack run (scale $SCALE): ecmoe:task2-mid-sweep latent-bridge:ablation5-inference-quick"
  $PY -m pack run ecmoe:task2-mid-sweep latent-bridge:ablation5-inference-quick --scale "$SCALE" --out "$RUNS"
  echo "pack run exit code: $?"
  echo "== hook overhead: ${HOOK_ARGS[*]}"
  $PY bench/ecmoe_hook_overhead.py "${HOOK_ARGS[@]}" | tee "$RUNS/hook.txt"
  head -n 1 "$RUNS/hook.txt" > "$OUT/ecmoe_hook_overhead.json"
  echo "== verify"
  $PY -m pack verify "$RUNS" --brief
} 2>&1 | tee "$LOG"
$PY bench/ecmoe_gpu_summary.py "$RUNS" "$OUT" "$OUT/ecmoe_hook_overhead.json"
status=$?
echo "elapsed: $(( $(date +%s) - start )) s; files in $OUT: $(ls "$OUT" | tr '\n' ' ')"
rm -rf "$RUNS"
exit $status
