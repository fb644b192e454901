"""LARS: layer-wise adaptive rate scaling (You et al. 2017, "Large Batch Training of
Convolutional Networks", Algorithm 1), with global norms under sharding.

For each parameter w with gradient g, global LR lr, trust coefficient eta, momentum mu:

    local_lr = eta * ||w|| / (||g|| + wd * ||w|| + eps)     (1 where ||w|| or ||g|| is 0)
    v = mu * v + lr * local_lr * (g + wd * w)
    w = w - v

The norms are those of the whole parameter, also when it is sharded (norms.py). Parameter
groups with `adapt=False` (biases, norm weights, embeddings in vitscale, with weight decay 0)
take plain momentum SGD: local_lr = 1.
"""

from __future__ import annotations

import torch

from .layerwise import LayerwiseOptimizer
from .norms import global_squared_norms, local


class Lars(LayerwiseOptimizer):
    def __init__(self, params, lr: float = 1.0, momentum: float = 0.9, eta: float = 1e-3,
                 weight_decay: float = 0.0, eps: float = 0.0, adapt: bool = True):
        if lr <= 0 or not 0 <= momentum < 1 or eta <= 0:
            raise ValueError(f"invalid Lars hyperparameters lr={lr} momentum={momentum} eta={eta}")
        defaults = dict(lr=lr, momentum=momentum, eta=eta, weight_decay=weight_decay, eps=eps,
                        adapt=adapt)
        super().__init__(params, defaults)

    def step_group(self, group: dict, params: list[torch.Tensor]) -> None:
        wd = group["weight_decay"]
        if group["adapt"]:
            w_norm = global_squared_norms([local(p) for p in params], params).sqrt()
            g_norm = global_squared_norms([p.grad for p in params], params).sqrt()
            local_lr = torch.where(
                (w_norm > 0) & (g_norm > 0),
                group["eta"] * w_norm / (g_norm + wd * w_norm + group["eps"]),
                torch.ones_like(w_norm))
        else:
            local_lr = torch.ones(len(params), device=local(params[0]).device)
        for p, rate in zip(params, local_lr):
            state = self.state[p]
            if not state:
                state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            x, g, buf = local(p), local(p.grad), local(state["momentum_buffer"])
            d = g.add(x, alpha=wd) if wd else g.clone()
            d.mul_(rate.to(device=d.device, dtype=d.dtype) * group["lr"])
            buf.mul_(group["momentum"]).add_(d)
            x.sub_(buf)
