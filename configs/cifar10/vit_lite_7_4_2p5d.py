"""ViT-Lite-7/4 on CIFAR-10 with 2.5D (Tesseract) tensor parallelism, depth 2 of 2 x 2 grids:
seed 000's `vit_2p5d` config (Colossal-AI benchmark/cifar, where `DEPTH = 1` is this depth).

    vitscale run --nproc-per-node 8 train configs/cifar10/vit_lite_7_4_2p5d.py --data ../shared/datasets/cifar10

Each depth layer of 4 ranks runs 2D on a quarter of the batch ([b/4, N, D/2]); the two layers
hold the same blocks and add up their gradients. The recipe is vit_lite_7_4_vanilla.py's: only
`parallel` differs (docs/parallelism.md says what each mode costs).
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
    tensor=dict(mode="2.5d", size=8, depth=2),   # depth x q x q with q = 2
)

precision = "bf16"              # autocast to bfloat16 (no loss scaling needed)
gradient_accumulation = 1
clip_grad_norm = 1.0
