"""Turn a pure model into the trained one, in one fixed order (torchtitan's, see DESIGN.md):

    0. pipeline split           with pipeline > 1: this rank's stages, cut from the meta model
                                with names unchanged (pipeline.py); steps 1-7 then run on
                                each stage as they run on the whole model otherwise
    1. tensor parallelism       shards q/k/v/fc1 column-wise, proj/fc2 row-wise (tensor/)
    2. activation checkpointing per block; must wrap the sharded block (checkpointing.py)
    3. torch.compile            per block; compiles what will actually run
    4. data parallelism         FSDP2 (data.py), on the meta device like steps 1-3
    5. weights                  allocate this rank's shards, fill them with one process's
                                initial weights or INIT_FROM's (materialize.py)
    6. precision                casts and fp32 master copies (precision.py)
    7. data parallelism         DDP, which needs real weights (it broadcasts rank 0's)

The model arrives on the meta device: nothing is allocated until step 5, so no rank ever
holds the whole model. Pipeline parallelism splits the model into stages before step 1, so
that tensor parallelism, checkpointing, compilation and data parallelism apply to each stage
(FSDP2 and DDP per stage, as torchtitan does; pipelining drives their gradient syncs), and
step 5 draws the one-process initial weights over the whole model, each stage keeping its
own. Each step logs what it did; the result carries the OutputLayout (layout.py) by which the
engine reduces loss and metrics, and with a pipeline the Pipeline (its stages and schedule).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch
from torch import nn

from .checkpointing import checkpoint_module
from .data import apply_ddp, apply_fsdp
from .layout import OutputLayout
from .materialize import materialize
from .tensor.grid import layouts, reduce_partial_gradients, to_global, to_local

log = logging.getLogger(__name__)


@dataclass
class Parallelized:
    model: nn.Module          # what the engine calls (maybe DDP-wrapped)
    layout: OutputLayout
    grid_layouts: dict = field(default_factory=dict)  # parameter name -> GridLayout (2D/3D)
    pipeline: object = None   # parallel.pipeline.Pipeline with pipeline > 1 (model: PipelinedModel)

    def finish_gradients(self) -> None:
        """After the last backward of a step: add up gradients left as partial sums.

        A replicated parameter that sees a token shard (a sequence-parallel LayerNorm) gets
        a Partial gradient; FSDP2 reduces those itself, but without data parallelism this
        all-reduce over the tensor group (2 (T-1)/T x its size) happens here, once per step.
        A grid mode's block replicated over ranks that see other images (tensor/grid.py) is
        summed over them here, in one flat all-reduce per group.
        """
        from ..optim.norms import DTensor
        for p in self.model.parameters():
            g = p.grad
            if isinstance(g, DTensor) and any(pl.is_partial() for pl in g.placements):
                p.grad = g.redistribute(placements=p.placements)
        if self.grid_layouts:
            reduce_partial_gradients(self.model)

    def to_global(self, state: dict) -> dict:
        """A model or optimizer-state dict keyed by parameter name, with every parameter as
        its whole (a DTensor where it is sharded): what checkpoints and exports hold."""
        return to_global(state, self.grid_layouts) if self.grid_layouts else state

    def to_local(self, state: dict) -> dict:
        return to_local(state, self.grid_layouts) if self.grid_layouts else state


def parallelize(model: nn.Module, cfg, dims, mesh, device: torch.device, precision
                ) -> Parallelized:
    """Apply the steps above to `model` (built on the meta device) for layout `dims`."""
    if dims.pipeline > 1:
        return _parallelize_pipeline(model, cfg, dims, mesh, device, precision)
    model = _apply_steps(model, cfg, dims, mesh, device, precision)
    return Parallelized(model, output_layout(dims, mesh), layouts(model_of(model)))


def _parallelize_pipeline(model, cfg, dims, mesh, device, precision) -> Parallelized:
    """Step 0, then steps 1-7 on each of this rank's stages."""
    from .pipeline import Pipeline, PipelinedModel, describe_partition, split_model
    stages, ids, parts = split_model(model, cfg, dims, mesh)
    log.info("0/7 pipeline: %d stages over %d ranks (%s partition; %s); this rank holds "
             "stage%s %s", len(parts), dims.pipeline, cfg.parallel.pipeline_stages or
             cfg.parallel.pipeline_partition, describe_partition(parts, dims),
             "s" if len(ids) > 1 else "", ", ".join(map(str, ids)))
    stages = [_apply_steps(stage, cfg, dims, mesh, device, precision, whole=model,
                           verbose=i == 0) for i, stage in enumerate(stages)]
    low = torch.bfloat16
    residual = low if precision.name == "pure_bf16" or (
        precision.name == "bf16" and dims.uses_fsdp) else torch.float32
    pipeline = Pipeline(stages, ids, dims, mesh, device, model.size, residual_dtype=residual,
                        input_dtype=low if precision.name == "pure_bf16" else torch.float32,
                        logits_dtype=torch.float32 if precision.name == "fp32" else low)
    pipeline.stage_blocks = tuple(len(r) for r in parts)   # costs.StepShape.stage_blocks
    whole = PipelinedModel(stages, pipeline)
    # A grid mode's blocks under their names in the whole model: the partial-sum gradients of
    # this rank's stages are summed after the schedule, and to_global gives checkpoints and
    # exports each of its parameters whole, stage by stage.
    return Parallelized(whole, output_layout(dims, mesh), layouts(whole), pipeline=pipeline)


