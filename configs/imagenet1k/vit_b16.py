"""ViT-B/16 on ImageNet-1k from raw JPEG folders (seed 000's recipe, DataLoader pipeline).

    DATA=/path/to/ILSVRC2012 vitscale run --nproc-per-node 8 vitscale train configs/imagenet1k/vit_b16.py

$DATA holds train/<wnid>/*.JPEG and val/<wnid>/*.JPEG (or train.tar / val.tar of them). 1.28M
images do not fit in memory: data.pipeline 'auto' picks the DataLoader with worker processes
(RandomResizedCrop + flip + RandAugment per image, Mixup/CutMix on the GPU). For TFRecords and
DALI see vit_b16_dali.py.
"""

MODEL = "vit_base_patch16_224"   # 86.6M parameters
DATASET = "imagenet1k"

TOTAL_BATCH_SIZE = 4096          # global, per optimizer step
LEARNING_RATE = 3e-3
WEIGHT_DECAY = 0.3
NUM_EPOCHS = 300
WARMUP_EPOCHS = 32
LABEL_SMOOTHING = 0.1

RANDAUGMENT = (2, 9)             # num_ops, magnitude (Cubuk et al. 2020)
MIXUP_ALPHA = 0.2
CUTMIX_ALPHA = 0.0

parallel = dict(
    pipeline=1,
    tensor=dict(mode=None, size=1),
)

fp16 = dict(mode=AMP_TYPE.TORCH)
gradient_accumulation = 2        # per-device batch = 4096 / (data-parallel size x 2)
clip_grad_norm = 1.0
data = dict(pipeline="auto", num_workers=8)
