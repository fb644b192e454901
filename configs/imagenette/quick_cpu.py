"""Imagenette on a 2-core CPU: a small ViT on 64 px random resized crops, a few minutes.

    vitscale train configs/imagenette/quick_cpu.py --data ../shared/datasets/imagenette

The images are decoded once into a 72 px store (data.store_size), so the device pipeline crops
from 72 px images; evaluation uses the classic resize (73 px) + centre crop (64 px).
Measured: 53.6% top-1 on Imagenette's val/ in 153 s on 2 CPU cores (benchmarks/README.md).
"""

DATASET = "imagenette"
IMG_SIZE = 64
PATCH_SIZE = 8
HIDDEN_SIZE = 128
DEPTH = 4
NUM_HEADS = 4
MLP_RATIO = 2

BATCH_SIZE = 128
LEARNING_RATE = 2e-3
WEIGHT_DECAY = 0.05
NUM_EPOCHS = 5
WARMUP_EPOCHS = 0.5
LABEL_SMOOTHING = 0.1
RRC_SCALE = (0.35, 1.0)
LOG_EVERY = 20

clip_grad_norm = 1.0
data = dict(pipeline="auto", store_size=72)
