"""Every layout of N processes the planner considers, and what each costs per rank.

A candidate fixes the parallel degrees (pipeline P, tensor mode and size T, depth d), ZeRO,
activation checkpointing and, with a pipeline, the micro-batches per step; the data size is
N / (P T). Each candidate is put through the same checks as a launch (plan.make_plan with
runnable=False, so pipelines are planned though this version cannot run them) and costed by
parallel/costs.py: memory, traffic by mesh dimension and by link, FLOPs, the bubble, and an
estimated step time on a device from hardware.py:

    compute   FLOPs / (peak x efficiency), divided by 1 - bubble under a pipeline
    tensor    bytes / link bandwidth + calls x latency, on the critical path
    data      the same, of which backward (2/3 of compute) hides what it can (DDP and FSDP
              reduce gradients while backward runs), on devices whose collectives do not
              take the computing cores (not a CPU node under gloo)
    pipeline  point-to-point bytes / bandwidth + calls x latency
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..config import Config
from ..errors import ConfigError
from ..parallel.costs import (StepShape, bubble_fraction, memory_bytes, step_flops, traffic)
from .hardware import Device

_TENSOR_DIMS_ORDER = ("dp_replicate", "dp_shard", "pp")


@dataclass(frozen=True)
class Candidate:
    pipeline: int = 1
    tensor: int = 1
    mode: str | None = None
    depth: int = 1
    sequence_parallel: bool = False
    zero: int | None = None
    checkpointing: bool = False
    micro_batches: int = 1          # pipeline micro-batches per step (1 without a pipeline)

    def describe(self) -> str:
        parts = []
        if self.pipeline > 1:
            parts.append(f"pp={self.pipeline} (M={self.micro_batches})")
        if self.tensor > 1:
            mode = self.mode + (f" d={self.depth}" if self.mode == "2.5d" else "") + \
                (" sp" if self.sequence_parallel else "")
            parts.append(f"tp={self.tensor} {mode}")
        parts.append("dp" + (f" zero={self.zero}" if self.zero else ""))
        if self.checkpointing:
            parts.append("ckpt")
        return ", ".join(parts)

    def config(self, cfg: Config) -> Config:
        """`cfg` with this layout (its checks come from make_plan)."""
        from ..config import ParallelConfig, TensorParallelConfig, ZeroConfig
        tensor = TensorParallelConfig(mode=self.mode, size=self.tensor, depth=self.depth,
                                      sequence_parallel=self.sequence_parallel)
        return dataclasses.replace(
            cfg, parallel=ParallelConfig(pipeline=self.pipeline, tensor=tensor),
            zero=ZeroConfig(stage=self.zero) if self.zero else None,
            CHECKPOINT=self.checkpointing,
            NUM_MICRO_BATCHES=self.micro_batches if self.pipeline > 1 else None,
            TENSOR_SHAPE=None, TENSOR_PARALLEL_SIZE=None, TENSOR_PARALLEL_MODE=None,
            TESSERACT_DEPTH=None, SUMMA_DIM=None)


@dataclass
class Estimate:
    candidate: Candidate
    layout: str                      # ParallelDims.describe()
    runnable: str | None             # None, or why this version cannot run it yet
    memory: dict[str, float]         # bytes per rank: parameters, gradients, optimizer, ...
    comm_by_dim: dict[str, float]    # bytes per rank per step by mesh dimension
    comm_intra: float
    comm_inter: float
    bubble: float
    flops: float                     # per rank per step
    seconds: float                   # estimated step time
    fits: bool

    def row(self) -> dict:
        return {"layout": self.candidate.describe(), "dims": self.layout,
                "runnable": self.runnable is None, "not_runnable_because": self.runnable,
                **{f"{k}_bytes": v for k, v in self.memory.items()},
                "comm_bytes_by_dim": self.comm_by_dim, "comm_intra_node_bytes": self.comm_intra,
                "comm_inter_node_bytes": self.comm_inter, "bubble": self.bubble,
                "flops_per_rank": self.flops, "step_seconds": self.seconds, "fits": self.fits}


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def candidates(world: int, depth: int, micro_batch_choices=(1, 2, 4)) -> list[Candidate]:
    """Every combination of degrees, modes and options for `world` processes (checks of
    divisibility by the model and batch come later, from make_plan)."""
    out = []
    for p in [d for d in _divisors(world) if d <= depth]:
        for t in _divisors(world // p):
            modes: list[tuple] = [(None, 1, False)] if t == 1 else []
            if t > 1:
                modes += [("1d", 1, False), ("1d", 1, True)]
                q2 = round(t ** 0.5)
                if q2 * q2 == t:
                    modes.append(("2d", 1, False))
                q3 = round(t ** (1 / 3))
                if q3 ** 3 == t:
                    modes.append(("3d", 1, False))
                for d in _divisors(t)[1:]:
                    q = round((t // d) ** 0.5)
                    if d > 1 and q > 1 and q * q * d == t:
                        modes.append(("2.5d", d, False))
            r = world // (p * t)
            # ZeRO-1 beside tensor or pipeline parallelism runs as ZeRO-2 (mesh.py
            # data_parallel): one candidate for both.
            zeros = [None] if r == 1 else [None, 2, 3] if t > 1 or p > 1 else [None, 1, 2, 3]
            for mode, d, sp in modes:
                for zero in zeros:
                    for ckpt in (False, True):
                        for m in ([1] if p == 1 else [p * k for k in micro_batch_choices]):
                            out.append(Candidate(p, t, mode, d, sp, zero, ckpt, m))
    return out


def _group_spans_nodes(dims, dim: str, gpus_per_node: int) -> bool:
    """Whether a mesh dimension's groups cross node boundaries (ranks fill nodes in order;
    the tensor dimensions are fastest, then pipeline, then data)."""
    order = [(n, s) for n, s in (("dp", dims.data), ("pp", dims.pipeline), *dims.tensor_dims)]
    names = [n for n, _ in order]
    if dim not in names:
        return dims.world > gpus_per_node
    stride = 1
    for name, size in reversed(order):
        if name == dim:
            return stride * size > gpus_per_node
        stride *= size
    return False


def estimate(cfg: Config, candidate: Candidate, world: int, device: Device,
             gpus_per_node: int, plan=None) -> Estimate:
    """Cost one layout (raises ConfigError when the config cannot take it)."""
    from ..plan import make_plan
    layout_cfg = candidate.config(cfg)
    plan = plan or make_plan(layout_cfg, world_size=world, runnable=False)
    dims = plan.dims
    try:
        dims.check_runnable()
        runnable = None
    except ConfigError as e:
        runnable = str(e).split(":")[0]
    micro = plan.per_device_batch // max(candidate.micro_batches, 1)
    shape = StepShape(plan.model, dims, micro_batch=micro,
                      accumulation=plan.accumulation * max(candidate.micro_batches, 1),
                      precision=plan.precision, optimizer=cfg.OPTIMIZER,
                      clip=bool(cfg.clip_grad_norm), soft_targets=cfg.LABEL_SMOOTHING > 0
                      or cfg.MIXUP_ALPHA > 0 or cfg.CUTMIX_ALPHA > 0,
                      checkpointing=candidate.checkpointing)
    t = traffic(shape)
    memory = memory_bytes(shape)
    flops = step_flops(shape)
    per_node = min(gpus_per_node, world)
    peak = device.peak_flops / (per_node if device.shared_node else 1)
    compute = flops / (peak * device.efficiency)
    bubble = bubble_fraction(shape)
    compute /= (1 - bubble)
    by_dim = {d: sum(k.values()) for d, k in t.bytes.items()}
    intra = inter = 0.0
    exposed = {"tensor": 0.0, "data": 0.0, "pipeline": 0.0}
    for d, nbytes in by_dim.items():
        spans = _group_spans_nodes(dims, d, gpus_per_node) if d != "world" else \
            world > gpus_per_node
        bandwidth = device.inter_node if spans else device.intra_node
        inter, intra = (inter + nbytes, intra) if spans else (inter, intra + nbytes)
        seconds = nbytes / bandwidth + sum(t.calls[d].values()) * device.latency
        kind = "data" if d == "dp" else "pipeline" if d == "pp" else "tensor"
        exposed[kind] += seconds
    hidden = compute * 2 / 3 if dims.data > 1 and device.overlaps_communication else 0.0
    seconds = compute + exposed["tensor"] + exposed["pipeline"] + \
        max(0.0, exposed["data"] - hidden)
    return Estimate(candidate, dims.describe(), runnable, memory, by_dim, intra, inter,
                    bubble, flops, seconds, memory["peak"] <= device.memory)


def global_batch(cfg: Config, world: int) -> Config:
    """`cfg` with its global batch fixed, so that every layout is timed on the same images per
    step: TOTAL_BATCH_SIZE as it is, or for a per-device BATCH_SIZE, what the config's own
    layout trains with on `world` processes (BATCH_SIZE x accumulation x its data size; pure
    data parallelism's if its layout does not divide `world`)."""
    if cfg.TOTAL_BATCH_SIZE is not None or cfg.BATCH_SIZE is None:
        return cfg
    own = cfg.parallel.pipeline * cfg.parallel.tensor.size
    data = world // own if world % own == 0 else world
    return dataclasses.replace(cfg, BATCH_SIZE=None, TOTAL_BATCH_SIZE=cfg.BATCH_SIZE * data * (
        cfg.gradient_accumulation or 1))


def plan_layouts(cfg: Config, world: int, device: Device, gpus_per_node: int
                 ) -> tuple[list[Estimate], list[tuple[Candidate, str]]]:
    """(costed layouts ranked: those that fit first, fastest first; skipped ones and why),
    all at one global batch (global_batch)."""
    cfg = global_batch(cfg, world)
    from ..data.datasets import dataset_info
    from ..data.infer import infer_dataset
    from ..plan import resolve_model
    if cfg.DATASET is None or (cfg.DATASET == "folder" and cfg.IMG_SIZE is None):
        cfg = infer_dataset(cfg, scan=False).config   # as make_plan does before the data
    size, _ = resolve_model(cfg, dataset_info(cfg))
    ranked, skipped = [], []
    for candidate in candidates(world, size.depth):
        try:
            ranked.append(estimate(cfg, candidate, world, device, gpus_per_node))
        except ConfigError as e:
            skipped.append((candidate, str(e)))
    # Fitting layouts first, then by time; at equal times (within 1%), the one that sends less.
    fastest = min((e.seconds for e in ranked), default=1.0) or 1.0
    ranked.sort(key=lambda e: (not e.fits, round(e.seconds * 100 / fastest),
                               e.comm_intra + e.comm_inter))
    return ranked, skipped


def config_layout(cfg: Config) -> Candidate:
    """The candidate a config's own layout is."""
    t = cfg.parallel.tensor
    return dataclasses.replace(
        Candidate(), pipeline=cfg.parallel.pipeline, tensor=t.size,
        mode=t.mode if t.size > 1 else None, depth=t.depth,
        sequence_parallel=t.sequence_parallel, zero=cfg.zero.stage if cfg.zero else None,
        checkpointing=cfg.CHECKPOINT, micro_batches=cfg.NUM_MICRO_BATCHES or
        (cfg.parallel.pipeline if cfg.parallel.pipeline > 1 else 1))
