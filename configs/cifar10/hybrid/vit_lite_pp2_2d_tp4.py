"""ViT-Lite-7/4 on CIFAR-10 on 8 processes as pipeline 2 x tensor 4 (2D, a 2 x 2 grid):
Colossal-AI's hybrid layout (vit_2d_tp4_pp16), scaled down to one CPU machine or one 8-GPU
node.

    vitscale run --nproc-per-node 8 train configs/cifar10/hybrid/vit_lite_pp2_2d_tp4.py --data ../shared/datasets/cifar10

Ranks are tensor fastest, then pipeline (docs/parallelism.md): ranks 0-3 hold the first
stage (patch embedding, class and position embeddings, blocks 0-3) on a 2 x 2 grid, ranks
4-7 the last stage (blocks 4-6, norm, head) on another. Grid rank (j, k) holds block
(j, k) of every matrix and reads half of each batch (chunk j): its 256 images run as
NUM_MICRO_BATCHES=4 micro-batches of 64 through a 1F1B schedule (theoretical bubble
(P-1)/(M+P-1) = 0.2), and between the stages it sends its block [64, 65, 128] of each
boundary activation (half the images, half the width) to the rank of the same grid
coordinates, and receives that block's gradient back. The recipe is vit_lite_7_4_vanilla.py's:
only `parallel` and the micro-batches differ.
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
    tensor=dict(mode="2d", size=4),   # q x q with q = 2 on each stage
    pipeline_schedule="1f1b",   # gpipe | 1f1b | interleaved_1f1b (+ pipeline_chunks=2) | ...
    pipeline_partition="uniform",
)
NUM_MICRO_BATCHES = 4           # per data-parallel rank and accumulation step: each grid
                                # rank's share (1/2 of the batch) splits into these

precision = "bf16"              # autocast to bfloat16 (no loss scaling needed)
gradient_accumulation = 1
clip_grad_norm = 1.0
