"""2D (Xu et al. 2021, "An Efficient 2D Method for Training Super-Large Deep Learning Models";
SUMMA, van de Geijn & Watts 1997) and 2.5D (Wang et al. 2021, "Tesseract") tensor parallelism.

2D puts the T = q^2 ranks of a tensor group on a q x q grid; rank (j, k) is on column j and
row k ("tp_col" varies j, "tp_row" varies k). Activations are [b/q, N, D/q]: the batch split
over j, the width over k. A Linear's weight W (in x out) is split into q x q blocks; rank
(j, k) holds W[j, k], [in/q, out/q]. Y = X W is computed block by block,

    Y[j, k] = sum_l X[j, l] W[l, k]

SUMMA broadcasts X[j, l] along row j and W[l, k] along column k in q rounds; here each rank
all-gathers its row's X[j, :] and its column's W[:, k] at once, which moves the same bytes
in fewer, larger messages, and gathers them again in backward rather than keeping them, so
that memory stays at SUMMA's (one block of each). Per Linear and micro-batch, per rank:

    forward   all-gather X over the row      (q-1)/q x b/q N in   (compute dtype)
              all-gather W over the column   (q-1)/q x in out/q
    backward  the same two all-gathers, a reduce-scatter of dX over the row (b/q N in) and
              of dW over the column (in out/q, in the parameter's dtype)

LayerNorm needs the mean and variance over the whole width: two all-reduces of b/q N values
over the row forward, one of 2 b/q N backward. The patch embedding, class token, position
embedding, LayerNorm weights and biases hold the width chunk k and are replicated over the
column; the classifier holds W[:, k] rows of its input width and all-reduces its partial
logits over the row. Parameters replicated over the column see different images on each rank,
so their gradients are partial sums, added up once per step (grid.reduce_partial_gradients).

2.5D adds a depth d: T = d q^2 ranks, d layers of q x q grids. The batch is split over depth
too ([b/(d q), N, D/q]); each depth layer runs 2D on its share with the same weight blocks,
and every gradient is summed over depth once per step ("tp_dep"): the depth layers are the
Tesseract's data-parallel copies of one 2D grid, so a group of d q^2 ranks holds each weight
d times over, in exchange for q^2 instead of (d q^2) grid ranks per collective.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributed.tensor import Shard

from ...models.vit import MLP, Attention
from .collectives import _all_gather, _reduce_scatter, sum_replicated
from .grid import BlockPlan, GridLayout, Groups, place, placements
from .norm import GridLayerNorm


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """What autocast would multiply in (hand-written functions cast explicitly)."""
    kind = x.device.type
    if torch.is_autocast_enabled(kind):
        return torch.get_autocast_dtype(kind)
    return x.dtype


class _Summa(torch.autograd.Function):
    """Y[j, k] = X[j, :] W[:, k] from the blocks X[j, k] and W[j, k] (module docstring)."""

    @staticmethod
    def forward(ctx, x, weight, row, col):
        dtype = compute_dtype(x)
        ctx.save_for_backward(x, weight)
        ctx.groups, ctx.dtype = (row, col), dtype
        x_row = _all_gather(x.to(dtype), -1, row)            # [b, N, in]
        w_col = _all_gather(weight.to(dtype), 1, col)        # [out/q, in]
        return F.linear(x_row, w_col)                        # [b, N, out/q]

    @staticmethod
    def backward(ctx, dy):
        x, weight = ctx.saved_tensors
        row, col = ctx.groups
        dy = dy.to(ctx.dtype)
        x_row = _all_gather(x.to(ctx.dtype), -1, row)
        w_col = _all_gather(weight.to(ctx.dtype), 1, col)
        dx = _reduce_scatter(dy @ w_col, -1, row)            # sum over k of dY[j, k] W[:, k]^T
        dw = (dy.flatten(0, -2).t() @ x_row.flatten(0, -2)).to(weight.dtype)
        dw = _reduce_scatter(dw, 1, col)                     # sum over j of X[j, :]^T dY[j, k]
        return dx.to(x.dtype), dw, None, None


class Grid:
    """The process groups and sub-mesh of one tensor group (deep copies as itself)."""

    def __init__(self, mesh, dims):
        self.mesh = dims.tensor_mesh(mesh)
        self.names = tuple(name for name, _ in dims.tensor_dims)
        self.groups = {name: mesh[name].get_group() for name in self.names}

    def __deepcopy__(self, memo):
        return self

    def place(self, module: nn.Module, name: str, plan: BlockPlan) -> None:
        shape = tuple(getattr(module, name).shape)
        layout = GridLayout(self.mesh, placements(self.names, **{d: Shard(t)
                                                                for d, t in plan.shard}), shape)
        place(module, name, layout, Groups(self.groups[d] for d in plan.partial
                                           if d in self.groups))


class Linear2D(nn.Linear):
    """nn.Linear on a 2D grid; weight [out/q, in/q] = W[j, k]^T, bias [out/q] (chunk k)."""

    def forward(self, x):
        y = _Summa.apply(x, self.weight, self.grid.groups["tp_row"], self.grid.groups["tp_col"])
        return y if self.bias is None else y + self.bias.to(y.dtype)


class Classifier2D(nn.Linear):
    """The head: weight [C, D/q] (input chunk k), partial logits summed over the row."""

    def forward(self, x):                                    # [b, D/q]
        logits = sum_replicated(F.linear(x, self.weight), self.grid.groups["tp_row"])
        return logits if self.bias is None else logits + self.bias.to(logits.dtype)


def _swap(module: nn.Module, cls: type, grid: Grid) -> nn.Module:
    module.__class__ = cls
    module.grid = grid
    return module


def block_children(model: nn.Module, mode: str):
    """(block path, child) of every child with parameters, refusing the kinds a grid mode has
    no plan for (FFF). Paths use the blocks' own names: a pipeline stage's blocks keep their
    indices in the whole model (blocks.4 stays blocks.4)."""
    for i, block in model.blocks.named_children():
        for name, child in block.named_children():
            if isinstance(child, (Attention, MLP, nn.LayerNorm)):
                yield f"blocks.{i}.{name}", child
            elif any(True for _ in child.parameters()):
                from ...errors import ConfigError
                raise ConfigError(f"tensor mode {mode!r} has no plan for "
                                  f"{type(child).__name__} (block.{name}): use a plain MLP "
                                  "feed-forward, or tensor mode '1d'")


def embedding_plans(width_dim: str, partial: tuple[str, ...]) -> dict[str, BlockPlan]:
    """Patch embedding, class token, position embedding: their width chunk, so the model's
    own embed() runs on local shapes with no communication."""
    return {"patch_embed.proj.weight": BlockPlan(((width_dim, 0),), partial),
            "patch_embed.proj.bias": BlockPlan(((width_dim, 0),), partial),
            "cls_token": BlockPlan(((width_dim, 2),), partial),
            "pos_embed": BlockPlan(((width_dim, 2),), partial)}


def norm_and_head_plans(model: nn.Module, width_dim: str, partial: tuple[str, ...]
                        ) -> dict[str, BlockPlan]:
    plans = {}
    for path, child in [("norm", model.norm)] + [
            (p, c) for p, c in block_children(model, "grid") if isinstance(c, nn.LayerNorm)]:
        for name in ("weight", "bias"):
            plans[f"{path}.{name}"] = BlockPlan(((width_dim, 0),), partial)
    plans["head.weight"] = BlockPlan(((width_dim, 1),), partial)
    plans["head.bias"] = BlockPlan((), partial)
    return plans


def plan_2d(model: nn.Module, mode: str = "2d") -> dict[str, BlockPlan]:
    """Every parameter's 2D (or 2.5D) block: the rules of the module docstring."""
    replicated = ("tp_dep", "tp_col") if mode == "2.5d" else ("tp_col",)
    weights = ("tp_dep",) if mode == "2.5d" else ()
    plans = {**embedding_plans("tp_row", replicated),
             **norm_and_head_plans(model, "tp_row", replicated)}
    for path, child in block_children(model, mode):
        for name, linear in child.named_children():
            if isinstance(linear, nn.Linear):
                plans[f"{path}.{name}.weight"] = BlockPlan((("tp_col", 1), ("tp_row", 0)),
                                                           weights)
                plans[f"{path}.{name}.bias"] = BlockPlan((("tp_row", 0),), replicated)
    return {name: plan for name, plan in plans.items()
            if _has(model, name)}


