#!/usr/bin/env bash
# Precision and step measurements on a GPU machine, in one go:
#   1. the test suite on that machine's torch (2.11 on the lent H100),
#   2. `vitscale bench amp` for ViT-B/16 at batch 128 (seed 002's table),
#   3. `vitscale bench step --compile` for ViT-Lite-7/4 (eager vs compiled vs a plain loop).
# Usage: DATASETS=path/with/cifar10 OUT=results-dir bash benchmarks/gpu_precision.sh
set -uo pipefail
: "${DATASETS:?set DATASETS to the folder holding cifar10/}" "${OUT:?set OUT}"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 VITSCALE_CACHE=/tmp/vitscale-cache VITSCALE_DATASETS=$DATASETS
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
python3 -m pytest -q -x -p no:cacheprovider -n 8 tests 2>&1 | tail -4 | tee "$OUT/pytest.txt"
python3 -m vitscale bench amp --model vit_base_patch16_224 --batch 128 --steps 20 --json \
  | tee "$OUT/bench_amp_vit_b16.jsonl"
for p in fp32 bf16; do
  python3 -m vitscale bench step --model vit_lite_7_4 --batch 512 --precision $p --steps 30 \
    --rounds 3 --compile --json | tee -a "$OUT/bench_step_compile.jsonl"
done
