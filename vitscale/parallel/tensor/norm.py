"""LayerNorm over a width split across a process group (the grid modes' LayerNorm).

Each rank holds [..., D/n] of every token; the mean and variance are over all D values:

    forward   mu = allreduce(sum x) / D,  var = allreduce(sum (x - mu)^2) / D     2 x [...] fp32
    backward  g = dy * weight;  m1 = allreduce(sum g) / D,  m2 = allreduce(sum g xhat) / D
              dx = (g - m1 - xhat m2) / sqrt(var + eps)                            2 x [...] fp32

(two passes for the variance, as torch's LayerNorm computes it, so the two agree to fp32
rounding). The weight and bias are this rank's width chunk: their gradients are local sums.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn


def _sum(t: torch.Tensor, group) -> torch.Tensor:
    if dist.get_world_size(group) > 1:
        dist.all_reduce(t, group=group)
    return t


class _Normalize(torch.autograd.Function):
    """xhat = (x - mean) / sqrt(var + eps), statistics over the width summed over `group`."""

    @staticmethod
    def forward(ctx, x, group, width: int, eps: float):
        xf = x.float()
        mean = _sum(xf.sum(-1, keepdim=True), group) / width
        centred = xf - mean
        var = _sum((centred * centred).sum(-1, keepdim=True), group) / width
        rstd = torch.rsqrt(var + eps)
        xhat = centred * rstd
        ctx.save_for_backward(xhat, rstd)
        ctx.group, ctx.width, ctx.dtype = group, width, x.dtype
        return xhat.to(x.dtype)

    @staticmethod
    def backward(ctx, g):
        xhat, rstd = ctx.saved_tensors
        g = g.float()
        sums = _sum(torch.cat([g.sum(-1, keepdim=True), (g * xhat).sum(-1, keepdim=True)], -1),
                    ctx.group) / ctx.width
        dx = (g - sums[..., :1] - xhat * sums[..., 1:]) * rstd
        return dx.to(ctx.dtype), None, None, None


class GridLayerNorm(nn.LayerNorm):
    """nn.LayerNorm whose input and parameters hold one width chunk: the chunks of the same
    tokens are on the ranks of `grid.groups[width_dim]` (both set by the grid mode)."""

    grid = None
    width_dim = ""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        group = self.grid.groups[self.width_dim]
        xhat = _Normalize.apply(x, group, self.normalized_shape[-1], self.eps)
        return xhat * self.weight + self.bias
