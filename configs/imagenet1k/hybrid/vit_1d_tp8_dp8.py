"""Seed 003's 6.4B-parameter ViT (width 4096, depth 32, 64 heads, 224 px) on 64 GPUs as 1D
tensor parallelism over the 8 GPUs of a node x data parallelism over 8 nodes (FSDP2 stage 2).

    srun vitscale train configs/imagenet1k/hybrid/vit_1d_tp8_dp8.py --port 29500
    vitscale train configs/imagenet1k/hybrid/vit_1d_tp8_dp8.py --dry-run --world 64

Tensor parallelism stays inside a node (its all-reduces every block are the traffic that needs
NVLink); ZeRO-2 over the nodes shards gradients and optimizer state: per GPU 1/8 of each
block's matrices, then 1/8 of that for gradients and AdamW's moments. Sequence parallelism
keeps LayerNorm inputs and the residual stream at 1/8 of the tokens.
"""

DATASET = "imagenet1k"

BATCH_SIZE = 64                 # per GPU; global = 64 x 8 data-parallel ranks = 512
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

parallel = dict(
    pipeline=1,
    tensor=dict(mode="1d", size=8, sequence_parallel=True),
)
zero = dict(stage=2)

precision = "bf16"
clip_grad_norm = 1.0
