#!/usr/bin/env bash
# Foundation measurements on a GPU machine, in one go (the device tool's machine, or any GPU box):
#   1. the test suite on that machine's torch (2.11 on the lent H100),
#   2. `vitscale bench step` for ViT-Lite-7/4 and ViT-B/16, fp32 and bf16,
#   3. the full ViT-Lite-7/4 CIFAR-10 recipe (configs/cifar10/vit_lite_7_4.py), as `make train` runs it.
# Usage: DATASETS=path/with/cifar10 OUT=results-dir bash benchmarks/gpu_foundation.sh
set -uo pipefail
: "${DATASETS:?set DATASETS to the folder holding cifar10/}" "${OUT:?set OUT}"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 VITSCALE_CACHE=/tmp/vitscale-cache VITSCALE_DATASETS=$DATASETS
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
git log -1 --format='commit %H %cd' 2>/dev/null
python3 -m pytest -q -x -p no:cacheprovider tests 2>&1 | tail -4 | tee "$OUT/pytest.txt"
for args in "--model vit_lite_7_4 --batch 512 --precision fp32" \
            "--model vit_lite_7_4 --batch 512 --precision bf16" \
            "--model vit_base_patch16_224 --batch 128 --precision fp32" \
            "--model vit_base_patch16_224 --batch 128 --precision bf16"; do
  python3 -m vitscale bench step $args --steps 30 --rounds 3 --json | tee -a "$OUT/bench_step.jsonl"
done
timeout "${TRAIN_TIMEOUT:-420}" python3 -m vitscale train configs/cifar10/vit_lite_7_4.py \
  --data "$DATASETS/cifar10" --run-dir "$OUT/vit_lite_7_4" --no-progress ${TRAIN_ARGS:-}
echo "train exit $?"
