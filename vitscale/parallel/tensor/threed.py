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
from .twod import Grid, _grid_norm, _swap, _width_chunked_embedding, compute_dtype
from .grid import place

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


def _linear(linear: nn.Linear, grid: Grid, direction: tuple[str, str]) -> None:
    _swap(linear, Linear3D, grid)
    linear.direction = direction
    gather, scatter = direction
    # Input chunk over the scatter (contraction) dimension, then pieces over x; output chunk
    # over the gather dimension, which is the output layout's width dimension.
    place(linear, "weight", grid.layout(linear.weight.shape, **{scatter: Shard(1),
                                                                gather: Shard(0),
                                                                "tp_x": Shard(1)}))
    if linear.bias is not None:
        place(linear, "bias", grid.layout(linear.bias.shape, **{gather: Shard(0)}),
              grid.groups_of("tp_x", scatter))


def apply_3d(model: nn.Module, mesh, dims) -> None:
    """Turn `model` (on the meta device) into its 3D blocks, in place."""
    grid = Grid(mesh, dims)
    replicated = grid.groups_of("tp_x", "tp_y")       # layout A's batch dimensions
    for block in model.blocks:
        for name, child in block.named_children():
            if isinstance(child, Attention):
                for lin in (child.q, child.k, child.v):
                    _linear(lin, grid, _A_TO_B)
                _linear(child.proj, grid, _B_TO_A)
            elif isinstance(child, MLP):
                _linear(child.fc1, grid, _A_TO_B)
                _linear(child.fc2, grid, _B_TO_A)
            elif isinstance(child, nn.LayerNorm):
                _grid_norm(child, grid, "tp_z", replicated)
            elif any(True for _ in child.parameters()):
                from ...errors import ConfigError
                raise ConfigError(f"tensor mode '3d' has no plan for {type(child).__name__} "
                                  f"(block.{name}): use a plain MLP feed-forward, or tensor "
                                  "mode '1d'")
    _grid_norm(model.norm, grid, "tp_z", replicated)
    _width_chunked_embedding(model, grid, "tp_z", replicated)
    head = _swap(model.head, Classifier3D, grid)
    place(head, "weight", grid.layout(head.weight.shape, tp_z=Shard(1)), replicated)
    if head.bias is not None:
        place(head, "bias", grid.layout(head.bias.shape), replicated)
