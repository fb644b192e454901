"""ViT-Lite-7/4 on CIFAR-10 with 2D (SUMMA) tensor parallelism on a 2 x 2 grid: seed 000's
`vit_2d` config (Colossal-AI benchmark/cifar).

    vitscale run --nproc-per-node 4 train configs/cifar10/vit_lite_7_4_2d.py --data ../shared/datasets/cifar10

Each of the 4 ranks holds a quarter of every matrix (a 2 x 2 block) and works on half of the
batch and half of the width ([b/2, N, D/2]). The recipe is vit_lite_7_4_vanilla.py's: only
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
    tensor=dict(mode="2d", size=4),   # q x q with q = 2
)

precision = "bf16"              # autocast to bfloat16 (no loss scaling needed)
gradient_accumulation = 1
clip_grad_norm = 1.0
