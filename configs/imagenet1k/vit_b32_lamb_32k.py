"""Seed 001: ViT-B/32 pre-training on ImageNet-1k at batch 32K with LAMB.

    DATA=/data/imagenet-tfrecords vitscale run --nproc-per-node 4 vitscale train configs/imagenet1k/vit_b32_lamb_32k.py

32,768 images per optimizer step = 256 per GPU x data-parallel size x accumulation; the
accumulation is derived for the world size the run is launched on (4 GPUs: 32 steps, as in
the seed; 8 GPUs: 16). LAMB (You et al. 2019) with lr 1.8e-2 at this batch, weight decay 0.1,
150 warmup epochs then linear decay, fp16 with a dynamic loss scaler, clipping at 1.0, and
Mixup only (no RandAugment), as the seed trains it. LAMB's trust ratios use global norms, also
when parameters are sharded (docs/precision-and-optimizers.md).

The scaled-down check on CPU (2 epochs of CIFAR-10, tested in tests/test_optim.py):

    vitscale train configs/imagenet1k/vit_b32_lamb_32k.py --data ../shared/datasets/cifar10 \\
        --set DATASET=cifar10 --set MODEL=None --set IMG_SIZE=32 --set PATCH_SIZE=8 \\
        --set HIDDEN_SIZE=64 --set DEPTH=2 --set NUM_HEADS=2 --set MLP_RATIO=2 \\
        --set TOTAL_BATCH_SIZE=4096 --set BATCH_SIZE=512 --set NUM_EPOCHS=2 \\
        --set WARMUP_EPOCHS=1 --set "data.pipeline='auto'" --set precision=None --set fp16=None
"""

MODEL = "vit_base_patch32_224"
DATASET = "imagenet1k"

TOTAL_BATCH_SIZE = 32768          # global, per optimizer step
BATCH_SIZE = 256                  # per GPU per micro-step; accumulation is derived
OPTIMIZER = "lamb"
LEARNING_RATE = 1.8e-2            # at LR_REFERENCE_BATCH: a smaller TOTAL_BATCH_SIZE scales it
LR_REFERENCE_BATCH = 32768
LR_SCALING = "sqrt"               # square-root scaling, as LAMB's authors scale across batches
WEIGHT_DECAY = 0.1
NUM_EPOCHS = 300
WARMUP_EPOCHS = 150
LR_SCHEDULE = "linear"
LABEL_SMOOTHING = 0.1
MIXUP_ALPHA = 0.2

parallel = dict(
    pipeline=1,
    tensor=dict(mode=None, size=1),
)

fp16 = dict(mode=AMP_TYPE.TORCH)
clip_grad_norm = 1.0
data = dict(pipeline="dali")
