"""ViT-Lite-7/4 on CIFAR-10, data parallel only: seed 000's `vit_vanilla` config.

    vitscale run --nproc-per-node 4 train configs/cifar10/vit_lite_7_4_vanilla.py --data ../shared/datasets/cifar10

The same recipe as vit_lite_7_4_1d.py (and the other per-mode files): only `parallel` differs,
so every mode trains the same model on the same batches (tests/test_tensor_parallel_runs.py).
"""

DATASET = "cifar10"
MODEL = "vit_lite_7_4"          # width 256, depth 7, 4 heads, MLP ratio 2, patch 4, 32 px

TOTAL_BATCH_SIZE = 512          # global, per optimizer step
LEARNING_RATE = 2e-3
WEIGHT_DECAY = 3e-2
NUM_EPOCHS = 200
WARMUP_EPOCHS = 40
LABEL_SMOOTHING = 0.1

parallel = dict(
    pipeline=1,
    tensor=dict(mode=None, size=1),
)

precision = "bf16"              # autocast to bfloat16 (no loss scaling needed)
gradient_accumulation = 1
clip_grad_norm = 1.0
