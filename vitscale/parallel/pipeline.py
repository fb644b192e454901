"""Pipeline parallelism: the ViT's blocks split into stages on torch.distributed.pipelining.

    parallel = dict(pipeline=2, pipeline_schedule="1f1b")      # + NUM_MICRO_BATCHES = 4
    vitscale run --nproc-per-node 2 train configs/cifar10/vit_lite_7_4_pp2.py

**Stages** are cut from the pure model the way torchtitan cuts its models: each stage is a
copy of the (meta) VisionTransformer that keeps only the modules it owns, with their fully
qualified names unchanged, so checkpoints and exports do not depend on the layout:

    first stage   patch_embed, cls_token, pos_embed and blocks.0 .. blocks.k
    middle        blocks.i .. blocks.j       (a ModuleList that keeps the original indices)
    last stage    blocks.m .. blocks.L-1, norm, head

The blocks are split by `pipeline_partition`: 'uniform' (the same number of blocks per stage,
Colossal-AI's policy for its ViT), 'balanced' (parameter counts, the embedding counted on the
first stage and the head on the last; the split that minimises the largest stage), or an
explicit tuple `pipeline_stages` of blocks per stage. Interleaved schedules give each rank
v = `pipeline_chunks` stages, stage s on pipeline rank s mod P ("loop"); ZBV places stage r
and 2P-1-r on rank r (a "V").

**Schedules** (`pipeline_schedule`): gpipe (Huang et al. 2019), 1f1b (PipeDream-Flush,
Narayanan et al. 2021), interleaved_1f1b (Narayanan et al. 2021), interleaved_zero_bubble and
zbv_zero_bubble (Qi et al. 2024), where this torch has them. Each optimizer step runs one
schedule over A x M micro-batches (A = gradient accumulation, M = NUM_MICRO_BATCHES; the
per-data-rank batch of A x M x b images): accumulation is more micro-batches of the same
schedule, so the gradients are the same and the bubble is smaller. The loss of each
micro-batch is weighted by 1/(A M) before its backward (scale_grads=False), so the gradients
add up to those of the whole batch's mean loss.

**Tensor modes.** Each stage is split by the tensor mode as the whole model would be, and a
rank exchanges activations with the rank of the same tensor coordinates on its neighbouring
stages. Under 1D every tensor rank sends the whole [b, N, D]; a grid rank (2D, 2.5D, 3D)
reads its own share of the batch, b/s images (s = q, d q, q^2), cuts that share into the
micro-batches and sends its block [b/s, N, D/q]; the last stage's logits are [b/s, C], every
class whole (the grid's classifier sums its partial logits), and the loss is its share's.

**Data.** The first stage reads images, the last reads labels; the others read nothing
(engine: build_engine gives them no training loader). Evaluation runs the stages forward
only, one batch at a time, over point-to-point sends (`PipelinedModel.forward`).

**Costs** (parallel/costs.py `_pipeline`, `bubble_fraction`): each micro-batch's boundary
activation (b, N, D), a grid rank's block of it, crosses each of the vP-1 stage boundaries
forward and its gradient backward; the bubble is (P-1)/(M'+P-1) for GPipe and 1F1B,
(P-1)/(v M'+P-1) interleaved (M' = A M micro-batches per step). The engine logs each stage's
busy and idle time per step.
"""

from __future__ import annotations

import copy
import functools
import logging
import time

import torch
import torch.distributed as dist
from torch import nn

from ..errors import ConfigError

log = logging.getLogger(__name__)

SCHEDULES = {"gpipe": "ScheduleGPipe", "1f1b": "Schedule1F1B",
             "interleaved_1f1b": "ScheduleInterleaved1F1B",
             "interleaved_zero_bubble": "ScheduleInterleavedZeroBubble",
             "zbv_zero_bubble": "ScheduleZBVZeroBubble"}


