"""The ImageNet recipe (configs/imagenet1k/vit_s16.py) on Imagenette, a real 10-class subset.

    vitscale train configs/imagenette/vit_s16.py --data ../shared/datasets/imagenette

9,469 training images at 224 px are 1.4 GB decoded: the device-resident pipeline holds them
in GPU memory (or RAM) and does the random resized crop, flips and Mixup/CutMix there.
"""

MODEL = "vit_small_patch16_224"
DATASET = "imagenette"

BATCH_SIZE = 128
LEARNING_RATE = 1e-3
WEIGHT_DECAY = 0.05
NUM_EPOCHS = 100
WARMUP_EPOCHS = 5
LABEL_SMOOTHING = 0.1
DROP_PATH_RATE = 0.1

MIXUP_ALPHA = 0.8
CUTMIX_ALPHA = 1.0

precision = "bf16"
clip_grad_norm = 1.0
data = dict(pipeline="auto")
