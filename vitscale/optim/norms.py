"""Global norms of sharded tensors, and gradient clipping with them.

When a parameter is split across ranks (FSDP2 shards dim 0; tensor parallelism splits rows or
columns), the norm each rank can compute from its own piece is not the parameter's norm. LAMB's
and LARS's trust ratios and gradient clipping need the real one:

    ||W||^2 = sum over shards s of ||W_s||^2        (so: sum local squares, all-reduce(SUM))

Colossal-AI's Lamb (colossalai/nn/optimizer/lamb.py) takes the norms of local tensors, so
under tensor parallelism its trust ratios are per shard, which is wrong. Here each local value is squared and summed on
its rank, and the sums of tensors that share a sharding are all-reduced together: one
all-reduce of a length-n vector per sharding group per call, not one per tensor.

A tensor says how it is sharded in one of two ways:
  * it is a DTensor: every mesh dimension with a Shard placement is summed over;
  * it is a plain tensor with an attribute `shard_groups` (a tuple of process groups), set by
    a tensor-parallel layer on its parameters: the sums are all-reduced over those groups.
Anything else is whole on every rank and needs no communication.
"""

from __future__ import annotations

from collections import defaultdict

import torch
import torch.distributed as dist

try:  # public since torch 2.5
    from torch.distributed.tensor import DTensor
except ImportError:  # pragma: no cover - older torch
    DTensor = ()


def local(t: torch.Tensor) -> torch.Tensor:
    """This rank's piece of `t` (a view: in-place changes reach the DTensor)."""
    return t._local_tensor if isinstance(t, DTensor) else t


def _reduce_groups(layout: torch.Tensor) -> tuple:
    """The process groups over which squared sums of tensors laid out like `layout` add up."""
    if isinstance(layout, DTensor):
        for p in layout.placements:
            if p.is_partial():
                raise ValueError("norm of a Partial DTensor: redistribute it to Shard/Replicate")
        mesh = layout.device_mesh
        # Every placement that is neither Replicate nor Partial splits the tensor: Shard, and
        # FSDP2's _StridedShard on top of a tensor-parallel Shard (which, in torch 2.14, is
        # not a Shard subclass and answers is_shard() with False).
        return tuple(mesh.get_group(d) for d, p in enumerate(layout.placements)
                     if not p.is_replicate() and mesh.size(d) > 1)
    return tuple(getattr(layout, "shard_groups", ()) or ())


def global_squared_norms(values: list[torch.Tensor],
                         layouts: list[torch.Tensor] | None = None) -> torch.Tensor:
    """Squared L2 norms of the full (unsharded) tensors, as a float32 vector of len(values).

    `values[i]` is this rank's piece (or a DTensor); `layouts[i]` (default: values[i]) tells
    how it is sharded. Every rank must call this with the same list (it may communicate).
    """
    layouts = values if layouts is None else layouts
    if not values:
        return torch.zeros(0)
    sums = torch.stack([local(v).detach().float().pow(2).sum() for v in values])
    by_groups: dict[tuple, list[int]] = defaultdict(list)
    for i, layout in enumerate(layouts):
        groups = _reduce_groups(layout)
        if groups:
            by_groups[groups].append(i)
    for groups, index in by_groups.items():
        part = sums[index]
        for group in groups:
            dist.all_reduce(part, op=dist.ReduceOp.SUM, group=group)
        sums[index] = part
    return sums


def clip_grad_norm_(params: list[torch.Tensor], max_norm: float, groups: tuple = ()
                    ) -> torch.Tensor:
    """Scale gradients so that their global L2 norm is at most `max_norm`; return the norm.

    The same rule as torch.nn.utils.clip_grad_norm_ (coefficient max_norm / (norm + 1e-6),
    capped at 1), with the norm summed correctly over shards and over mixed meshes.
    `groups`: process groups whose ranks hold other parameters of the model (pipeline
    stages): the squared total is all-reduced over them (one value each).
    """
    params = [p for p in params if p.grad is not None]
    if not params and not groups:
        return torch.zeros(())
    squares = global_squared_norms([p.grad for p in params], params).sum() if params else \
        torch.zeros(())
    for group in groups:
        dist.all_reduce(squares, op=dist.ReduceOp.SUM, group=group)
    total = squares.sqrt()
    coef = (max_norm / (total + 1e-6)).clamp(max=1.0)
    for p in params:
        g = local(p.grad)
        g.mul_(coef.to(device=g.device, dtype=g.dtype))
    return total
