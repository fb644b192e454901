"""Seed 003's hybrid-parallel ViT on ImageNet-1k, 1D tensor mode: 64 GPUs as pipeline 16 x
tensor 4 (x data 1). A 6.4B-parameter ViT (width 4096, depth 32, 64 heads) at 224 px.

    vitscale train configs/imagenet1k/hybrid/vit_1d_tp4_pp16.py --dry-run     # plans it
    srun vitscale train configs/imagenet1k/hybrid/vit_1d_tp4_pp16.py --port 29500

The pipeline runs (1F1B over NUM_MICRO_BATCHES = 16 micro-batches, docs/parallelism.md
"Pipelines"), but not with the file's naive fp16: a launch stops at start with one line
(fp16 under a pipeline is not provided yet); `--set precision='bf16'` runs it.
`--dry-run` shows the layout and its derived values. vit_1d_tp8_dp8.py runs the same model
on 64 GPUs without a pipeline (tensor 8 x data 8).
"""

DATASET = "imagenet1k"

# hyperparameters; BATCH_SIZE is per data-parallel rank (the pipeline splits it into
# NUM_MICRO_BATCHES micro-batches)
BATCH_SIZE = 4096
LEARNING_RATE = 3e-3
WEIGHT_DECAY = 0.3
NUM_EPOCHS = 300
WARMUP_EPOCHS = 32

# model
IMG_SIZE = 224
PATCH_SIZE = 16
HIDDEN_SIZE = 4096
DEPTH = 32
NUM_HEADS = 64
MLP_RATIO = 4
NUM_CLASSES = 1000
CHECKPOINT = True                              # activation checkpointing of every block
SEQ_LENGTH = (IMG_SIZE // PATCH_SIZE) ** 2 + 1  # + the class token

TENSOR_PARALLEL_SIZE = 4
TENSOR_PARALLEL_MODE = "1d"
parallel = dict(
    pipeline=16,
    tensor=dict(mode=TENSOR_PARALLEL_MODE, size=TENSOR_PARALLEL_SIZE),
)

fp16 = dict(mode=AMP_TYPE.NAIVE)               # noqa: F821 (predefined in config files)
clip_grad_norm = 1.0

# pipeline
NUM_MICRO_BATCHES = parallel["pipeline"]
TENSOR_SHAPE = (BATCH_SIZE // NUM_MICRO_BATCHES, SEQ_LENGTH, HIDDEN_SIZE)
