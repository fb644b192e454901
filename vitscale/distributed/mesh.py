"""The one object that owns the parallel degrees: world = pipeline x tensor x data.

    parallel = dict(pipeline=P, tensor=dict(mode=M, size=T, depth=D))    # seed 003

The data-parallel size is derived: D_data = world / (P x T). Ranks are laid out as in
Colossal-AI, tensor fastest, then pipeline, then data:

    rank = data_rank * (P * T) + pipeline_rank * T + tensor_rank

which is the row-major order of the device mesh that `build_mesh` makes, so the tensor group
of a rank is its T neighbours (on one node when T <= GPUs per node). The mesh has four named
dimensions, ("dp_replicate", "dp_shard", "pp", "tp") as in torchtitan: data parallelism is
either replicated (DDP, ZeRO-1, or FSDP2 with shards of one rank under tensor parallelism) or
sharded (FSDP2, ZeRO stages 2 and 3), so one of the two "dp_" dimensions has size D_data and
the other size 1. `data_mesh` gives the one that holds the data-parallel ranks.

How data parallelism is done follows from `zero` and the tensor size (`data_parallel`):

| zero        | tensor size 1                       | tensor size > 1 (DTensor parameters)     |
|-------------|-------------------------------------|------------------------------------------|
| none        | DDP                                 | FSDP2 replicating (HSDP, shard group 1)   |
| stage 1     | DDP + ZeroRedundancyOptimizer       | FSDP2 stage 2 (see below)                 |
|             | (with a pipeline: FSDP2 stage 2)    |                                          |
| stage 2 / 3 | FSDP2, resharding after forward at 3 | the same, composed with the tensor dim   |

DDP and ZeroRedundancyOptimizer step and broadcast plain tensors; tensor-parallel parameters
are DTensors, so under tensor parallelism FSDP2 does the data-parallel part, as torchtitan
composes them. ZeRO-1 keeps full gradients and shards optimizer state; FSDP2 stage 2 shards
both for the same communication volume, so it stands in for stage 1 there (logged at start),
and under a pipeline, whose stages step their own parameters, for the same reason.

Every impossible layout is a ConfigError at start, before any process waits on another:
2D needs T = q^2 (SUMMA, van de Geijn & Watts 1997), 2.5D T = depth x q^2 (Tesseract, Wang
et al. 2021), 3D T = q^3 (Bian et al. 2021); heads and width must split over the tensor
group; every pipeline stage needs at least one block.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError


def _root(n: int, k: int) -> int | None:
    r = round(n ** (1 / k))
    return next((c for c in (r - 1, r, r + 1) if c > 0 and c ** k == n), None)


@dataclass(frozen=True)
class ParallelDims:
    world: int
    pipeline: int
    tensor: int
    data: int
    tensor_mode: str | None = None
    tensor_depth: int = 1
    sequence_parallel: bool = False     # 1D: norms and residuals hold 1/T of the tokens
    class_parallel_head: bool = False   # 1D: classifier split over classes, loss_parallel
    zero_stage: int | None = None       # as configured (`zero = dict(stage=...)`)
    pipeline_schedule: str = "1f1b"     # parallel.pipeline_schedule (parallel/pipeline.py)
    pipeline_chunks: int = 1            # stages per pipeline rank (interleaved: v >= 2)

    @classmethod
    def from_config(cls, cfg, world: int, heads: int, width: int, depth: int,
                    runnable: bool = True) -> "ParallelDims":
        """The layout `cfg.parallel` asks for on `world` processes, checked in this order:
        the shape of the layout itself, then (with `runnable`) whether this version runs it,
        then the world size. A dry run plans a layout it cannot run with runnable=False."""
        pp, t = cfg.parallel.pipeline, cfg.parallel.tensor
        if pp < 1 or t.size < 1:
            raise ConfigError("parallel.pipeline and parallel.tensor.size must be at least 1")
        if t.mode is None and t.size != 1:
            raise ConfigError(f"parallel.tensor.size={t.size} needs a mode: set "
                              "parallel['tensor']['mode'] to '1d', '2d', '2.5d' or '3d', or size=1")
        if cfg.TENSOR_PARALLEL_SIZE is not None and cfg.TENSOR_PARALLEL_SIZE != t.size:
            raise ConfigError(f"TENSOR_PARALLEL_SIZE={cfg.TENSOR_PARALLEL_SIZE} differs from "
                              f"parallel.tensor.size={t.size}: make them agree")
        if t.mode != "1d" and t.sequence_parallel:
            raise ConfigError(f"parallel.tensor.sequence_parallel is a 1D option, but the mode "
                              f"is {t.mode!r}: remove it or use mode='1d'")
        if t.mode != "1d" and t.head != "replicated":
            raise ConfigError(f"parallel.tensor.head={t.head!r} is a 1D option, but the mode is "
                              f"{t.mode!r}: remove it or use mode='1d'")
        if t.size > 1:
            split = cls._tensor_split(t.mode, t.size, t.depth)
            if heads % split or width % split:
                raise ConfigError(f"tensor mode {t.mode!r} of size {t.size} splits heads and width "
                                  f"{split} ways, but NUM_HEADS={heads}, HIDDEN_SIZE={width}: "
                                  f"choose sizes divisible by {split}")
        chunks, schedule = cfg.parallel.pipeline_chunks, cfg.parallel.pipeline_schedule
        if pp > 1:
            _check_schedule(schedule, chunks)
        else:
            chunks = 1
        if pp * chunks > depth:
            raise ConfigError(f"parallel.pipeline={pp} x pipeline_chunks={chunks} stages but "
                              f"DEPTH={depth} blocks: each stage needs at least one block; lower "
                              "the pipeline size or the chunks")
        dims = cls(world=world, pipeline=pp, tensor=t.size, data=max(world // (pp * t.size), 1),
                   tensor_mode=t.mode if t.size > 1 else None, tensor_depth=t.depth,
                   sequence_parallel=t.sequence_parallel and t.size > 1,
                   class_parallel_head=t.head == "class_parallel" and t.size > 1,
                   zero_stage=cfg.zero.stage if cfg.zero is not None else None,
                   pipeline_schedule=schedule, pipeline_chunks=chunks)
        if runnable:
            dims.check_runnable()
        if world % (pp * t.size):
            raise ConfigError(f"world size {world} is not divisible by pipeline x tensor = "
                              f"{pp} x {t.size}: launch a multiple of {pp * t.size} processes")
        return dims

    def check_runnable(self) -> None:
        """Refuse, with one line, a valid layout that this version cannot run yet."""
        if self.pipeline > 1:
            self._check_pipeline_runnable()
        if self.grid_mode and self.zero_stage is not None and self.data > 1:
            raise ConfigError(
                f"zero stage {self.zero_stage} with tensor mode {self.tensor_mode!r} is not run "
                f"yet: {self.tensor_mode} keeps its parameters as plain local blocks, which DDP "
                "averages over the data-parallel ranks but ZeRO's sharders do not know how to "
                "save: remove `zero` (data parallelism is then DDP)")

    def _check_pipeline_runnable(self) -> None:
        """Pipeline parallelism runs with 1D tensor parallelism (replicated head, no sequence
        parallelism), with the grid modes (2D, 2.5D, 3D: each stage sends this rank's block
        of the boundary activation, [b/s, N, D/q]) and with DDP or FSDP2; the rest is refused
        with one line."""
        layout = f"parallel.pipeline={self.pipeline} with "
        if self.sequence_parallel or self.class_parallel_head:
            what = "sequence_parallel" if self.sequence_parallel else "head='class_parallel'"
            raise ConfigError(f"{layout}parallel.tensor.{what}: not provided yet (stages would "
                              "send token shards / take the loss on class shards): remove it")
        if self.pipeline_schedule.endswith("zero_bubble") and self.data > 1:
            raise ConfigError(f"{layout}pipeline_schedule={self.pipeline_schedule!r} and "
                              f"{self.data} data-parallel ranks: not provided yet (its split "
                              "weight-gradient pass is not checked with DDP/FSDP2): use "
                              "'interleaved_1f1b' or '1f1b'")
        from ..parallel.pipeline import schedule_class
        schedule_class(self.pipeline_schedule)   # refuses one this torch does not have

    # ---- tensor-parallel grids (2D, 2.5D, 3D) -----------------------------------------------

    @property
    def grid_mode(self) -> bool:
        """2D, 2.5D or 3D: hand-written layers on a grid of process groups (parallel/tensor/)."""
        return self.tensor_mode in ("2d", "2.5d", "3d")

    @property
    def grid_side(self) -> int:
        """q: the side of the 2D / 2.5D grid or the 3D cube (1 otherwise)."""
        if self.tensor_mode in ("2d", "2.5d"):
            return _root(self.tensor // self.tensor_depth if self.tensor_mode == "2.5d"
                         else self.tensor, 2)
        if self.tensor_mode == "3d":
            return _root(self.tensor, 3)
        return 1

    @property
    def tensor_dims(self) -> tuple[tuple[str, int], ...]:
        """The tensor dimension of the mesh, factorised and named by purpose:

            1D    ("tp", T)
            2D    ("tp_col", q), ("tp_row", q)            rank (j, k): batch chunk j, width k
            2.5D  ("tp_dep", d), ("tp_col", q), ("tp_row", q)
            3D    ("tp_z", q), ("tp_y", q), ("tp_x", q)   x fastest: weights are gathered on x
        """
        q = self.grid_side
        if self.tensor_mode == "2d":
            return (("tp_col", q), ("tp_row", q))
        if self.tensor_mode == "2.5d":
            return (("tp_dep", self.tensor_depth), ("tp_col", q), ("tp_row", q))
        if self.tensor_mode == "3d":
            return (("tp_z", q), ("tp_y", q), ("tp_x", q))
        return (("tp", self.tensor),)

    @property
    def batch_split(self) -> int:
        """Into how many parts a tensor group splits each data-parallel rank's batch: 1 for 1D
        (every tensor rank sees it whole), q for 2D, d q for 2.5D, q^2 for 3D."""
        q = self.grid_side
        return {"2d": q, "2.5d": self.tensor_depth * q, "3d": q * q}.get(self.tensor_mode, 1)

    def check_shapes(self, mlp_hidden: int, width: int, per_device_batch: int) -> None:
        """The model and batch sizes a grid mode splits must divide, with one line each."""
        if not self.grid_mode:
            return
        q = self.grid_side
        inner = q * q if self.tensor_mode == "3d" else q   # 3D splits a weight's input q^2 ways
        for key, value in (("HIDDEN_SIZE", width), ("the MLP width (MLP_RATIO x HIDDEN_SIZE "
                                                    "or MLP_DIM)", mlp_hidden)):
            if value % inner:
                raise ConfigError(f"tensor mode {self.tensor_mode!r} of size {self.tensor} splits "
                                  f"{key} {inner} ways, but it is {value}: choose a multiple of "
                                  f"{inner}")
        if per_device_batch % self.batch_split:
            raise ConfigError(f"tensor mode {self.tensor_mode!r} of size {self.tensor} splits each "
                              f"data-parallel rank's batch of {per_device_batch} images "
                              f"{self.batch_split} ways: choose a per-device batch (global batch / "
                              f"data-parallel size / accumulation) divisible by {self.batch_split}")

    @staticmethod
    def _tensor_split(mode: str, size: int, depth: int) -> int:
        """How many ways a tensor-parallel mode splits the hidden width (and heads)."""
        if mode == "1d":
            return size
        if mode == "2d":
            q = _root(size, 2)
            if q is None:
                raise ConfigError(f"tensor mode '2d' needs a square size (4, 9, 16, ...), got "
                                  f"{size}: choose q*q processes per tensor group")
            return q
        if mode == "2.5d":
            if depth < 1 or size % depth or _root(size // depth, 2) is None:
                raise ConfigError(f"tensor mode '2.5d' needs size = depth x q^2, got size {size} "
                                  f"and depth {depth}: e.g. size=8 with depth=2 (q=2)")
            return _root(size // depth, 2)
        if mode == "3d":
            q = _root(size, 3)
            if q is None:
                raise ConfigError(f"tensor mode '3d' needs a cube size (8, 27, 64, ...), got "
                                  f"{size}: choose q*q*q processes per tensor group")
            return q
        raise ConfigError(f"unknown tensor mode {mode!r}")

    @property
    def data_parallel(self) -> str:
        """How gradients are synchronised over the data-parallel ranks (see the table above):
        'none', 'ddp', 'ddp_zero1', 'fsdp_replicate', 'fsdp_stage2' or 'fsdp_stage3'."""
        if self.data == 1:
            return "none"
        if self.grid_mode:
            return "ddp"   # the grid modes' parameters are plain local tensors
        if self.zero_stage == 3:
            return "fsdp_stage3"
        if self.zero_stage == 2 or (self.zero_stage == 1 and (self.tensor > 1 or
                                                               self.pipeline > 1)):
            return "fsdp_stage2"
        if self.tensor > 1:
            return "fsdp_replicate"
        return "ddp_zero1" if self.zero_stage == 1 else "ddp"

    @property
    def uses_fsdp(self) -> bool:
        return self.data_parallel.startswith("fsdp")

    @property
    def sharded_data_parallel(self) -> bool:
        """True when the data-parallel ranks shard parameters (the "dp_shard" dimension)."""
        return self.data_parallel in ("fsdp_stage2", "fsdp_stage3")

    def coordinates(self, rank: int) -> tuple[int, int, int]:
        """(data, pipeline, tensor) rank of global `rank`."""
        return (rank // (self.pipeline * self.tensor), (rank // self.tensor) % self.pipeline,
                rank % self.tensor)

    def build_mesh(self, device_type: str):
        """The named device mesh ("dp_replicate", "dp_shard", "pp", "tp"); needs an
        initialised process group. One of the two "dp_" dimensions has size 1."""
        from torch.distributed.device_mesh import init_device_mesh
        shape = (1, self.data) if self.sharded_data_parallel else (self.data, 1)
        names, sizes = zip(*self.tensor_dims)
        return init_device_mesh(device_type, (*shape, self.pipeline, *sizes),
                                mesh_dim_names=(*MESH_DIMS[:3], *names))

    def tensor_mesh(self, mesh):
        """The (maybe multi-dimensional) sub-mesh of this rank's tensor group."""
        return mesh[tuple(name for name, _ in self.tensor_dims)]

    def loader_shard(self, mesh) -> tuple[int, int]:
        """(rank, world) for the data loaders: data-parallel rank r reads slice r of each
        global batch, and a grid mode's tensor group splits that slice further by the ranks'
        batch coordinates (2D: j; 2.5D: depth, j; 3D: x, y), so each rank reads only its own
        images and tensor peers that share images (same batch coordinates) read the same."""
        data_rank = self.data_mesh(mesh).get_local_rank() if mesh is not None else 0
        if not self.grid_mode or mesh is None:
            return data_rank, self.data
        coords = {name: mesh.get_local_rank(name) for name, _ in self.tensor_dims}
        q = self.grid_side
        if self.tensor_mode == "2d":
            part = coords["tp_col"]
        elif self.tensor_mode == "2.5d":
            part = coords["tp_dep"] * q + coords["tp_col"]
        else:
            part = coords["tp_x"] * q + coords["tp_y"]
        return data_rank * self.batch_split + part, self.data * self.batch_split

    def data_mesh(self, mesh):
        """The 1-D mesh of this rank's data-parallel peers (same pipeline and tensor rank)."""
        return mesh["dp_shard" if self.sharded_data_parallel else "dp_replicate"]

    def fsdp_mesh(self, mesh):
        """FSDP2's mesh: 1-D "dp_shard" to shard, or 2-D (replicate, shard of 1) to replicate."""
        return mesh["dp_shard"] if self.sharded_data_parallel else \
            mesh["dp_replicate", "dp_shard"]

    def describe(self) -> str:
        mode = ""
        if self.tensor > 1:
            extras = [self.tensor_mode] + (["sequence-parallel"] if self.sequence_parallel else []) \
                + (["class-parallel head"] if self.class_parallel_head else [])
            if self.tensor_mode == "2.5d":
                extras[0] += f", depth {self.tensor_depth}"
            mode = f" ({', '.join(extras)})"
        return f"pipeline {self.pipeline} x tensor {self.tensor}{mode} x data {self.data}"

    def explain(self) -> str:
        """What each parallel dimension does, for the start banner."""
        parts = []
        grids = {"2d": "2D (SUMMA) on a {q} x {q} grid: activations [b/{q}, N, D/{q}], every "
                       "matrix in {q} x {q} blocks; all-gathers of activations along rows and "
                       "of weights along columns, reduce-scatters in backward",
                 "2.5d": "2.5D (Tesseract): {d} depth layers of a {q} x {q} 2D grid, the "
                         "batch split over depth too, gradients summed over depth",
                 "3d": "3D on a {q} x {q} x {q} cube: activations [b/{q}^2, N, D/{q}], "
                       "weights in {q}^3 blocks; gathers and reduce-scatters that alternate "
                       "between the cube's axes from one layer to the next"}
        if self.grid_mode:
            parts.append("tensor parallel " + grids[self.tensor_mode].format(
                q=self.grid_side, d=self.tensor_depth))
        elif self.tensor > 1:
            sp = "; LayerNorms and residuals on 1/T of the tokens" if self.sequence_parallel \
                else ""
            head = "; classifier split over classes (loss_parallel)" \
                if self.class_parallel_head else ""
            parts.append(f"tensor parallel (1D, Megatron) over {self.tensor} ranks: q, k, v and "
                         f"fc1 split by output columns, proj and fc2 by input rows, 2 all-reduces "
                         f"per block forward and 2 backward{sp}{head}")
        if self.pipeline > 1:
            parts.append(f"pipeline parallel over {self.pipeline} ranks: "
                         f"{self.pipeline * self.pipeline_chunks} stages of blocks"
                         + (f" ({self.pipeline_chunks} per rank)" if self.pipeline_chunks > 1
                            else "") +
                         f", {self.pipeline_schedule} schedule (torch.distributed.pipelining), "
                         "activations sent point to point between neighbouring stages"
                         + (" (each grid rank its own block, to the rank of the same grid "
                            "coordinates)" if self.grid_mode else ""))
        styles = {"ddp": "DDP (all-reduce of gradients)",
                  "ddp_zero1": "DDP + ZeroRedundancyOptimizer (ZeRO-1: optimizer state sharded)",
                  "fsdp_replicate": "FSDP2 replicating (all-reduce of gradients)",
                  "fsdp_stage2": "FSDP2 (ZeRO-2: gradients and optimizer state sharded)",
                  "fsdp_stage3": "FSDP2 (ZeRO-3: parameters sharded between uses too)"}
        if self.data > 1:
            parts.append(f"data parallel over {self.data} ranks: {styles[self.data_parallel]}")
        return "; ".join(parts) or "one process: no parallelism"


