"""Seed 003's hybrid-parallel ViT on ImageNet-1k, 2.5D tensor mode: pipeline 8 x tensor 8 (depth 2 of 2 x 2 grids; seed 003's own 2.5D file has depth 1, which is 2D): 64 GPUs
(x data 1). The 6.4B-parameter ViT: width 4096, depth 32, 64 heads, 224 px.

    vitscale train configs/imagenet1k/hybrid/vit_2p5d_tp8_pp8.py --dry-run     # plans it

Pipeline parallelism runs with 1D tensor parallelism only: with this grid mode a launch
stops at start with one line (not provided yet); `--dry-run` shows the layout and its
derived values.
"""

DATASET = "imagenet1k"

BATCH_SIZE = 4096               # per data-parallel rank; the pipeline splits it into micro-batches
LEARNING_RATE = 3e-3
WEIGHT_DECAY = 0.3
NUM_EPOCHS = 300
WARMUP_EPOCHS = 32

IMG_SIZE = 224
PATCH_SIZE = 16
HIDDEN_SIZE = 4096
DEPTH = 32
NUM_HEADS = 64
MLP_RATIO = 4
NUM_CLASSES = 1000
CHECKPOINT = True

parallel = dict(pipeline=8, tensor=dict(mode="2.5d", size=8, depth=2))

fp16 = dict(mode=AMP_TYPE.NAIVE)               # noqa: F821 (predefined in config files)
clip_grad_norm = 1.0

NUM_MICRO_BATCHES = parallel["pipeline"]
