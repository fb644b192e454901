"""Differentiable collectives over one process group, for the hand-written grid modes.

Each is a pair: what forward does, and the collective its gradient needs (Megatron-LM's
conjugate operators, Shoeybi et al. 2019, Sec. 3). Bytes per rank for a message of S bytes on
n ranks: all-gather and reduce-scatter (n-1)/n S, all-reduce 2 (n-1)/n S (accounting.py).

    gather(x, dim, group)          forward all-gather along dim   backward reduce-scatter (sum)
    reduce_scatter(x, dim, group)  forward reduce-scatter         backward all-gather
    sum_replicated(x, group)       forward all-reduce (sum)       backward identity

`sum_replicated` is for partial results whose sum every rank then uses identically (the
partial logits of a classifier split over its input width): each rank's loss is the same
function of the sum, so the gradient reaching each partial is the gradient of the sum, not
n times it.
"""

from __future__ import annotations

import warnings

import torch
import torch.distributed as dist

# torch 2.14 deprecates these two names in favour of *_single variants and repeats the warning
# on every rank at every call; the old names work on every torch vitscale supports (2.11
# included), so the warning says nothing a user can act on.
warnings.filterwarnings("ignore", category=FutureWarning,
                        message=r"`torch\.distributed\.(all_gather_into_tensor|reduce_scatter_tensor)`"
                                r" is deprecated")


def _all_gather(x: torch.Tensor, dim: int, group) -> torch.Tensor:
    n = dist.get_world_size(group)
    if n == 1:
        return x
    x = x.movedim(dim, 0).contiguous()
    out = x.new_empty((n * x.shape[0], *x.shape[1:]))
    dist.all_gather_into_tensor(out, x, group=group)
    return out.movedim(0, dim)


def _reduce_scatter(x: torch.Tensor, dim: int, group) -> torch.Tensor:
    n = dist.get_world_size(group)
    if n == 1:
        return x
    x = x.movedim(dim, 0).contiguous()
    out = x.new_empty((x.shape[0] // n, *x.shape[1:]))
    dist.reduce_scatter_tensor(out, x, group=group)
    return out.movedim(0, dim)


class _Gather(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, dim, group):
        ctx.dim, ctx.group = dim, group
        return _all_gather(x, dim, group)

    @staticmethod
    def backward(ctx, grad):
        return _reduce_scatter(grad, ctx.dim, ctx.group), None, None


class _ReduceScatter(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, dim, group):
        ctx.dim, ctx.group = dim, group
        return _reduce_scatter(x, dim, group)

    @staticmethod
    def backward(ctx, grad):
        return _all_gather(grad, ctx.dim, ctx.group), None, None


class _SumReplicated(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, group):
        x = x.clone()
        if dist.get_world_size(group) > 1:
            dist.all_reduce(x, group=group)
        return x

    @staticmethod
    def backward(ctx, grad):
        return grad, None


def gather(x: torch.Tensor, dim: int, group) -> torch.Tensor:
    return _Gather.apply(x, dim, group)


def reduce_scatter(x: torch.Tensor, dim: int, group) -> torch.Tensor:
    return _ReduceScatter.apply(x, dim, group)


def sum_replicated(x: torch.Tensor, group) -> torch.Tensor:
    return _SumReplicated.apply(x, group)


__all__ = ["gather", "reduce_scatter", "sum_replicated"]
