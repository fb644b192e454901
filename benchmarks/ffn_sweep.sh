#!/usr/bin/env bash
# The CPU sweep of docs/experiments.md: configs/cifar10/quick_cpu.py on real CIFAR-10, 2 seeds per
# point. Each run is 60 steps of batch 128 (7,680 images, 15% of an epoch; the LR schedule,
# warmup included, is over those 60 steps), then the whole 10,000-image test set: the sweep was
# sized to ~20 minutes of 2 CPU cores, which were shared with other engineers' test suites
# (a load of 6 to 14). It compares early training, not converged models.
# All points run with the first seed before any runs with the second, so that a sweep cut
# short still covers every variant. Every run appends to $OUT/results.jsonl; running this
# again skips the recorded runs (the run id is a hash of the whole resolved config).
#   benchmarks/ffn_sweep.sh
set -u
VITSCALE=${VITSCALE:-.venv/bin/vitscale}
DATA=${DATA:-../shared/datasets/cifar10}
OUT=${OUT:-runs/sweeps/ffn-quick_cpu}
for repeats in 1 2; do
  COMMON=(configs/cifar10/quick_cpu.py --data "$DATA" --out "$OUT" --repeats $repeats
          --set NUM_EPOCHS=1 --set LIMIT_TRAIN_BATCHES=60 --set LOG_EVERY=20)
  # Dense MLP widths (quick_cpu's own MLP is MLP_RATIO 2 x 128 = 256).
  $VITSCALE sweep "${COMMON[@]}" --grid MLP_DIM=16,64,128,256,512
  # Pairs of FFN layers per block, each 128 wide: the parameters of one 256-wide MLP.
  $VITSCALE sweep "${COMMON[@]}" --set MLP_DIM=128 --grid FFN_PER_BLOCK=2
  # FFF trees at ~256 neurons: depth 3 x 16 trees (240), depth 5 x 4 (252), depth 7 x 1 (255).
  $VITSCALE sweep "${COMMON[@]}" --set FFN=fff --grid "FFF_DEPTH,FFF_TREES=(3,16),(5,4),(7,1)"
  # Fan-out 4 with softmax routing: depth 2 (21 nodes of 4 neurons) x 3 trees = 252 neurons.
  $VITSCALE sweep "${COMMON[@]}" --set FFN=fff --set FFF_FANOUT=4 --grid "FFF_DEPTH,FFF_TREES=(2,3)"
done
