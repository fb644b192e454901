"""ViT-Lite-7/4 on CIFAR-10 with pipeline parallelism over 2 ranks (torch.distributed.pipelining).

    vitscale run --nproc-per-node 2 train configs/cifar10/vit_lite_7_4_pp2.py --data ../shared/datasets/cifar10

Stages 0 and 2 run on rank 0, stages 1 and 3 on rank 1 (the patch embedding on stage 0, the
norm and head on stage 3); each step's 512 images run as NUM_MICRO_BATCHES=8 micro-batches of 64 through an interleaved
1F1B schedule with 2 stages per rank (4 stages of 2, 2, 2 and 1 blocks; theoretical bubble
(P-1)/(v M + P-1) = 1/17). The recipe is vit_lite_7_4_vanilla.py's: only `parallel` and the
micro-batches differ. With 4 processes the pipeline is replicated over 2 data-parallel ranks.
"""

DATASET = "cifar10"
MODEL = "vit_lite_7_4"          # width 256, depth 7, 4 heads, MLP ratio 2, patch 4, 32 px

TOTAL_BATCH_SIZE = 512          # global, per optimizer step
LEARNING_RATE = 2e-3
WEIGHT_DECAY = 3e-2
NUM_EPOCHS = 200
WARMUP_EPOCHS = 40
LABEL_SMOOTHING = 0.1

parallel = dict(
    pipeline=2,
    pipeline_schedule="interleaved_1f1b",
    pipeline_chunks=2,
)
NUM_MICRO_BATCHES = 8

precision = "bf16"              # autocast to bfloat16 (no loss scaling needed)
gradient_accumulation = 1
clip_grad_norm = 1.0
