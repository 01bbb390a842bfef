#!/usr/bin/env bash
# The ECMoE built-in methods (issue 15 part 2) on mid-qwen3-moe on one GPU: Task 1 statistics, the offline
# compressors (3, 3b linear/MLP, 4a, 4b), end-to-end training (5a/5b), from offline weights (6a/6b) and in
# split mode (7a/7b); records per row and ratio the training time, peak CUDA memory, reconstruction
# metrics, perplexities and the loss curves. Budget: under ~4 minutes on an H200.
#
#   OUT=/tmp/out bash bench/gpu/ecmoe_methods.sh          # on the GPU machine (full scale of the rows)
#   OUT=/tmp/out bash bench/gpu/ecmoe_methods.sh --cpu    # the same rows at smoke scale on a CPU (local check)
#
# Writes into $OUT: ecmoe_methods.json, ecmoe_methods.md (GPU, date, table), curves/<row>.loss_curves.{png,json},
# ecmoe_methods.log, and runs/ (the pack run folders, for `pack verify` / `pack report`). The device returns
# at most 8 files, 2 folders down: on the GPU (or with ECMOE_METHODS_ARCHIVE=1) everything but the summary,
# the log and two loss-curve plots goes into ecmoe_methods_out.tgz (`tar xzf ecmoe_methods_out.tgz -C OUT`).
# Needs torch, transformers, numpy, pyyaml, click, pydantic, matplotlib (optional: without it no PNG); no network.
set -uo pipefail
: "${OUT:?set OUT to the output directory}"
mkdir -p "$OUT"
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python3}
SCALE=full
if [ "${1:-}" = "--cpu" ]; then
  SCALE=smoke
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}  # a shared CPU: one thread runs far faster than two contending
fi
RUNS="$OUT/runs"
LOG="$OUT/ecmoe_methods.log"
ROWS=$($PY -m pack list ecmoe | awk '$2 ~ /^methods-/ {print "ecmoe:" $2}' | tr '\n' ' ')
start=$(date +%s)
{
  echo "== $(date -u +%FT%TZ) pack run (scale $SCALE): $ROWS"
  $PY - <<'PY'
import torch
print("torch", torch.__version__, "cuda" if torch.cuda.is_available() else "cpu",
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
PY
  # shellcheck disable=SC2086
  $PY -m pack run $ROWS --scale "$SCALE" --out "$RUNS"
  echo "pack run exit code: $?"
  echo "== verify"
  $PY -m pack verify "$RUNS" --brief
} 2>&1 | tee "$LOG"
$PY bench/ecmoe_methods_summary.py "$RUNS" "$OUT"
status=$?
if [ "$SCALE" = full ] || [ -n "${ECMOE_METHODS_ARCHIVE:-}" ]; then
  for row in methods-e2e-pretrained.stale-uncompressed methods-offline-stale.stale-uncompressed; do
    [ -f "$OUT/curves/$row.loss_curves.png" ] && cp "$OUT/curves/$row.loss_curves.png" "$OUT/$row.loss_curves.png"
  done
  tar czf "/tmp/ecmoe_methods_out.$$.tgz" -C "$OUT" curves runs && rm -rf "$OUT/curves" "$OUT/runs" \
    && mv "/tmp/ecmoe_methods_out.$$.tgz" "$OUT/ecmoe_methods_out.tgz"
fi
echo "elapsed: $(( $(date +%s) - start )) s; files in $OUT: $(ls "$OUT" | tr '\n' ' ')"
exit $status
