"""Seed 002: ViT-B/16 on Caltech-101, one GPU, the mixed-precision comparison.

    DATA=/path/to/caltech101 vitscale train configs/caltech101/vit_b16.py
    vitscale train configs/caltech101/vit_b16.py --set "fp16=dict(mode=AMP_TYPE.NAIVE)"

$DATA holds 101_ObjectCategories/<class>/*.jpg (or 101_ObjectCategories.tar.gz). Caltech-101
has no official split: data.test_fraction (20%) of each class is held out as test, chosen by
SEED (the same images on every run). 8,677 images at 224 px are 1.3 GB decoded, so the
device-resident pipeline holds them on the GPU: seed 002 saw its throughput bound by the data
loader; this one is not.
"""

MODEL = "vit_base_patch16_224"
DATASET = "caltech101"

BATCH_SIZE = 128
LEARNING_RATE = 3e-3
WEIGHT_DECAY = 0.3
NUM_EPOCHS = 100
WARMUP_EPOCHS = 10
LABEL_SMOOTHING = 0.1
MIXUP_ALPHA = 0.2

fp16 = dict(mode=AMP_TYPE.TORCH)
clip_grad_norm = 1.0
data = dict(pipeline="auto", test_fraction=0.2)
