"""LAMB: layer-wise adaptive moments (You et al. 2019, "Large Batch Optimization for Deep
Learning: Training BERT in 76 minutes", Algorithm 2), with global norms under sharding.

For each parameter x with gradient g at step t:

    m = b1 m + (1 - b1) g                 v = b2 v + (1 - b2) g^2
    r = m_hat / (sqrt(v_hat) + eps)       m_hat = m / (1 - b1^t), v_hat = v / (1 - b2^t)
    u = r + wd x                          (decoupled weight decay, as in AdamW)
    x = x - lr * phi(||x||) / ||u|| * u   (trust ratio; 1 where either norm is 0)

with phi the identity. The norms are those of the whole parameter, also when it is sharded
(norms.py). Parameter groups with `adapt=False` (vitscale puts biases, norm weights and
embeddings there, with weight decay 0) take the plain Adam step: trust ratio 1.
`bias_correction=False` gives the paper's v3 form that Colossal-AI uses.
"""

from __future__ import annotations

import torch

from .layerwise import LayerwiseOptimizer
from .norms import global_squared_norms, local


class Lamb(LayerwiseOptimizer):
    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-6, weight_decay: float = 0.0, bias_correction: bool = True,
                 adapt: bool = True):
        if lr <= 0 or eps < 0 or not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"invalid Lamb hyperparameters lr={lr} betas={betas} eps={eps}")
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        bias_correction=bias_correction, adapt=adapt)
        super().__init__(params, defaults)

    def step_group(self, group: dict, params: list[torch.Tensor]) -> None:
        b1, b2 = group["betas"]
        updates = []
        for p in params:
            state = self.state[p]
            if not state:
                state["step"] = torch.zeros((), dtype=torch.float32)
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["step"] += 1
            t = state["step"].item()
            g, x = local(p.grad), local(p)
            m, v = local(state["exp_avg"]), local(state["exp_avg_sq"])
            m.mul_(b1).add_(g, alpha=1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            if group["bias_correction"]:
                u = (m / (1 - b1 ** t)) / ((v / (1 - b2 ** t)).sqrt_().add_(group["eps"]))
            else:
                u = m / v.sqrt().add_(group["eps"])
            if group["weight_decay"]:
                u.add_(x, alpha=group["weight_decay"])
            updates.append(u)
        if group["adapt"]:
            w_norm = global_squared_norms([local(p) for p in params], params).sqrt()
            u_norm = global_squared_norms(updates, params).sqrt()
            trust = torch.where((w_norm > 0) & (u_norm > 0), w_norm / u_norm,
                                torch.ones_like(w_norm))
        else:
            trust = torch.ones(len(params), device=local(params[0]).device)
        for p, u, ratio in zip(params, updates, trust):
            x = local(p)
            x.add_(u * ratio.to(device=x.device, dtype=u.dtype), alpha=-group["lr"])
