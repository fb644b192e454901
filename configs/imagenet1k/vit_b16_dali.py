"""ViT-B/16 on ImageNet-1k from TFRecords read by NVIDIA DALI (seeds 001 and 003).

    pip install 'vitscale[dali]'
    vitscale prepare /path/to/ILSVRC2012 --dataset imagenet1k --to tfrecord --out /data/imagenet-tfrecords
    DATA=/data/imagenet-tfrecords vitscale run --nproc-per-node 8 vitscale train configs/imagenet1k/vit_b16_dali.py

DALI decodes the JPEGs on the GPU (nvJPEG) and does the random resized crop and flip there;
vitscale decides the order (seed, epoch, rank), so resume and sharding work as with every
pipeline. TFRecords made by imagenet-tools (train-00000-of-01024 + idx_files/) work too.
"""

MODEL = "vit_base_patch16_224"
DATASET = "imagenet1k"

TOTAL_BATCH_SIZE = 4096
LEARNING_RATE = 3e-3
WEIGHT_DECAY = 0.3
NUM_EPOCHS = 300
WARMUP_EPOCHS = 32
LABEL_SMOOTHING = 0.1
MIXUP_ALPHA = 0.2                # DALI does no RandAugment: Mixup only, as seed 001

parallel = dict(
    pipeline=1,
    tensor=dict(mode=None, size=1),
)

fp16 = dict(mode=AMP_TYPE.TORCH)
gradient_accumulation = 2
clip_grad_norm = 1.0
data = dict(pipeline="dali", dali_device="auto", num_workers=8)
