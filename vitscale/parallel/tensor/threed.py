"""3D tensor parallelism (Bian et al. 2021, "Maximizing Parallelism in Distributed Training for
Huge Neural Networks"; Agarwal et al. 1995's 3D matrix multiplication).

T = q^3 ranks on a cube, rank (z, y, x) with x fastest ("tp_z", "tp_y", "tp_x"). Activations
are [b/q^2, N, D/q] in one of two layouts that consecutive Linears alternate between:

    layout A  width chunk z; batch chunk x, then sub-chunk y     (block input, LayerNorms)
    layout B  width chunk y; batch chunk x, then sub-chunk z     (inside attention and MLP)

A Linear from A to B (q, k, v, fc1) with weight block W[z, y] (input chunk z, output chunk
y), split once more over x along its input, [in/q^2, out/q]:

    forward   all-gather X over y (the batch sub-chunks)   (q-1)/q x b/q N in/q   -> X[x, z]
              all-gather W over x (its input pieces)       (q-1)/q x in/q out/q   -> W[z, y]
              X[x, z] W[z, y] is a partial sum over z: reduce-scatter over z along the batch
                                                           (q-1)/q x b/q N out/q  -> Y in B
    backward  all-gather dY over z, the two gathers again, reduce-scatter dX over y and dW over
              x (in the parameter's dtype)

A Linear from B to A (proj, fc2) is the same with y and z exchanged: the input and output
groups alternate between consecutive layers, the weight group is always x. LayerNorms run on
layout A, with statistics all-reduced over z (norm.py). The patch embedding, class token,
position embedding, LayerNorm weights and the classifier hold their width chunk z and are
replicated over x and y, which see other images: their gradients are summed over x and y
once per step. The classifier's partial logits are summed over z.
"""

from __future__ import annotations

import torch.nn.functional as F
import torch
from torch import nn
from torch.distributed.tensor import Shard

from ...models.vit import MLP, Attention
from .collectives import _all_gather, _reduce_scatter, sum_replicated
from .grid import BlockPlan
from .twod import (Grid, _grid_norm, _has, _swap, block_children, compute_dtype, embedding_plans,
                   norm_and_head_plans, place_all)

# (batch-gather dimension, output reduce-scatter dimension) of each kind of Linear.
_A_TO_B = ("tp_y", "tp_z")
_B_TO_A = ("tp_z", "tp_y")


class _Cube(torch.autograd.Function):
    """One 3D Linear: gather X over `gather`, W over `weights`, reduce-scatter over `scatter`."""

    @staticmethod
    def forward(ctx, x, weight, gather, weights, scatter):
        dtype = compute_dtype(x)
        ctx.save_for_backward(x, weight)
        ctx.groups, ctx.dtype = (gather, weights, scatter), dtype
        x_full = _all_gather(x.to(dtype), 0, gather)             # [b/q, N, in/q]
        w_full = _all_gather(weight.to(dtype), 1, weights)       # [out/q, in/q]
        return _reduce_scatter(F.linear(x_full, w_full), 0, scatter)

    @staticmethod
    def backward(ctx, dy):
        x, weight = ctx.saved_tensors
        gather, weights, scatter = ctx.groups
        dy_full = _all_gather(dy.to(ctx.dtype), 0, scatter)     # [b/q, N, out/q]
        x_full = _all_gather(x.to(ctx.dtype), 0, gather)
        w_full = _all_gather(weight.to(ctx.dtype), 1, weights)
        dx = _reduce_scatter(dy_full @ w_full, 0, gather)
        dw = (dy_full.flatten(0, -2).t() @ x_full.flatten(0, -2)).to(weight.dtype)
        dw = _reduce_scatter(dw, 1, weights)                     # summed over the batch chunks
        return dx.to(x.dtype), dw, None, None, None


class Linear3D(nn.Linear):
    """nn.Linear on the cube; `direction` is _A_TO_B or _B_TO_A (module docstring)."""

    direction = _A_TO_B

    def forward(self, x):
        g = self.grid.groups
        gather, scatter = self.direction
        y = _Cube.apply(x, self.weight, g[gather], g["tp_x"], g[scatter])
        return y if self.bias is None else y + self.bias.to(y.dtype)


class Classifier3D(nn.Linear):
    """The head on layout A: weight [C, D/q] (input chunk z), partial logits summed over z."""

    def forward(self, x):
        logits = sum_replicated(F.linear(x, self.weight), self.grid.groups["tp_z"])
        return logits if self.bias is None else logits + self.bias.to(logits.dtype)


def direction_of(child: nn.Module, name: str) -> tuple[str, str]:
    """q, k, v and fc1 take layout A to B; proj and fc2 take B back to A."""
    return _B_TO_A if name in ("proj", "fc2") else _A_TO_B


def plan_3d(model: nn.Module) -> dict[str, BlockPlan]:
    """Every parameter's 3D block: the rules of the module docstring."""
    replicated = ("tp_x", "tp_y")              # layout A's batch dimensions
    plans = {**embedding_plans("tp_z", replicated),
             **norm_and_head_plans(model, "tp_z", replicated)}
    for path, child in block_children(model, "3d"):
        for name, linear in child.named_children():
            if isinstance(linear, nn.Linear):
                gather, scatter = direction_of(child, name)
                # Input chunk over the contraction (scatter) dimension, then pieces over x;
                # output chunk over the gather dimension (the output layout's width).
                plans[f"{path}.{name}.weight"] = BlockPlan(tuple(sorted(
                    ((scatter, 1), (gather, 0), ("tp_x", 1)),
                    key=lambda d: ("tp_z", "tp_y", "tp_x").index(d[0]))))
                plans[f"{path}.{name}.bias"] = BlockPlan(((gather, 0),), ("tp_x", scatter))
    return {name: plan for name, plan in plans.items() if _has(model, name)}


def apply_3d(model: nn.Module, mesh, dims) -> None:
    """Turn `model` (on the meta device) into its 3D blocks, in place."""
    grid = Grid(mesh, dims)
    plans = plan_3d(model)
    for _, child in block_children(model, "3d"):
        if isinstance(child, nn.LayerNorm):
            _grid_norm(child, grid, "tp_z")
        for name, linear in child.named_children():
            if isinstance(linear, nn.Linear):
                _swap(linear, Linear3D, grid)
                linear.direction = direction_of(child, name)
    if model.head is not None:              # a pipeline's last stage, or the whole model
        _grid_norm(model.norm, grid, "tp_z")
        _swap(model.head, Classifier3D, grid)
    place_all(model, grid, plans)
