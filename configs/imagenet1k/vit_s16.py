"""ViT-S/16 on ImageNet-1k from raw JPEG folders (DeiT-S-sized model, seed 000's recipe).

    DATA=/path/to/ILSVRC2012 vitscale run --nproc-per-node 8 vitscale train configs/imagenet1k/vit_s16.py
"""

MODEL = "vit_small_patch16_224"  # 22.1M parameters
DATASET = "imagenet1k"

TOTAL_BATCH_SIZE = 1024
LEARNING_RATE = 1e-3
WEIGHT_DECAY = 0.05
NUM_EPOCHS = 300
WARMUP_EPOCHS = 5
LABEL_SMOOTHING = 0.1
DROP_PATH_RATE = 0.1

RANDAUGMENT = (2, 9)
MIXUP_ALPHA = 0.8
CUTMIX_ALPHA = 1.0

precision = "bf16"
clip_grad_norm = 1.0
data = dict(pipeline="auto", num_workers=8)
