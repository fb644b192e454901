"""A small ViT that learns CIFAR-10 fast on a 2-core CPU.

    vitscale train configs/cifar10/quick_cpu.py --data ../shared/datasets/cifar10

Patch 8 on 32 px images gives 16 tokens (+1 class token): a quarter of the tokens of patch 4,
so about four times the images/s at this width, which beats a finer patch grid when the
budget is a few minutes of two CPU cores. Measured result: benchmarks/README.md.
"""

IMG_SIZE = 32
PATCH_SIZE = 8
HIDDEN_SIZE = 128
DEPTH = 4
NUM_HEADS = 4
MLP_RATIO = 2

BATCH_SIZE = 128
LEARNING_RATE = 2e-3
WEIGHT_DECAY = 0.05
NUM_EPOCHS = 4
WARMUP_EPOCHS = 0.25
LABEL_SMOOTHING = 0.1
LOG_EVERY = 50

clip_grad_norm = 1.0
