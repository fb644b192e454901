"""A small ViT that learns CIFAR-10 fast on a 2-core CPU.

    vitscale train configs/cifar10/quick_cpu.py --data ../shared/datasets/cifar10
"""

IMG_SIZE = 32
PATCH_SIZE = 4
HIDDEN_SIZE = 128
DEPTH = 4
NUM_HEADS = 4
MLP_RATIO = 2

BATCH_SIZE = 256
LEARNING_RATE = 2e-3
WEIGHT_DECAY = 0.05
NUM_EPOCHS = 5
WARMUP_EPOCHS = 0.5
LABEL_SMOOTHING = 0.1
LOG_EVERY = 20

clip_grad_norm = 1.0
