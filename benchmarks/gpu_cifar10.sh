#!/usr/bin/env bash
# Issue 15 on one GPU, in one go, under a hard time budget (the device tool lends 15 minutes,
# machine start included, so BUDGET defaults to 12 minutes of this script):
#   1. the fast recipe (configs/cifar10/vit_lite_7_4_fast.py) to the end, seed 42;
#   2. ViT-B/16 MFU: `vitscale bench step` bf16 at batch 128, eager and torch.compile'd blocks;
#   3. seed 002's precision table for ViT-B/16 at batch 128: `vitscale bench amp` (fp32, torch
#      AMP fp16, naive fp16, bf16, pure bf16: peak memory and images/s; gpu_precision.sh's
#      command without its test suite run);
#   4. the full recipe (configs/cifar10/vit_lite_7_4.py, 200 epochs) for the budget left after
#      keeping room for step 5: SIGTERM at the limit saves a checkpoint and keeps metrics.jsonl,
#      so the table says which epoch it reached (resume it with the same command and run dir);
#   5. a second seed (43) of the fast recipe, if the budget still holds one more run of step 1.
# Each command's wall time, exit status and limit go to timings.jsonl; each run's metrics.jsonl
# and summary.json are copied beside it (run directories, with checkpoints, stay in $RUNS); then
# benchmarks/time_to_accuracy.py writes time_to_accuracy.md from them (benchmarks/README.md).
#
# Usage (GPU):  DATASETS=path/with/cifar10 COMMIT=$(git rev-parse --short HEAD) \
#                 bash benchmarks/gpu_cifar10.sh
#   OUT defaults to benchmarks/results/<UTC date>-<device>-cifar10; BUDGET (seconds, default 720),
#   PYTHON (default python3) and RUNS (default /tmp/vitscale-gpu-cifar10) can be set.
# TINY=1: the same steps and result files at toy sizes (a 1-block model, 2 steps per epoch,
#   ViT-Lite instead of ViT-B in the benchmarks, no compilation), ~1-2 minutes on 2 CPU cores;
#   tests/test_gpu_script.py runs it. Its numbers measure nothing.
set -uo pipefail
: "${DATASETS:?set DATASETS to the folder holding cifar10/}"
PY=${PYTHON:-python3}
BUDGET=${BUDGET:-720}
TINY=${TINY:-0}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
export VITSCALE_CACHE=${VITSCALE_CACHE:-/tmp/vitscale-cache} VITSCALE_DATASETS=$DATASETS

if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
  GPU_NAME=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
  DEVICE=$(echo "$GPU_NAME" | grep -oiE '[a-z][0-9]{2,3}' | head -1 | tr 'A-Z' 'a-z')
else
  GPU_NAME=none DEVICE=cpu
fi
[ "$TINY" = 1 ] && DEVICE=$DEVICE-tiny
OUT=${OUT:-benchmarks/results/$(date -u +%F)-${DEVICE:-gpu}-cifar10}
RUNS=${RUNS:-/tmp/vitscale-gpu-cifar10}
COMMIT=${COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
mkdir -p "$OUT" "$RUNS"
{
  echo "date $(date -u +%FT%TZ)"; echo "commit $COMMIT"; echo "device $DEVICE ($GPU_NAME)"
  echo "tiny $TINY"; echo "budget_s $BUDGET"
  [ "$GPU_NAME" != none ] && nvidia-smi --query-gpu=name,memory.total,driver_version \
    --format=csv,noheader
  $PY -c "import torch; print('torch', torch.__version__, 'threads', torch.get_num_threads())"
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

left() { echo $((BUDGET - SECONDS)); }
min() { [ "$1" -lt "$2" ] && echo "$1" || echo "$2"; }

# run NAME LIMIT_S COMMAND...: the command under `timeout` (SIGTERM at the limit, then 30 s
# to save before SIGKILL), its wall time and exit status appended to timings.jsonl.
run() {
  local name=$1 limit=$2; shift 2
  if [ "$limit" -lt 10 ]; then
    echo "== $name: skipped, $(left) s of the budget left" >&2
    $PY -c 'import json, sys; print(json.dumps({"name": sys.argv[1], "skipped": "budget",
      "budget_left_s": int(sys.argv[2])}))' "$name" "$(left)" >> "$OUT/timings.jsonl"
    return 1
  fi
  echo "== $name (limit ${limit} s, $(left) s of the budget left): $*" >&2
  local start end rc
  start=$(date +%s.%N)
  timeout -k 30 "$limit" "$@"
  rc=$?
  end=$(date +%s.%N)
  $PY -c 'import json, sys; n, s, e, rc, limit, *cmd = sys.argv[1:]; print(json.dumps({
    "name": n, "wall_s": round(float(e) - float(s), 1), "exit": int(rc), "limit_s": int(limit),
    "timed_out": rc in ("124", "137"), "command": " ".join(cmd)}))' \
    "$name" "$start" "$end" "$rc" "$limit" "$@" >> "$OUT/timings.jsonl"
  return $rc
}

