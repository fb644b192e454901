"""The one cost model: parameters and communication per rank per optimizer step, analytically.

docs/parallelism.md states these formulas; the engine's measurements (accounting.py) are held
against them by the tests (within 5%), and the layout planner will rank layouts with them.
Nothing else in vitscale computes a cost.

Notation (per rank, per optimizer step): L blocks, D width, N = patches + 1 tokens, C classes,
b images per micro-batch on this rank, A micro-batches (accumulation), T tensor-parallel and
R data-parallel ranks, P_r the parameter values this rank holds before data-parallel sharding
(1/T of the split matrices plus every replicated parameter). Bytes per element: e_c for the
matmul outputs (the compute dtype: 2 under autocast fp16/bf16), e_r for the residual stream
and its gradients (4 under autocast: LayerNorm and the residual add run in fp32), e_g for
gradients, e_p for parameters. A collective of S bytes over n ranks moves, per rank,
2 (n-1)/n S (all-reduce) or (n-1)/n S (all-gather of S, reduce-scatter of S, broadcast).

1D tensor parallelism, per micro-batch (Megatron-LM, Shoeybi et al. 2019):
    without sequence parallelism  4 L all-reduces of b N D values: forward after proj and
                                  fc2 (e_c), backward in front of q/k/v and fc1 (e_r)
    with sequence parallelism     2 L reduce-scatters (forward, e_c) + 2 L all-gathers
    (Korthikanti et al. 2022)     (their backward), 2 L + 1 all-gathers (forward, after each
                                  norm, e_r) + 2 L reduce-scatters (their backward) + 1
                                  all-gather (backward of the first block's token split), of
                                  b N' D values, N' = T ceil(N / T) (uneven token shards
                                  are padded); once per step, the partial LayerNorm
                                  gradients: one all-reduce of D values (e_r) per norm
                                  parameter, 2 (2 L + 1)
    class-parallel head           forward 3 all-reduces of b fp32 values (loss_parallel: row
                                  maxima, exp-sums, target logits; with soft targets: 1 of b
                                  and 1 of 3 b), backward 1 all-reduce of b D (the head's input
                                  gradient), and an all-gather of b C' logits (C' = T ceil(C/T))
                                  for accuracy
Data parallelism, per step, over R ranks (Rajbhandari et al. 2020, "ZeRO"):
    DDP / FSDP2 replicating       all-reduce of P_r gradient values (e_g)
    ZeRO-1 (DDP + ZeroRedundancyOptimizer)  + broadcast of the P_r updated parameters (e_p)
    ZeRO-2 (FSDP2)                reduce-scatter of P~ gradients; all-gather of P~
                                  parameters in each micro-batch's forward
    ZeRO-3 (FSDP2)                the same, and a second all-gather in each backward
    where P~ pads every parameter's first dimension to a multiple of R (FSDP2's shards).
Global norms (gradient clipping: one per step; LAMB and LARS: two per adapted group): one
all-reduce of a vector of fp32 squared sums per mesh dimension the tensors are split on.
Activation checkpointing runs each block's forward again in backward, up to the last tensor
backward needs (torch's early stop): proj's all-reduce once more per block (with sequence
parallelism: proj's reduce-scatter and both norms' all-gathers), not fc2's.
fp16 loss scaling (torch AMP or naive): one all-reduce of one fp32 overflow flag over every
rank. Not modelled: DDP's one-off broadcast of its bucket order in the first step (~100 B).
"""

from __future__ import annotations

import math
import dataclasses
import functools
from collections import defaultdict
from dataclasses import dataclass

import torch

from ..models import ViTSize, build_model

_BYTES = {torch.float32: 4, torch.float16: 2, torch.bfloat16: 2}


