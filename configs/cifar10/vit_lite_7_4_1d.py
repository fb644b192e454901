"""ViT-Lite-7/4 on CIFAR-10 with 1D (Megatron) tensor parallelism over 4 ranks: seed 000's
`vit_1d` config (Colossal-AI benchmark/cifar).

    vitscale run --nproc-per-node 4 train configs/cifar10/vit_lite_7_4_1d.py --data ../shared/datasets/cifar10

4 ranks hold one attention head each and a quarter of every q/k/v/proj/fc1/fc2 matrix; with
8 processes the 4 tensor ranks are replicated over 2 data-parallel ranks. The recipe is
vit_lite_7_4_vanilla.py's: only `parallel` differs (docs/parallelism.md says what each
option costs).
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
    tensor=dict(mode="1d", size=4),   # + sequence_parallel=True, head="class_parallel"
)

precision = "bf16"              # autocast to bfloat16 (no loss scaling needed)
gradient_accumulation = 1
clip_grad_norm = 1.0
