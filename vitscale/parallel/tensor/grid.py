"""What the grid modes (2D, 2.5D, 3D) share: process groups, parameter blocks and their global view.

A grid mode keeps each parameter as a plain local tensor, the block this rank computes with,
so that the model's own code (views, concatenations, attention) runs unchanged on local
shapes, and DDP, the optimizers and the loss scaler see ordinary tensors. Each block carries
its `GridLayout`: the tensor group's sub-mesh and the DTensor placements that place the block
in the full parameter. That layout is used

  * to slice the block out of one process's initial weights (materialize.py),
  * to show checkpoints and exports the full parameter (`to_global`: a DTensor per block,
    which torch.distributed.checkpoint saves once and reshards on load into any layout),
  * to sum squared norms over the ranks the parameter is split on (`shard_groups`, norms.py),
  * to add up gradients that are partial sums (`partial_groups`): a block replicated over
    ranks that see different images (a bias, a LayerNorm weight) gets each rank's share of
    the gradient; `finish_gradients` all-reduces them once per step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.tensor import DTensor, Replicate, Shard, distribute_tensor


GRID_ATTRIBUTES = ("grid_layout", "shard_groups", "partial_groups")  # set on each block


class Groups(tuple):
    """A tuple of process groups that deep copies as itself (master-weight copies keep it)."""

    def __deepcopy__(self, memo):
        return self


@dataclass(frozen=True)
class BlockPlan:
    """How a grid mode splits one parameter, without process groups (the cost model uses it):
    `shard` = ((mesh dimension, tensor dimension), ...) in mesh-dimension order (a tensor
    dimension split over two mesh dimensions is split by the first, then by the second);
    `partial` = the mesh dimensions over which its gradient is a partial sum."""

    shard: tuple[tuple[str, int], ...] = ()
    partial: tuple[str, ...] = ()

    def local_shape(self, shape: tuple[int, ...], sizes: dict[str, int]) -> tuple[int, ...]:
        local = list(shape)
        for dim_name, t in self.shard:
            local[t] //= sizes[dim_name]
        return tuple(local)


@dataclass(frozen=True, eq=False)
class GridLayout:
    mesh: object                  # the tensor group's (sub-)DeviceMesh
    placements: tuple             # one Placement per mesh dimension
    shape: tuple[int, ...]        # the full parameter's shape

    def __deepcopy__(self, memo):
        return self

    def local_shape(self) -> tuple[int, ...]:
        with torch.device("meta"):
            block = distribute_tensor(torch.empty(self.shape), self.mesh, list(self.placements),
                                      src_data_rank=None)
        return tuple(block.to_local().shape)

    def slice(self, full: torch.Tensor) -> torch.Tensor:
        """This rank's block of `full` (every rank holds the same full value: no transfer)."""
        return distribute_tensor(full, self.mesh, list(self.placements),
                                 src_data_rank=None).to_local()

    def as_global(self, local: torch.Tensor) -> DTensor:
        stride = torch.empty(self.shape, device="meta").stride()
        return DTensor.from_local(local, self.mesh, list(self.placements), run_check=False,
                                  shape=torch.Size(self.shape), stride=stride)


def placements(mesh_dims: tuple[str, ...], **by_dim) -> tuple:
    """Placements in mesh-dimension order: `placements(("tp_col", "tp_row"), tp_row=Shard(0))`
    (dimensions not named are Replicate)."""
    return tuple(by_dim.get(name, Replicate()) for name in mesh_dims)


def place(module: nn.Module, name: str, layout: GridLayout, partial: tuple = ()) -> nn.Parameter:
    """Replace `module.<name>` by this rank's block (on the meta device until materialised);
    `partial`: the process groups over which its gradient is a partial sum."""
    old = getattr(module, name)
    param = nn.Parameter(torch.empty(layout.local_shape(), device="meta", dtype=old.dtype),
                         requires_grad=old.requires_grad)
    param.grid_layout = layout
    mesh = layout.mesh
    param.shard_groups = Groups(mesh.get_group(d) for d, p in enumerate(layout.placements)
                                if isinstance(p, Shard) and mesh.size(d) > 1)
    param.partial_groups = Groups(g for g in partial if dist.get_world_size(g) > 1)
    setattr(module, name, param)
    return param


def full_shape(param: torch.Tensor) -> tuple[int, ...]:
    """The shape of the whole parameter a (possibly sharded) parameter stands for."""
    layout = getattr(param, "grid_layout", None)
    return layout.shape if layout is not None else tuple(param.shape)


def layouts(model: nn.Module) -> dict[str, GridLayout]:
    return {name: p.grid_layout for name, p in model.named_parameters()
            if getattr(p, "grid_layout", None) is not None}


def to_global(state: dict, by_name: dict[str, GridLayout]) -> dict:
    """A model (or per-parameter optimizer) state dict with each grid block as a DTensor of
    the full parameter. Optimizer states of a parameter's shape are converted like it."""
    out = {}
    for key, value in state.items():
        layout = by_name.get(key)
        if layout is None:
            out[key] = value
        elif isinstance(value, dict):       # optimizer state of one parameter
            out[key] = {k: (layout.as_global(v) if isinstance(v, torch.Tensor) and v.dim()
                            else v) for k, v in value.items()}
        else:
            out[key] = layout.as_global(value)
    return out


def to_local(state: dict, by_name: dict[str, GridLayout]) -> dict:
    """The inverse of to_global (a full plain tensor is sliced: an exported model loads too)."""
    def local(layout, v):
        if isinstance(v, DTensor):
            return v.to_local()
        if isinstance(v, torch.Tensor) and tuple(v.shape) == tuple(layout.shape) and v.dim():
            return layout.slice(v)
        return v

    out = {}
    for key, value in state.items():
        layout = by_name.get(key)
        if layout is None:
            out[key] = value
        elif isinstance(value, dict):
            out[key] = {k: local(layout, v) for k, v in value.items()}
        else:
            out[key] = local(layout, value)
    return out


@torch.no_grad()
def reduce_partial_gradients(model: nn.Module) -> None:
    """All-reduce (sum) the gradients that are partial sums, one flat message per group."""
    by_groups: dict[tuple, list[torch.Tensor]] = {}
    for p in model.parameters():
        groups = getattr(p, "partial_groups", ())
        if groups and p.grad is not None:
            by_groups.setdefault(tuple(groups), []).append(p.grad)
    for groups, grads in by_groups.items():
        for dtype in {g.dtype for g in grads}:
            same = [g for g in grads if g.dtype == dtype]
            flat = torch.cat([g.reshape(-1) for g in same])
            for group in groups:
                dist.all_reduce(flat, group=group)
            offset = 0
            for g in same:
                g.copy_(flat[offset:offset + g.numel()].view_as(g))
                offset += g.numel()