@dataclass(frozen=True)
class StepShape:
    """What one optimizer step moves data for, on one rank."""

    size: ViTSize
    dims: object                # distributed.mesh.ParallelDims
    micro_batch: int            # b: images per micro-batch on this rank
    accumulation: int = 1       # A
    precision: str = "fp32"
    optimizer: str = "adamw"
    clip: bool = False
    soft_targets: bool = False  # Mixup/CutMix or label smoothing: the soft loss path
    checkpointing: bool = False  # activation checkpointing: each block's forward runs twice
    # Pipeline (dims.pipeline > 1): `accumulation` counts every micro-batch of the step (A x M),
    # the schedule is dims.pipeline_schedule unless given here, and `pipeline_rank` asks for
    # one rank's point-to-point bytes (None: the average over the pipeline ranks).
    schedule: str | None = None
    pipeline_rank: int | None = None
    # Blocks of each of the P x v stages (pipeline.partition); None: the uniform partition.
    stage_blocks: tuple[int, ...] | None = None

    @property
    def low_precision_model(self) -> bool:
        """Weights (and so the residual stream) in 16 bits: naive fp16 and pure bf16, and bf16
        under FSDP2, whose MixedPrecisionPolicy casts parameters and inputs to bf16."""
        return self.precision in ("naive_fp16", "pure_bf16") or (
            self.precision == "bf16" and self.dims.uses_fsdp)

    @property
    def compute_bytes(self) -> int:      # e_c: matmul outputs
        return 4 if self.precision == "fp32" else 2

    @property
    def residual_bytes(self) -> int:     # e_r: the residual stream, LayerNorm outputs
        return 2 if self.low_precision_model else 4

    @property
    def gradient_bytes(self) -> int:     # e_g: gradients as data parallelism reduces them
        if self.dims.uses_fsdp:
            return 4                     # FSDP2 reduces in fp32 (reduce_dtype)
        return 2 if self.low_precision_model else 4

    @property
    def parameter_bytes(self) -> int:    # e_p: parameters as they are gathered or broadcast
        return 2 if self.low_precision_model else 4


def bus_bytes(kind: str, message: float, n: int) -> float:
    """Bytes one rank sends for a collective of `message` bytes on `n` ranks (a point-to-point
    send: the message)."""
    if n <= 1:
        return 0.0
    if kind == "send":
        return float(message)
    return (2 if kind == "all_reduce" else 1) * (n - 1) / n * message


@functools.lru_cache(maxsize=256)
def parameter_shapes(size: ViTSize, class_parallel_head: bool = False
                     ) -> list[tuple[str, tuple[int, ...], int | None]]:
    """(name, full shape, dimension 1D tensor parallelism splits or None) per parameter."""
    from .tensor.onedim import split_dims
    with torch.device("meta"):
        model = build_model(size)
    split = split_dims(model, class_parallel_head)
    return [(n, tuple(p.shape), split[n]) for n, p in model.named_parameters()]


def local_shape(shape: tuple[int, ...], dim: int | None, t: int, rank: int = 0
                ) -> tuple[int, ...]:
    """This tensor rank's piece of `shape` split along `dim` as torch.chunk splits it."""
    if dim is None or t == 1:
        return shape
    chunk = math.ceil(shape[dim] / t)
    part = max(0, min(chunk, shape[dim] - rank * chunk))
    return shape[:dim] + (part,) + shape[dim + 1:]


@functools.lru_cache(maxsize=64)
def _grid_plans(size: ViTSize, mode: str) -> tuple:
    """(name, full shape, BlockPlan) per parameter: the plans the grid layers are placed by
    (tensor/twod.py, threed.py), read off a model that holds nothing."""
    from .tensor.threed import plan_3d
    from .tensor.twod import plan_2d
    with torch.device("meta"):
        model = build_model(size)
    plans = plan_3d(model) if mode == "3d" else plan_2d(model, mode)
    return tuple((n, tuple(p.shape), plans[n]) for n, p in model.named_parameters())


@functools.lru_cache(maxsize=1024)
def grid_blocks(size: ViTSize, dims) -> list[tuple[str, tuple[int, ...], object]]:
    """(name, local shape, BlockPlan) of every parameter in a grid mode (2D, 2.5D, 3D)."""
    sizes = dict(dims.tensor_dims)
    return [(n, plan.local_shape(shape, sizes), plan)
            for n, shape, plan in _grid_plans(size, dims.tensor_mode)]