def _check_schedule(schedule: str, chunks: int) -> None:
    """Stages per rank that each schedule takes (Narayanan et al. 2021 interleave v >= 2
    stages per rank; the ZBV schedule of Qi et al. 2024 places exactly 2 in a V)."""
    if chunks < 1:
        raise ConfigError(f"parallel.pipeline_chunks={chunks} must be at least 1")
    if schedule in ("gpipe", "1f1b") and chunks != 1:
        raise ConfigError(f"pipeline_schedule={schedule!r} runs one stage per rank, but "
                          f"pipeline_chunks={chunks}: use pipeline_chunks=1 or "
                          "pipeline_schedule='interleaved_1f1b'")
    if schedule.startswith("interleaved") and chunks < 2:
        raise ConfigError(f"pipeline_schedule={schedule!r} interleaves several stages per rank: "
                          "set parallel.pipeline_chunks=2 (or more)")
    if schedule == "zbv_zero_bubble" and chunks != 2:
        raise ConfigError("pipeline_schedule='zbv_zero_bubble' places 2 stages per rank in a V: "
                          f"set parallel.pipeline_chunks=2 (got {chunks})")


MESH_DIMS = ("dp_replicate", "dp_shard", "pp", "tp")   # "tp" factorised by grid modes
__all__ = ["MESH_DIMS", "ParallelDims"]
