"""ViT-Lite-7/4 on CIFAR-10: the seeds' recipe (seed 000; Colossal-AI benchmark/cifar vit_vanilla).

    vitscale train configs/cifar10/vit_lite_7_4.py --data ../shared/datasets/cifar10

Colossal-AI reports ~90.5% top-1 in ~16 min on 8x A100 with this recipe plus AutoAugment;
Compact Transformers report 91.38% at 200 epochs. Results with vitscale: benchmarks/README.md.
"""

MODEL = "vit_lite_7_4"          # width 256, depth 7, 4 heads, MLP ratio 2, patch 4, 32 px

TOTAL_BATCH_SIZE = 512          # global, per optimizer step
LEARNING_RATE = 2e-3
WEIGHT_DECAY = 3e-2
NUM_EPOCHS = 200
WARMUP_EPOCHS = 40
LABEL_SMOOTHING = 0.1

# data parallel only
parallel = dict(
    pipeline=1,
    tensor=dict(mode=None, size=1),
)

precision = "bf16"              # autocast to bfloat16 (no loss scaling needed)
gradient_accumulation = 1
clip_grad_norm = 1.0