def parameters_per_rank(size: ViTSize, dims, tensor_rank: int = 0) -> int:
    """P_r: parameter values one rank holds after tensor parallelism (before data sharding)."""
    if dims.grid_mode:
        return sum(math.prod(s) for _, s, _ in grid_blocks(size, dims))
    return sum(math.prod(local_shape(s, d, dims.tensor, tensor_rank))
               for _, s, d in parameter_shapes(size, dims.class_parallel_head))


def parameters_held(size: ViTSize, dims, tensor_rank: int = 0, data_rank: int = 0) -> int:
    """Parameter values one rank holds between steps: P_r, or under FSDP2 (ZeRO-2/3) its
    shard of each parameter's first dimension (torch.chunk's split over R ranks)."""
    if not dims.uses_fsdp or dims.data_parallel == "fsdp_replicate":
        return parameters_per_rank(size, dims, tensor_rank)
    total = 0
    for _, shape, d in parameter_shapes(size, dims.class_parallel_head):
        local = local_shape(shape, d, dims.tensor, tensor_rank)
        total += math.prod(local_shape(local, 0, dims.data, data_rank))
    return total


def _stage_ends(shape: StepShape) -> tuple[bool, bool]:
    """(first, last): whether this rank holds the first pipeline stage (patch embedding,
    class token, position embedding) and the last (final norm, head). Both without a
    pipeline, and for pipeline_rank None (the average rank, counted with both: an upper
    bound on what a stage's parameters add)."""
    dims = shape.dims
    if dims.pipeline == 1 or shape.pipeline_rank is None:
        return True, True
    from .pipeline import stage_ids
    name, chunks = _schedule(shape)
    ids = stage_ids(shape.pipeline_rank, dims.pipeline, chunks, name)
    return 0 in ids, dims.pipeline * chunks - 1 in ids


def _held_shapes(shape: StepShape) -> list[tuple[str, tuple[int, ...], int | None]]:
    """parameter_shapes of the parameters this rank holds (1D or none): under a pipeline, its
    stage's blocks (shape.size's depth) and the embeddings or the norm and head where it has
    those stages."""
    first, last = _stage_ends(shape)
    return [(name, full, d) for name, full, d in
            parameter_shapes(shape.size, shape.dims.class_parallel_head)
            if (first or not name.startswith(("patch_embed.", "cls_token", "pos_embed")))
            and (last or not name.startswith(("norm.", "head.")))]


def _held_blocks(shape: StepShape) -> list[tuple[str, tuple[int, ...], object]]:
    """grid_blocks of the parameters this rank holds: under a pipeline, its stage's blocks
    (shape.size's depth) and the embeddings or the norm and head where it has those stages."""
    first, last = _stage_ends(shape)
    return [(name, local, plan) for name, local, plan in grid_blocks(shape.size, shape.dims)
            if (first or not name.startswith(("patch_embed.", "cls_token", "pos_embed")))
            and (last or not name.startswith(("norm.", "head.")))]


def _split_dims(shape: StepShape) -> list[tuple[str, int, tuple[str, ...]]]:
    """(name, number of dimensions, mesh dimensions it is split over) per parameter."""
    dims = shape.dims
    if dims.grid_mode:
        sizes = dict(dims.tensor_dims)
        out = []
        for name, local, plan in _held_blocks(shape):
            split = tuple(dict.fromkeys(d for d, _ in plan.shard if sizes[d] > 1))
            out.append((name, len(local), split))
        return out
    out = []
    for name, full, d in _held_shapes(shape):
        groups = (["dp"] if dims.sharded_data_parallel else []) + \
            (["tp"] if d is not None and dims.tensor > 1 else [])
        out.append((name, len(full), tuple(groups)))
    return out


def _norm_vectors(shape: StepShape) -> list[tuple[str, int]]:
    """(mesh dimension, vector length) of every all-reduce that global norms make per step."""
    by_dims: dict[tuple[str, ...], int] = defaultdict(int)
    decay_split: dict[tuple[str, ...], int] = defaultdict(int)
    for name, ndim, groups in _split_dims(shape):
        full = (0,) * ndim
        by_dims[groups] += 1
        if len(full) > 1 and name not in ("cls_token", "pos_embed"):
            decay_split[groups] += 1   # the adapted (weight-decay) group of LAMB/LARS
    calls: list[tuple[str, int]] = []
    if shape.clip:
        calls += [(g, n) for groups, n in by_dims.items() for g in groups]
    if shape.optimizer in ("lamb", "lars"):
        calls += [(g, n) for groups, n in decay_split.items() for g in groups] * 2
    return calls