def _apply_steps(model: nn.Module, cfg, dims, mesh, device: torch.device, precision,
                 whole: nn.Module | None = None, verbose: bool = True) -> nn.Module:
    """Steps 1-7 on `model` (the whole model, or one pipeline stage of `whole`)."""
    if not verbose:
        previous = log.level
        log.setLevel(logging.WARNING)
        try:
            return _apply_steps(model, cfg, dims, mesh, device, precision, whole)
        finally:
            log.setLevel(previous)
    if dims.tensor_mode == "1d":
        from .tensor import apply_1d
        apply_1d(model, mesh["tp"], dims.sequence_parallel, dims.class_parallel_head)
        extras = (", sequence-parallel norms" if dims.sequence_parallel else "") + \
            (", class-parallel head + loss_parallel" if dims.class_parallel_head else "")
        log.info("1/7 tensor parallel: 1D over %d ranks (q, k, v, fc1 column-wise; proj, fc2 "
                 "row-wise%s)", dims.tensor, extras)
    elif dims.grid_mode:
        from .tensor import apply_2d, apply_3d
        (apply_3d if dims.tensor_mode == "3d" else apply_2d)(model, mesh, dims)
        log.info("1/7 tensor parallel: %s over %s ranks (%s), each holding its block of every "
                 "matrix and 1/%d of the batch", dims.tensor_mode.upper(),
                 " x ".join(str(n) for _, n in dims.tensor_dims),
                 ", ".join(name for name, _ in dims.tensor_dims), dims.batch_split)
    if cfg.CHECKPOINT:
        for block in model.blocks:
            checkpoint_module(block)
        log.info("2/7 activation checkpointing: each of %d blocks recomputed in backward",
                 len(model.blocks))
    if cfg.compile:
        for block in model.blocks:
            block.compile()
        log.info("3/7 torch.compile: each block")
    if dims.uses_fsdp:
        apply_fsdp(model, dims, mesh, precision.name)
        log.info("4/7 data parallel: FSDP2 %s over %d ranks", dims.data_parallel, dims.data)
        if dims.zero_stage == 1:
            log.info("zero stage 1 under tensor or pipeline parallelism runs as FSDP2 stage 2, "
                     "which holds less for the same communication (ZeroRedundancyOptimizer "
                     "cannot step DTensor parameters; pipeline stages compose with FSDP2)")
    materialize(model, device, cfg.SEED, cfg.INIT_FROM, whole=whole)
    log.info("5/7 weights: %s on %s", f"from {cfg.INIT_FROM}" if cfg.INIT_FROM else
             f"initialised from SEED={cfg.SEED}", device)
    model = precision.prepare_model(model)
    if dims.data_parallel in ("ddp", "ddp_zero1"):
        model = apply_ddp(model, dims, mesh, device)
        log.info("7/7 data parallel: DDP over %d ranks%s", dims.data,
                 " + ZeroRedundancyOptimizer" if dims.data_parallel == "ddp_zero1" else "")
    elif dims.data == 1 and dims.zero_stage is not None:
        log.warning("zero stage %d has nothing to shard with one data-parallel rank: ignored",
                    dims.zero_stage)
    return model


def model_of(model: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper (whose parameter names are the model's)."""
    return getattr(model, "module", model)


def output_layout(dims, mesh) -> OutputLayout:
    """Over which groups the batch is split, and each rank's share of the mean loss."""
    groups = [dims.data_mesh(mesh).get_group()] if dims.data > 1 else []
    batch_dims = {"2d": ("tp_col",), "2.5d": ("tp_dep", "tp_col"), "3d": ("tp_x", "tp_y")}
    groups += [mesh[name].get_group() for name in batch_dims.get(dims.tensor_mode, ())]
    part = dims.loader_shard(mesh)[0] % dims.batch_split if mesh is not None else 0
    return OutputLayout(batch_groups=tuple(groups), class_parallel=dims.class_parallel_head,
                        grad_scale=1.0 / dims.batch_split, batch_part=(part, dims.batch_split))
