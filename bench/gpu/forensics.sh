#!/usr/bin/env bash
# Forensics (seed 001) GPU evidence on one H100/H200, in under 6 minutes:
#   exp0, exp1, exp4, exp5 (one `pack run`, so the model loads once), the extraction-overhead bench,
#   exp2 (torch.compile, inductor; time-boxed), then, if time is left, exp0 at the true
#   Qwen3-30B-A3B shape (random weights: time and peak memory), and the detectability analysis.
# All on the mid-size synthetic MoE with ~6k-token prompts and 30 decode steps (full scale).
#
#   OUT=/tmp/out bash bench/gpu/forensics.sh          # on the GPU machine, from the repository root
#   OUT=/tmp/out bash bench/gpu/forensics.sh --cpu    # dry run here: the same steps at smoke scale
#
# Files written directly into $OUT (at most 6):
#   forensics_detectability.md   the detectability table with GPU name and date (docs/forensics.md takes it)
#   forensics_results.json       per-row status and metrics, step timings, GPU, date
#   forensics_overhead.json      extraction overhead (same greedy tokens with / without extraction)
#   forensics_30b.json           exp0 at the Qwen3-30B-A3B shape (if it ran)
#   forensics_l2_by_layer.png    L2 by layer for each variable
#   forensics_log.txt            the tail of every step's log
set -uo pipefail
: "${OUT:?set OUT to an output directory}"
mkdir -p "$OUT"
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python3}
MODE=gpu; SCALE=full
if [ "${1:-}" = "--cpu" ]; then MODE=cpu; SCALE=smoke; fi
BUDGET=${FORENSICS_BUDGET_S:-335}   # leave headroom under the 6-minute limit
RUNS=$(mktemp -d /tmp/forensics-runs.XXXXXX)
LOG="$OUT/forensics_log.txt"; : > "$LOG"
STEPS_JSON="$RUNS/steps.jsonl"; : > "$STEPS_JSON"

left() { echo $(( BUDGET - SECONDS )); }
step() {  # step NAME TIMEOUT_S CMD...   (runs with SIGINT on timeout so pack records 'interrupted')
  local name=$1 limit=$2; shift 2
  if [ "$limit" -lt 15 ]; then
    echo "skip $name: only ${limit}s of the budget left" | tee -a "$LOG"
    echo "{\"step\": \"$name\", \"status\": \"skipped\", \"seconds\": 0}" >> "$STEPS_JSON"
    return 0
  fi
  local t0=$SECONDS
  echo "== $name (limit ${limit}s, ${SECONDS}s elapsed)" | tee -a "$LOG"
  timeout --signal=INT --kill-after=10 "$limit" "$@" > "$RUNS/$name.out" 2> "$RUNS/$name.err"
  local rc=$?
  tail -n 25 "$RUNS/$name.err" >> "$LOG"; cat "$RUNS/$name.out" | tee -a "$LOG"
  echo "{\"step\": \"$name\", \"rc\": $rc, \"seconds\": $(( SECONDS - t0 ))}" >> "$STEPS_JSON"
  echo "-- $name rc=$rc in $(( SECONDS - t0 ))s" | tee -a "$LOG"
}

if [ "$MODE" = gpu ]; then
  GPU=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
  OVERHEAD_ARGS=(--model synthetic:mid-qwen3-moe --device cuda --prompt-tokens 6000 --steps 30 --rounds 5)
else
  GPU="none (CPU dry run, smoke scale)"
  OVERHEAD_ARGS=(--prompt-tokens 128 --steps 30 --rounds 3)
fi
DATE=$(date -u +"%Y-%m-%d %H:%M UTC")

step rows "$(( $(left) - 150 ))" $PY -m pack run mid-exp0 mid-exp1 mid-exp4 mid-exp5 --scale "$SCALE" --out "$RUNS"
step overhead "$(( $(left) < 90 ? $(left) - 60 : 90 ))" $PY bench/forensics_overhead.py "${OVERHEAD_ARGS[@]}" --json "$OUT/forensics_overhead.json"
step compile "$(( $(left) - 40 < 200 ? $(left) - 40 : 200 ))" $PY -m pack run mid-exp2 --scale "$SCALE" --out "$RUNS"
if [ "$(left)" -gt 110 ]; then
  step shape30b "$(( $(left) - 45 ))" $PY bench/forensics_30b_fit.py --scale "$SCALE" --out "$RUNS" --json "$OUT/forensics_30b.json"