def _has(model: nn.Module, name: str) -> bool:
    """Whether `model` holds parameter `name` (a pipeline stage lacks the embeddings or the
    norm and head: those modules are None there)."""
    module = model
    for part in name.split("."):
        module = getattr(module, part, None)
        if module is None:
            return False
    return True


def place_all(model: nn.Module, grid: Grid, plans: dict[str, BlockPlan]) -> None:
    for name, plan in plans.items():
        module_path, _, attr = name.rpartition(".")
        grid.place(model.get_submodule(module_path) if module_path else model, attr, plan)


def apply_2d(model: nn.Module, mesh, dims) -> None:
    """Turn `model` (on the meta device) into its 2D (or 2.5D) blocks, in place."""
    grid = Grid(mesh, dims)
    plans = plan_2d(model, dims.tensor_mode)
    for _, child in block_children(model, dims.tensor_mode):
        if isinstance(child, nn.LayerNorm):
            _grid_norm(child, grid, "tp_row")
        for linear in child.children():
            if isinstance(linear, nn.Linear):
                _swap(linear, Linear2D, grid)
    if model.head is not None:              # a pipeline's last stage, or the whole model
        _grid_norm(model.norm, grid, "tp_row")
        _swap(model.head, Classifier2D, grid)
    place_all(model, grid, plans)


def _grid_norm(norm: nn.LayerNorm, grid: Grid, width_dim: str) -> None:
    """A LayerNorm whose input holds the width chunk of `width_dim`'s coordinate."""
    norm.__class__ = GridLayerNorm
    norm.grid, norm.width_dim = grid, width_dim