class Traffic:
    """Collectives of one step, per mesh dimension and kind: bytes per rank and calls."""

    def __init__(self):
        self.bytes: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.calls: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))

    def add(self, dim: str, kind: str, message: float, n: int, times: float = 1) -> None:
        """`times` collectives of kind `kind` of `message` bytes on the `n` ranks of `dim`."""
        if n > 1 and times and message:
            self.bytes[dim][kind] += times * bus_bytes(kind, message, n)
            self.calls[dim][kind] += times

    def by_dim(self) -> dict[str, dict[str, float]]:
        return {d: dict(k) for d, k in self.bytes.items() if any(k.values())}


def _grid_tensor(shape: StepShape, out: Traffic) -> None:
    """2D / 2.5D / 3D: the collectives of tensor/twod.py and threed.py (their docstrings)."""
    dims, size = shape.dims, shape.size
    q, a = dims.grid_side, shape.accumulation
    L, D, M, N, C = size.depth, size.width, size.mlp_hidden, size.seq_length, size.num_classes
    b = shape.micro_batch // dims.batch_split            # images per micro-batch on a rank
    e_c, e_w = shape.compute_bytes, shape.parameter_bytes
    linears = [("q", D, D), ("k", D, D), ("v", D, D), ("proj", D, D), ("fc1", D, M),
               ("fc2", M, D)]
    # Activation checkpointing recomputes each block's whole forward: a custom autograd
    # function's saved tensors are packed when its forward returns, so torch's early stop
    # cannot cut fc2's collectives short (it does for 1D's native ops).
    fwd = 1 + shape.checkpointing
    n = a * L                                            # each Linear runs once per block
    if dims.tensor_mode in ("2d", "2.5d"):
        for name, i, o in linears:
            x, w = b * N * i * e_c, i * (o // q) * e_c      # the gathered X[j, :] and W[:, k]
            out.add("tp_row", "all_gather", x, q, n * (fwd + 1))
            out.add("tp_row", "reduce_scatter", x, q, n)
            out.add("tp_col", "all_gather", w, q, n * (fwd + 1))
            out.add("tp_col", "reduce_scatter", i * (o // q) * e_w, q, n)
        width = "tp_row"
    else:
        for name, i, o in linears:
            gather, scatter = ("tp_z", "tp_y") if name in ("proj", "fc2") else ("tp_y", "tp_z")
            x, y = b * q * N * (i // q) * e_c, b * q * N * (o // q) * e_c   # [b/q, N, in/q] ...
            w = (o // q) * (i // q) * e_c
            out.add(gather, "all_gather", x, q, n * (fwd + 1))
            out.add(gather, "reduce_scatter", x, q, n)
            out.add(scatter, "reduce_scatter", y, q, n * fwd)
            out.add(scatter, "all_gather", y, q, n)
            out.add("tp_x", "all_gather", w, q, n * (fwd + 1))
            out.add("tp_x", "reduce_scatter", (o // q) * (i // q) * e_w, q, n)
        width = "tp_z"
    # LayerNorm statistics over the split width: 2 all-reduces of b N fp32 forward (again when
    # recomputed), 1 of 2 b N backward; the classifier's partial logits, forward. Under a
    # pipeline the final norm and the classifier run on the last stage only.
    _, last = _stage_ends(shape)
    norms = 2 * L + last
    out.add(width, "all_reduce", b * N * 4, q, a * (norms + 2 * L * shape.checkpointing) * 2)
    out.add(width, "all_reduce", 2 * b * N * 4, q, a * norms)
    out.add(width, "all_reduce", b * C * e_c, q, a * last)
    # Once per step: gradients that are partial sums over ranks that saw other images, one
    # flat all-reduce per group (of the parameters this rank's stages hold).
    by_partial: dict[tuple[str, ...], int] = defaultdict(int)
    sizes = dict(dims.tensor_dims)
    for _, local, plan in _held_blocks(shape):
        by_partial[tuple(d for d in plan.partial if sizes[d] > 1)] += math.prod(local)
    for partial, numel in by_partial.items():
        for d in partial:
            out.add(d, "all_reduce", numel * shape.gradient_bytes, sizes[d])


def _one_d(shape: StepShape, out: Traffic) -> None:
    """1D: the collectives of tensor/onedim.py (its docstring)."""
    dims, size = shape.dims, shape.size
    t, a, b = dims.tensor, shape.accumulation, shape.micro_batch
    L, D, N, C = size.depth, size.width, size.seq_length, size.num_classes
    e_c, e_r = shape.compute_bytes, shape.residual_bytes
    # Activation checkpointing recomputes each block's forward in backward, and torch stops the
    # recomputation once every tensor backward needs is back: fc2's collective, whose result
    # nothing in the block keeps, is not repeated; proj's (and with sequence parallelism both
    # norms' all-gathers) are.
    again = 1 if shape.checkpointing else 0
    if dims.sequence_parallel:
        tokens = t * math.ceil(N / t)
        m_c, m_r = b * tokens * D * e_c, b * tokens * D * e_r
        out.add("tp", "reduce_scatter", m_c, t, a * (2 + again) * L)
        out.add("tp", "reduce_scatter", m_r, t, a * 2 * L)
        # Forward: after each norm (2 L in the blocks, 1 after them); backward: of each
        # reduce-scatter (2 L) and of the first block's token split (the embedding's gradient
        # is needed whole).
        out.add("tp", "all_gather", m_c, t, a * 2 * L)
        out.add("tp", "all_gather", m_r, t, a * ((2 + 2 * again) * L + 2))
        # The norms' weights and biases saw 1/T of the tokens: their gradients are partial
        # sums, all-reduced once per step (by FSDP2 when it runs, else by the engine).
        out.add("tp", "all_reduce", D * e_r, t, 2 * (2 * L + 1))
    else:
        out.add("tp", "all_reduce", b * N * D * e_c, t, a * L * (2 + again))
        out.add("tp", "all_reduce", b * N * D * e_r, t, a * L * 2)
    if dims.class_parallel_head:
        for message in ([b * 4, 3 * b * 4] if shape.soft_targets else [b * 4] * 3):
            out.add("tp", "all_reduce", message, t, a)
        out.add("tp", "all_reduce", b * D * e_r, t, a)
        out.add("tp", "all_gather", b * t * math.ceil(C / t) * e_c, t, a)


DDP_BUCKET = 25 * 2 ** 20   # DDP's default bucket_cap_mb: gradients travel in 25 MiB messages


def _held_locals(shape: StepShape) -> list[tuple[int, ...]]:
    """This rank's local shape (after tensor parallelism) of every parameter it holds."""
    if shape.dims.grid_mode:
        return [local for _, local, _ in _held_blocks(shape)]
    t = shape.dims.tensor
    return [local_shape(full, d, t) for _, full, d in _held_shapes(shape)]


def _fsdp_units(shape: StepShape) -> int:
    """FSDP2 units whose collectives a rank runs: one per block and one per stage root that
    holds parameters (data.py shards each block, then the rest). Without a pipeline the root
    holds the embeddings and the head; under one, only a first or last stage's root has any."""
    if shape.dims.pipeline == 1 or shape.pipeline_rank is None:
        return shape.size.depth + 1
    first, last = _stage_ends(shape)
    return shape.size.depth + first + last


def _data(shape: StepShape, out: Traffic) -> None:
    """Data parallelism: DDP, ZeRO-1, FSDP2 (parallel/data.py's table), over the parameters
    this rank holds (under a pipeline, its stages')."""
    dims = shape.dims
    r, a = dims.data, shape.accumulation
    held = _held_locals(shape)
    p_r = sum(math.prod(local) for local in held)
    e_g, e_p = shape.gradient_bytes, shape.parameter_bytes
    style = dims.data_parallel
    if style in ("ddp", "ddp_zero1"):
        buckets = max(1, math.ceil(p_r * e_g / DDP_BUCKET))
        out.add("dp", "all_reduce", p_r * e_g / buckets, r, buckets)
    units = _fsdp_units(shape)
    if style == "fsdp_replicate":           # one all-reduce per FSDP unit: each block, the root
        out.add("dp", "all_reduce", p_r * e_g / units, r, units)
    if style == "ddp_zero1":                # each parameter from the rank that stepped it
        out.add("dp", "broadcast", p_r * e_p / len(held), r, len(held))
    if style in ("fsdp_stage2", "fsdp_stage3"):
        # Each parameter's first dimension padded to a multiple of R (torch.chunk's shards).
        padded = sum(math.ceil(local[0] / r) * r * math.prod(local[1:]) for local in held)
        if dims.pipeline > 1:
            # The schedule keeps gathered parameters until the step's last backward
            # (set_reshard_after_backward(False)): stage 2 gathers each unit once a step;
            # stage 3 reshards after every micro-batch's forward, so gathers it for each of
            # the a forwards and once more at the first backward. Exact for GPipe (all
            # forwards, then all backwards) and measured so for 1F1B and interleaved 1F1B at
            # a = 2; a schedule that runs a forward between two backwards of a stage gathers
            # again after it (at most 2a).
            gathers = a + 1 if style == "fsdp_stage3" else 1
        else:
            gathers = a * (2 if style == "fsdp_stage3" else 1)
        out.add("dp", "reduce_scatter", padded * e_g / units, r, units)
        out.add("dp", "all_gather", padded * e_p / units, r, units * gathers)


def stage_shape(shape: StepShape) -> StepShape:
    """The share of the model one pipeline rank holds, as a model of that many blocks: for
    `pipeline_rank`, the blocks of its stages (the partition `stage_blocks`, default uniform;
    _stage_ends says whether it has the embeddings and the head); for the average rank,
    ceil(L / P) blocks (with both ends: an upper bound)."""
    dims = shape.dims
    if dims.pipeline == 1:
        return shape
    if shape.pipeline_rank is None:
        blocks = math.ceil(shape.size.depth / dims.pipeline)
    else:
        from .pipeline import partition, stage_ids
        name, chunks = _schedule(shape)
        stages = dims.pipeline * chunks
        sizes = shape.stage_blocks or tuple(len(r) for r in partition(shape.size.depth, stages))
        blocks = sum(sizes[s] for s in stage_ids(shape.pipeline_rank, dims.pipeline, chunks, name))
    return dataclasses.replace(shape, size=dataclasses.replace(shape.size, depth=blocks))


def _schedule(shape: StepShape) -> tuple[str, int]:
    """(schedule, stages per rank v) of a pipelined step: the layout's own, or the one the
    StepShape names (the planner's short names included) with v = 2 where it interleaves."""
    if shape.schedule is None:
        return shape.dims.pipeline_schedule, shape.dims.pipeline_chunks
    name = {"interleaved": "interleaved_1f1b", "zero_bubble": "zbv_zero_bubble"}.get(
        shape.schedule, shape.schedule)
    return name, 1 if name in ("gpipe", "1f1b") else 2


def bubble_fraction(shape: StepShape) -> float:
    """The share of a pipeline step a stage waits (Huang et al. 2019, GPipe; Narayanan et al.
    2021 for 1F1B and the interleaved schedule; Qi et al. 2024 for zero bubble):
    (P-1)/(M+P-1) for GPipe and 1F1B, (P-1)/(v M + P-1) interleaved with v stages per rank,
    ~0 for the zero-bubble schedules (their weight-gradient passes fill the bubble when the
    forward, input-gradient and weight-gradient passes cost alike); M = micro-batches per
    step (`accumulation`: gradient accumulation runs as more micro-batches of one schedule)."""
    p, m = shape.dims.pipeline, shape.accumulation
    if p == 1:
        return 0.0
    name, v = _schedule(shape)
    if name.endswith("zero_bubble"):
        return 0.0
    return (p - 1) / (v * m + p - 1)


def pipeline_sends(dims, schedule: str, chunks: int, rank: int | None = None) -> float:
    """Point-to-point sends per micro-batch of pipeline rank `rank` (None: the average over
    the P ranks): each of the rank's stages sends its output forward (but the last) and its
    input gradient backward (but the first), except to a stage on the same rank (the V of
    ZBV turns on rank P-1)."""
    from .pipeline import stage_ids, stage_rank
    p = dims.pipeline
    stages = p * chunks
    ranks = range(p) if rank is None else [rank]
    sends = 0
    for r in ranks:
        for s in stage_ids(r, p, chunks, schedule):
            sends += s + 1 < stages and stage_rank(s + 1, p, schedule) != r
            sends += s > 0 and stage_rank(s - 1, p, schedule) != r
    return sends / len(ranks)


def _pipeline(shape: StepShape, out: Traffic) -> None:
    """Point-to-point activations between stages: each micro-batch's boundary activation
    forward and its gradient backward, b N D e_r bytes (1/T of the tokens with sequence
    parallelism, the rank's block in a grid mode), sent by `pipeline_sends` per micro-batch
    (2 (vP-1)/P on average, the first and last rank half of the others); then, once per step,
    the last stage broadcasts the step's loss and hits (2 fp32 values) over the pipeline, and
    gradient clipping all-reduces the squared norm (1 value) over it."""
    dims, size = shape.dims, shape.size
    message = shape.micro_batch * size.seq_length * size.width * shape.residual_bytes
    if dims.grid_mode:
        message /= dims.batch_split * dims.grid_side
    elif dims.sequence_parallel:
        message /= dims.tensor
    p = dims.pipeline
    name, chunks = _schedule(shape)
    out.add("pp", "send", message, p,
            shape.accumulation * pipeline_sends(dims, name, chunks, shape.pipeline_rank))
    out.add("pp", "broadcast", 8, p)
    if shape.clip:
        out.add("pp", "all_reduce", 4, p)


def traffic(shape: StepShape) -> Traffic:
    """Every collective of one optimizer step on one rank (bytes and calls). With pipeline
    parallelism, per stage: ceil(L / P) blocks, `accumulation` counting every micro-batch."""
    out = Traffic()
    if shape.dims.pipeline > 1:
        _pipeline(shape, out)
        shape = stage_shape(shape)
    dims = shape.dims
    if dims.grid_mode:
        _grid_tensor(shape, out)
    elif dims.tensor > 1:
        _one_d(shape, out)
    if dims.data > 1:
        _data(shape, out)
    sizes = {"dp": dims.data, **dict(dims.tensor_dims)}
    for dim, length in _norm_vectors(shape):
        out.add(dim, "all_reduce", length * 4, sizes[dim])
    if shape.precision in ("fp16", "naive_fp16") and dims.world > 1:
        # (A mesh dimension that spans every rank uses the world group: it is named so.)
        where = next((d for d, n in sizes.items() if n == dims.world), "world")
        out.add(where, "all_reduce", 4, dims.world)
    return out


def communication(shape: StepShape) -> dict[str, dict[str, float]]:
    """Bytes per rank per optimizer step: {mesh dimension: {collective: bytes}}."""
    return traffic(shape).by_dim()


# ---- compute and memory -----------------------------------------------------------------------

def forward_flops(size: ViTSize) -> dict[str, float]:
    """Forward FLOPs of one image (a multiply-add is 2): {'blocks': ..., 'other': ...}.

    Per block: q, k, v and proj 4 x 2 N D^2; the MLP 2 x 2 N D M; attention's two products
    (Q K^T and A V) 2 x 2 N^2 D. Other: the patch embedding 2 (N-1) (3 P^2) D and the head
    2 D C. Backward costs twice the forward; activation checkpointing adds one forward.
    """
    N, D, M = size.seq_length, size.width, size.mlp_hidden
    block = 8 * N * D * D + 4 * N * D * M + 4 * N * N * D
    other = 2 * (N - 1) * 3 * size.patch ** 2 * D + 2 * D * size.num_classes
    return {"blocks": size.depth * block, "other": other}


def step_flops(shape: StepShape) -> float:
    """FLOPs one rank computes per optimizer step (forward, backward, recomputation)."""
    dims, flops = shape.dims, forward_flops(shape.size)
    passes = 3 + (1 if shape.checkpointing else 0)
    images = shape.micro_batch * shape.accumulation            # per data-parallel rank
    # Blocks are split over the tensor group; 1D computes the embedding and head whole on
    # every tensor rank, the grid modes split them with the batch.
    other = flops["other"] / (dims.tensor if dims.grid_mode else 1)
    return passes * images * (flops["blocks"] / dims.tensor + other) / dims.pipeline


def activation_bytes(shape: StepShape) -> float:
    """Bytes kept for backward by one micro-batch's forward on one rank (what
    accounting.ActivationMeter measures), per block and for the embedding and head.

    A block keeps, per token: its input and the residual sum after attention (LayerNorm
    inputs, e_r), the two LayerNorm outputs (matmul inputs, e_c), q, k and v and the
    attention output (4 D, e_c), the MLP's hidden activations before and after GELU (2 M,
    e_c), and per head two statistics (fp32). 1D splits the matmul outputs over T (q, k, v,
    attention output, MLP hidden), and with sequence parallelism the LayerNorm inputs too; the
    grid modes hold every tensor for b/s images at width / q. Checkpointing keeps each block's
    input only, plus one block's activations while it recomputes.
    """
    dims, size = shape.dims, shape.size
    b, N, D, M, H = shape.micro_batch, size.seq_length, size.width, size.mlp_hidden, size.heads
    e_c, e_r = shape.compute_bytes, shape.residual_bytes
    t = dims.tensor
    if dims.grid_mode:
        share = dims.batch_split * dims.grid_side      # images x width a rank holds: 1/(s q)
        block = b * N * (2 * D * e_r + (2 * D + 4 * D + 2 * M) * e_c) / share \
            + b * N * H * 8 / share
        inputs = b * N * D * e_r / share
    else:
        split = t if t > 1 else 1
        norms_in = 2 * D * e_r / (split if dims.sequence_parallel else 1)
        block = b * N * (norms_in + 2 * D * e_c + (4 * D + 2 * M) * e_c / split) \
            + b * N * H * 8 / split
        inputs = b * N * D * e_r / (split if dims.sequence_parallel else 1)
    images = b / (dims.batch_split if dims.grid_mode else 1)
    embed = images * (3 * size.img_size ** 2 * e_r + N * D * e_r)
    if shape.checkpointing:
        return size.depth * inputs + block + embed
    return size.depth * block + embed


def memory_bytes(shape: StepShape) -> dict[str, float]:
    """Bytes one rank holds: parameters, gradients, optimizer state, activations (one
    micro-batch, plus the whole parameters FSDP2 gathers for compute: one block at a time
    under ZeRO-3, all of them from forward to backward under ZeRO-2), and their sum as the
    peak."""
    dims, size = shape.dims, shape.size
    held = parameters_held(size, dims) / dims.pipeline
    per_rank = parameters_per_rank(size, dims) / dims.pipeline
    fsdp = dims.data_parallel in ("fsdp_stage2", "fsdp_stage3")
    masters = shape.precision in ("naive_fp16", "pure_bf16")
    params = held * (2 + 4 if masters else 4) if not fsdp else held * 4
    grads = (held if fsdp else per_rank) * (2 if masters else 4)
    states = {"adamw": 2, "lamb": 2, "sgd": 1, "lars": 1}.get(shape.optimizer, 2)
    optim_share = held if fsdp else per_rank / (dims.data if dims.data_parallel == "ddp_zero1"
                                                else 1)
    optimizer = optim_share * states * 4
    activations = activation_bytes(stage_shape(shape))
    if dims.pipeline > 1:   # 1F1B keeps min(P, M) micro-batches in flight (GPipe all M)
        in_flight = shape.accumulation if shape.schedule == "gpipe" else \
            min(dims.pipeline, shape.accumulation)
        activations *= in_flight
    if dims.data_parallel == "fsdp_stage3":   # one block's parameters gathered at a time
        activations += parameters_per_rank(size, dims) / max(size.depth, 1) * 4
    elif dims.data_parallel == "fsdp_stage2":  # gathered in forward, kept until backward ends
        activations += parameters_per_rank(size, dims) / dims.pipeline * 4
    return {"parameters": params, "gradients": grads, "optimizer": optimizer,
            "activations": activations,
            "peak": params + grads + optimizer + activations}