def schedule_class(name: str) -> type:
    """The torch.distributed.pipelining class of schedule `name` (refused if this torch lacks it)."""
    import torch.distributed.pipelining as pipelining
    if name == "zbv_zero_bubble" and torch_version() < (2, 14):
        # Measured on torch 2.11 (gloo): ZBV's first step sends between the two stages one
        # rank holds over the network ("Pair is not connected"); torch 2.14 runs it.
        raise ConfigError(f"pipeline_schedule='zbv_zero_bubble' fails in torch "
                          f"{torch.__version__}'s first schedule step (a send from a rank to "
                          "itself): use torch >= 2.14, or 'interleaved_zero_bubble'")
    cls = getattr(pipelining, SCHEDULES[name], None)
    if cls is None:
        raise ConfigError(f"pipeline_schedule={name!r} needs torch.distributed.pipelining."
                          f"{SCHEDULES[name]}, which torch {torch.__version__} does not have: "
                          "use '1f1b' or 'interleaved_1f1b'")
    return cls


def torch_version() -> tuple[int, int]:
    """(major, minor) of the torch this runs on: what the pipelining API can do depends on it."""
    major, minor = torch.__version__.split("+")[0].split(".")[:2]
    return int(major), int(minor)


# ---- partitions -------------------------------------------------------------------------------

def block_parameters(model: nn.Module) -> list[int]:
    return [sum(p.numel() for p in block.parameters()) for block in model.blocks]