# train NAME CONFIG LIMIT [--set K=V ...]: one `vitscale train`, its metrics and summary kept.
train() {
  local name=$1 config=$2 limit=$3; shift 3
  rm -rf "${RUNS:?}/$name"
  run "$name" "$limit" $PY -m vitscale train "$config" --data "$DATASETS/cifar10" \
    --run-dir "$RUNS/$name" --no-progress "${SETS[@]}" "$@"
  local rc=$?
  for f in metrics.jsonl summary.json; do
    [ -f "$RUNS/$name/$f" ] && cp "$RUNS/$name/$f" "$OUT/$name-$f"
  done
  return $rc
}

if [ "$TINY" = 1 ]; then
  SETS=()
  for kv in HIDDEN_SIZE=32 DEPTH=1 NUM_HEADS=2 PATCH_SIZE=8 TOTAL_BATCH_SIZE=32 NUM_EPOCHS=2 \
            WARMUP_EPOCHS=0 LIMIT_TRAIN_BATCHES=2 LIMIT_EVAL_BATCHES=1 EVAL_EVERY=1 LOG_EVERY=1 \
            "precision='fp32'" compile=False report=False tensorboard=False; do
    SETS+=(--set "$kv")
  done
  BENCH_MODEL=(--model vit_lite_7_4 --batch 4) STEP_ARGS=(--precision fp32 --steps 1 --warmup 1 --rounds 1)
  AMP_ARGS=(--steps 1 --warmup 1 --modes fp32 bf16)
  FAST_LIMIT=120 BENCH_LIMIT=120 FULL_CAP=120
else
  SETS=()
  BENCH_MODEL=(--model vit_base_patch16_224 --batch 128)
  STEP_ARGS=(--precision bf16 --compile --steps 30 --rounds 3)
  AMP_ARGS=(--steps 20)
  FAST_LIMIT=300 BENCH_LIMIT=180 FULL_CAP=100000
fi

# 1. The fast recipe, to the end.
train fast_seed42 configs/cifar10/vit_lite_7_4_fast.py "$(min $FAST_LIMIT "$(left)")"
FAST_WALL=$(tail -1 "$OUT/timings.jsonl" | $PY -c "import json,sys; print(int(json.load(sys.stdin).get('wall_s', 0)) + 1)")

# 2. ViT-B/16 MFU, eager and compiled blocks (bench step prints both, with the plain loop).
run bench_step "$(min $BENCH_LIMIT "$(left)")" $PY -m vitscale bench step "${BENCH_MODEL[@]}" \
  "${STEP_ARGS[@]}" --json > "$OUT/bench_step_vit.jsonl"

# 3. The precision table.
run bench_amp "$(min $BENCH_LIMIT "$(left)")" $PY -m vitscale bench amp "${BENCH_MODEL[@]}" \
  "${AMP_ARGS[@]}" --json > "$OUT/bench_amp_vit.jsonl"

# 4. The full recipe for what the budget leaves after room for a second fast seed.
full=$(( $(left) - FAST_WALL - 20 ))
[ "$full" -lt 60 ] && full=$(( $(left) - 10 ))      # no room for both: the full recipe first
train full configs/cifar10/vit_lite_7_4.py "$(min $FULL_CAP $full)"

# 5. A second seed of the fast recipe, if a whole run still fits.
if [ "$(left)" -gt "$FAST_WALL" ]; then
  train fast_seed43 configs/cifar10/vit_lite_7_4_fast.py "$(left)" --set SEED=43
else
  run fast_seed43 0 true
fi

$PY benchmarks/time_to_accuracy.py "$OUT" | tee "$OUT/time_to_accuracy.md"
echo "results in $OUT ($SECONDS s of the $BUDGET s budget)"