else
  echo "skip shape30b: $(left)s left in the budget" | tee -a "$LOG"
  echo "{\"step\": \"shape30b\", \"status\": \"skipped\", \"seconds\": 0}" >> "$STEPS_JSON"
fi

ROWDIRS=()
for r in mid-exp0 mid-exp1 mid-exp2 mid-exp4 mid-exp5; do
  [ -d "$RUNS/forensics/$r" ] && ROWDIRS+=("$RUNS/forensics/$r")
done
if [ ${#ROWDIRS[@]} -gt 0 ]; then
  step analysis 40 $PY -m pack analyze forensics "${ROWDIRS[@]}" --out "$RUNS/analysis" \
    --title "Forensics detectability on ${GPU} (${DATE}; synthetic mid-qwen3-moe, ${SCALE} scale)"
  [ -f "$RUNS/analysis/analysis.md" ] && cp "$RUNS/analysis/analysis.md" "$OUT/forensics_detectability.md"
  PLOT=$(ls "$RUNS"/analysis/l2_by_layer_batch_size.png "$RUNS"/analysis/l2_by_layer_*.png 2>/dev/null | head -1)
  [ -n "$PLOT" ] && cp "$PLOT" "$OUT/forensics_l2_by_layer.png"
fi

$PY - "$RUNS" "$OUT/forensics_results.json" "$GPU" "$DATE" "$SCALE" <<'EOF'
import json, sys
from pathlib import Path
runs, out, gpu, date, scale = Path(sys.argv[1]), Path(sys.argv[2]), *sys.argv[3:]
rows = {}
for rj in sorted(runs.glob("forensics/*/*/run.json")):
    r = json.loads(rj.read_text())
    m = {k: (v["values"][0] if len(v["values"]) == 1 else v["values"]) for k, v in r.get("metrics", {}).items()}
    rows[r["row"]] = {"status": r["status"], "wall_s": r.get("wall_s"), "counters": r.get("counters"),
                      "metrics": m, "errors": r.get("errors"), "not_applicable": r.get("not_applicable")}
steps = [json.loads(l) for l in (runs / "steps.jsonl").read_text().splitlines() if l.strip()]
summary = runs / "analysis" / "summary.json"
res = {"gpu": gpu, "date": date, "scale": scale, "steps": steps, "rows": rows,
       "summary": json.loads(summary.read_text()) if summary.is_file() else None}
for name in ("forensics_overhead.json", "forensics_30b.json"):
    p = out.parent / name
    res[name[:-5]] = json.loads(p.read_text()) if p.is_file() else None
out.write_text(json.dumps(res, indent=2))
print(f"\n===== forensics GPU summary ({gpu}, {date}, {scale} scale) =====")
for row, r in rows.items():
    m = r["metrics"]
    keys = [k for k in m if k.endswith(("reps_bit_identical", "l2_hidden_last", "first_token_divergence",
                                        "overlap_fraction", "peak_memory_gib", "runtime_mean_s"))]
    print(f"{row:<14} {r['status']:<10} loads={r['counters'].get('model_loads') if r['counters'] else None} "
          + ", ".join(f"{k}={m[k]:.4g}" if isinstance(m[k], float) else f"{k}={m[k]}" for k in keys))
    for k, v in (r["errors"] or {}).items():
        print(f"{'':<14} ERROR {k}: {v}")
    for k, v in (r["not_applicable"] or {}).items():
        print(f"{'':<14} NOT-APPLICABLE {k}: {v}")
for name in ("forensics_overhead", "forensics_30b"):
    v = res[name]
    if v:
        print(name, {k: v[k] for k in v if k not in ("times_s", "run_dir")})
print("steps:", ", ".join(f"{s['step']} {s.get('rc', s.get('status'))} {s['seconds']}s" for s in steps))
EOF
[ -f "$OUT/forensics_detectability.md" ] && sed -n '1,40p' "$OUT/forensics_detectability.md"
echo "total ${SECONDS}s; files in $OUT:"; ls -la "$OUT"