def partition(depth: int, stages: int, policy: str = "uniform", explicit=None,
              weights: list[int] | None = None, first_extra: int = 0, last_extra: int = 0
              ) -> list[range]:
    """Block indices of each of `stages` stages.

    uniform   depth // stages blocks each; the first depth % stages stages take one more
    balanced  contiguous stages minimising the largest stage's parameters (`weights` per
              block, plus `first_extra` on the first stage and `last_extra` on the last)
    explicit  a tuple of blocks per stage, summing to depth
    """
    if explicit is not None:
        sizes = list(explicit)
        if len(sizes) != stages or sum(sizes) != depth or min(sizes) < 1:
            raise ConfigError(f"parallel.pipeline_stages={tuple(explicit)} must give {stages} "
                              f"stages of at least one block each, {depth} blocks in all")
    elif policy == "uniform":
        sizes = [depth // stages + (i < depth % stages) for i in range(stages)]
    elif policy == "balanced":
        sizes = _balanced(weights or [1] * depth, stages, first_extra, last_extra)
    else:
        raise ConfigError(f"unknown pipeline_partition {policy!r}: 'uniform' or 'balanced'")
    out, start = [], 0
    for n in sizes:
        out.append(range(start, start + n))
        start += n
    return out


def _balanced(weights: list[int], stages: int, first_extra: int, last_extra: int) -> list[int]:
    """Contiguous split of `weights` into `stages` non-empty parts minimising the largest part
    (dynamic programming, O(stages x depth^2): depths are tens)."""
    n = len(weights)
    prefix = [0]
    for w in weights:
        prefix.append(prefix[-1] + w)

    def cost(s: int, i: int, j: int) -> int:   # stage s holds blocks i..j-1
        return prefix[j] - prefix[i] + (first_extra if s == 0 else 0) + \
            (last_extra if s == stages - 1 else 0)

    inf = float("inf")
    best = [[inf] * (n + 1) for _ in range(stages + 1)]
    cut = [[0] * (n + 1) for _ in range(stages + 1)]
    best[0][0] = 0
    for s in range(1, stages + 1):
        for j in range(s, n - (stages - s) + 1):
            for i in range(s - 1, j):
                value = max(best[s - 1][i], cost(s - 1, i, j))
                if value < best[s][j]:
                    best[s][j], cut[s][j] = value, i
    sizes, j = [], n
    for s in range(stages, 0, -1):
        i = cut[s][j]
        sizes.append(j - i)
        j = i
    return sizes[::-1]


def stage_ids(pp_rank: int, pipeline: int, chunks: int, schedule: str) -> list[int]:
    """The stages pipeline rank `pp_rank` holds: 'loop' placement (s mod P), or a V for ZBV."""
    if schedule == "zbv_zero_bubble":
        return [pp_rank, 2 * pipeline - 1 - pp_rank]
    return [pp_rank + k * pipeline for k in range(chunks)]


def stage_rank(stage: int, pipeline: int, schedule: str) -> int:
    if schedule == "zbv_zero_bubble" and stage >= pipeline:
        return 2 * pipeline - 1 - stage
    return stage % pipeline


def stage_partition(model: nn.Module, cfg, dims) -> list[range]:
    """The blocks of every stage of `model` for layout `dims` (all P x v stages)."""
    stages = dims.pipeline * dims.pipeline_chunks
    weights = block_parameters(model)
    first = sum(p.numel() for n, p in model.named_parameters()
                if not n.startswith(("blocks.", "norm.", "head.")))
    last = sum(p.numel() for n, p in model.named_parameters() if n.startswith(("norm.", "head.")))
    return partition(len(model.blocks), stages, cfg.parallel.pipeline_partition,
                     cfg.parallel.pipeline_stages, weights, first, last)


# ---- stage modules -----------------------------------------------------------------------------

class StageBlocks(nn.ModuleList):
    """A ModuleList that keeps the blocks' original indices as their names (blocks.5 stays
    blocks.5 on the stage that holds it); indexing and iteration are positional."""

    def __init__(self, blocks: dict[int, nn.Module]):
        super().__init__()
        for index, block in blocks.items():
            self.add_module(str(index), block)

    def __getitem__(self, idx):
        values = list(self._modules.values())
        if isinstance(idx, slice):
            return values[idx]
        return values[idx]


def _stage_forward(self, x: torch.Tensor) -> torch.Tensor:
    """A stage's forward: images -> tokens on the first stage, blocks, tokens -> logits on the
    last (the model's own embed and forward_head)."""
    if self.patch_embed is not None:
        x = self.embed(x)
    for block in self.blocks:
        x = block(x)
    if self.head is not None:
        x = self.forward_head(x)
    return x


@functools.cache
def _stage_class(cls: type) -> type:
    return type(f"{cls.__name__}Stage", (cls,), {"forward": _stage_forward})


def split_stage(model: nn.Module, blocks: range, first: bool, last: bool) -> nn.Module:
    """A copy of `model` (on the meta device) that keeps `blocks` and, on the first stage, the
    embeddings, on the last the norm and head; names are unchanged."""
    stage = copy.deepcopy(model)
    stage.blocks = StageBlocks({i: stage.blocks[i] for i in blocks})
    if not first:
        stage.patch_embed = None
        stage.cls_token = None
        stage.pos_embed = None
    if not last:
        stage.norm = None
        stage.head = None
    stage.__class__ = _stage_class(type(model))
    return stage


class PipelinedModel(nn.Module):
    """What the engine holds on a pipeline rank: every parameter of this rank's stages under
    its own name (the optimizer, norms, checkpoints and exports read it), and a forward that
    runs the whole pipeline forward only (evaluation): the first stage embeds the images that
    every pipeline rank was given, each stage sends its output to the next, and the last
    stage's logits are broadcast over the pipeline group, so every rank returns them.

    Training does not call forward: the engine runs `Pipeline.step` (a schedule)."""

    def __init__(self, stages: list[nn.Module], pipeline: "Pipeline"):
        super().__init__()
        self._pipeline = [pipeline]   # a list: not a submodule
        for stage in stages:
            inner = getattr(stage, "module", stage)       # DDP keeps the stage inside
            for name, child in inner.named_children():
                if child is None:
                    continue
                if name == "blocks":
                    mine = getattr(self, "blocks", None)
                    merged = dict(mine.named_children()) if mine is not None else {}
                    merged.update(child.named_children())
                    self.blocks = StageBlocks({int(k): v for k, v in
                                               sorted(merged.items(), key=lambda kv: int(kv[0]))})
                else:
                    self.add_module(name, child)
            for name, param in inner.named_parameters(recurse=False):
                self.register_parameter(name, param)
        self.size = getattr(getattr(stages[0], "module", stages[0]), "size", None)

    def no_weight_decay_names(self) -> set[str]:
        return {n for n, p in self.named_parameters()
                if p.ndim <= 1 or n in ("cls_token", "pos_embed")}

    def train(self, mode: bool = True):
        super().train(mode)
        for stage in self._pipeline[0].stages:
            stage.train(mode)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._pipeline[0].forward_only(x)


class Pipeline:
    """This rank's stages, their torch.distributed.pipelining stages and the schedule."""

    def __init__(self, stages: list[nn.Module], ids: list[int], dims, mesh, device,
                 size, residual_dtype: torch.dtype, input_dtype: torch.dtype,
                 logits_dtype: torch.dtype):
        self.stages, self.ids, self.dims, self.device = stages, ids, dims, device
        self.group = mesh["pp"].get_group()
        self.num_stages = dims.pipeline * dims.pipeline_chunks
        self.name = dims.pipeline_schedule
        self.micro_batches = self.micro_batch = 0   # set by build_schedule
        self.size = size
        self.residual_dtype, self.input_dtype, self.logits_dtype = \
            residual_dtype, input_dtype, logits_dtype
        self.has_first = 0 in ids
        self.has_last = self.num_stages - 1 in ids
        self.last_rank = dist.get_global_rank(
            self.group, stage_rank(self.num_stages - 1, dims.pipeline, self.name))
        self.schedule = None
        self.stage_blocks: tuple[int, ...] = ()   # blocks of every stage (set by apply.py)
        self.busy = 0.0           # seconds in this rank's stage computations, last step
        self.step_seconds = 0.0

    # -- shapes: this rank's own, static (PipelineStage exchanges none at run time)
    def _input_meta(self, stage: int, batch: int) -> torch.Tensor:
        """What stage `stage` takes on this rank for `batch` of this rank's images: images on
        the first stage, else the boundary activation [b, N, D], of which a grid rank holds
        the width chunk [b, N, D/q] (its `batch` already its own share, b/s)."""
        s = self.size
        if stage == 0:
            return torch.empty(batch, 3, s.img_size, s.img_size, dtype=self.input_dtype,
                               device="meta")
        # requires_grad: the stage computes this input's gradient and sends it back.
        return torch.empty(batch, s.seq_length, s.width // self.dims.grid_side,
                           dtype=self.residual_dtype, device="meta", requires_grad=True)

    def _output_meta(self, stage: int, batch: int) -> torch.Tensor:
        """The last stage's logits [b, C] (a grid's classifier sums its partial logits over
        the width, so every class is whole on each rank), else the next stage's input."""
        if stage == self.num_stages - 1:
            return torch.empty(batch, self.size.num_classes, dtype=self.logits_dtype,
                               device="meta", requires_grad=True)
        return self._input_meta(stage + 1, batch)

    def build_schedule(self, loss_fn, micro_batches: int, micro_batch: int) -> None:
        """The schedule of `micro_batches` micro-batches of `micro_batch` images over this
        rank's stages, with static shapes (no shape exchange at run time). `micro_batch`
        counts this rank's images: a grid rank's share of the batch is cut into the
        micro-batches along dim 0, as every other rank's batch is."""
        from torch.distributed.pipelining import PipelineStage
        self.micro_batches, self.micro_batch = micro_batches, micro_batch
        b = micro_batch
        pipe_stages = []
        for module, sid in zip(self.stages, self.ids):
            stage = PipelineStage(module, sid, self.num_stages, self.device,
                                  input_args=(self._input_meta(sid, b),),
                                  output_args=(self._output_meta(sid, b),), group=self.group)
            self._time(stage)
            pipe_stages.append(stage)
        cls = schedule_class(self.name)
        if len(pipe_stages) == 1:
            self.schedule = cls(pipe_stages[0], self.micro_batches, loss_fn=loss_fn,
                                scale_grads=False)
        else:
            self.schedule = cls(pipe_stages, self.micro_batches, loss_fn=loss_fn,
                                scale_grads=False)

    def _time(self, stage) -> None:
        """Add the seconds each forward and backward computation of `stage` takes to busy."""
        for name in ("forward_one_chunk", "backward_one_chunk", "backward_weight_one_chunk"):
            method = getattr(stage, name, None)
            if method is None:
                continue

            def timed(*args, _method=method, **kwargs):
                start = time.perf_counter()
                try:
                    return _method(*args, **kwargs)
                finally:
                    self.busy += time.perf_counter() - start
            setattr(stage, name, timed)

    def step(self, images: torch.Tensor | None, labels: torch.Tensor | None) -> None:
        """One schedule over the whole per-rank batch: images on the first stage, labels on
        the last (None elsewhere)."""
        self.busy = 0.0
        start = time.perf_counter()
        kwargs = {"target": labels} if self.has_last else {}
        if self.has_first:
            # The device pipeline hands channels-last batches; torch < 2.14's stages check an
            # input's strides against the contiguous ones they declared (PipeliningShapeError).
            self.schedule.step(images.contiguous(), **kwargs)
        else:
            self.schedule.step(**kwargs)
        self.step_seconds = time.perf_counter() - start

    @torch.no_grad()
    def forward_only(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of `x` through every stage (evaluation); every pipeline rank passes `x`."""
        batch = len(x)
        out = None
        for sid in range(self.num_stages):
            here = stage_rank(sid, self.dims.pipeline, self.name)
            mine = sid in self.ids
            if mine:
                if sid == 0:
                    inp = x
                elif stage_rank(sid - 1, self.dims.pipeline, self.name) == here:
                    inp = out
                else:
                    meta = self._input_meta(sid, batch)
                    inp = torch.empty(meta.shape, dtype=meta.dtype, device=self.device)
                    src = stage_rank(sid - 1, self.dims.pipeline, self.name)
                    dist.recv(inp, src=dist.get_global_rank(self.group, src), group=self.group)
                out = self.stages[self.ids.index(sid)](inp)
                nxt = stage_rank(sid + 1, self.dims.pipeline, self.name) \
                    if sid + 1 < self.num_stages else None
                if nxt is not None and nxt != here:
                    dist.send(out.contiguous(), dst=dist.get_global_rank(self.group, nxt),
                              group=self.group)
        logits = out if self.has_last else torch.empty(
            batch, self.size.num_classes, dtype=self.logits_dtype, device=self.device)
        dist.broadcast(logits, src=self.last_rank, group=self.group)
        return logits

    def broadcast_from_last(self, t: torch.Tensor) -> torch.Tensor:
        """`t` as the last stage has it, on every pipeline rank (one broadcast over "pp")."""
        dist.broadcast(t, src=self.last_rank, group=self.group)
        return t

    @property
    def measured_bubble(self) -> float:
        """The share of the last step this rank did not compute (waiting on its neighbours)."""
        return max(0.0, 1.0 - self.busy / self.step_seconds) if self.step_seconds else 0.0


def split_model(model: nn.Module, cfg, dims, mesh) -> tuple[list[nn.Module], list[int], list]:
    """This rank's stage modules (meta, names unchanged) and their stage indices, with the
    partition of all stages."""
    parts = stage_partition(model, cfg, dims)
    pp_rank = mesh["pp"].get_local_rank()
    ids = stage_ids(pp_rank, dims.pipeline, dims.pipeline_chunks, dims.pipeline_schedule)
    n = len(parts)
    stages = [split_stage(model, parts[s], s == 0, s == n - 1) for s in ids]
    return stages, ids, parts


def describe_partition(parts: list[range], dims) -> str:
    return ", ".join(f"stage {s} (rank {stage_rank(s, dims.pipeline, dims.pipeline_schedule)}):"
                     f" blocks {r.start}-{r.stop - 1}" for s, r in enumerate(parts))
