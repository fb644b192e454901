"""Optimizers (AdamW, SGD, LAMB, LARS) and learning-rate schedules, stepped per optimizer step.

Parameters are split into two groups. Weights of linear and convolution layers get weight
decay and, for LAMB/LARS, the layer-wise trust ratio. Biases, normalisation weights and the
position/class embeddings get neither: they are 1-D or additive offsets, and decaying or
rescaling them toward zero only hurts (standard ViT/DeiT practice; You et al. 2019 exclude
them from adaptation too).

    from vitscale.optim import Lamb, Lars      # torch.optim.Optimizer subclasses
"""

from __future__ import annotations

import torch
from torch import nn

from .lamb import Lamb
from .lars import Lars
from .lr_scale import split_lr_scaled
from .norms import clip_grad_norm_, global_squared_norms
from .schedules import SCHEDULES, lr_multiplier, scaled_lr

OPTIMIZERS = ("adamw", "sgd", "lamb", "lars")


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """[decayed and adapted weights, the rest]: `adapt` is read by Lamb and Lars. Parameters
    with an LR multiplier (FFF_LR_DEPTH) follow in groups of their own (lr_scale.py)."""
    no_decay = model.no_weight_decay_names() if hasattr(model, "no_weight_decay_names") else set()
    decay, rest = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (rest if name in no_decay or p.ndim <= 1 else decay).append(p)
    return split_lr_scaled(model, [{"params": decay, "weight_decay": weight_decay, "adapt": True},
                                   {"params": rest, "weight_decay": 0.0, "adapt": False}])


def optimizer_class(cfg, device: torch.device) -> tuple[type, dict]:
    """(torch.optim.Optimizer subclass, its keyword arguments) for cfg.OPTIMIZER."""
    name = cfg.OPTIMIZER
    if name == "adamw":
        # The fused kernel does the whole update in one launch per dtype on CUDA.
        return torch.optim.AdamW, dict(betas=cfg.BETAS, eps=cfg.EPS or 1e-8,
                                       fused=device.type == "cuda")
    if name == "sgd":
        return torch.optim.SGD, dict(momentum=cfg.MOMENTUM, nesterov=cfg.NESTEROV)
    if name == "lamb":
        return Lamb, dict(betas=cfg.BETAS, eps=cfg.EPS or 1e-6,
                          bias_correction=cfg.LAMB_BIAS_CORRECTION)
    if name == "lars":
        return Lars, dict(momentum=cfg.MOMENTUM, eta=cfg.LARS_ETA, eps=cfg.EPS or 0.0)
    raise ValueError(f"unknown optimizer {name!r}")


def build_optimizer(groups: list[dict], cfg, lr: float, device: torch.device, zero_group=None):
    """The configured optimizer over `groups` (from param_groups, possibly fp32 masters).

    With `zero_group` (ZeRO stage 1: the data-parallel process group) each data-parallel rank
    keeps and updates only its 1/N of the optimizer state (torch's ZeroRedundancyOptimizer),
    then broadcasts its parameters.
    """
    cls, kwargs = optimizer_class(cfg, device)
    groups = [{**g, "lr": lr * g["lr_scale"]} if "lr_scale" in g else g for g in groups]
    if zero_group is None:
        return cls(groups, lr=lr, **kwargs)
    from torch.distributed.optim import ZeroRedundancyOptimizer
    first, *rest = groups
    opt = ZeroRedundancyOptimizer(first["params"], optimizer_class=cls,
                                  process_group=zero_group, lr=lr,
                                  weight_decay=first["weight_decay"], **kwargs)
    opt.param_groups[0].update({k: v for k, v in first.items() if k != "params"})
    for group in rest:
        opt.add_param_group(group)
    return opt


def build_schedule(optimizer: torch.optim.Optimizer, cfg, plan):
    """LambdaLR over optimizer steps: warmup, then the configured decay (schedules.py)."""
    min_ratio = cfg.MIN_LR / plan.peak_lr
    milestones = tuple(round(e * plan.steps_per_epoch) for e in cfg.LR_MILESTONES)

    def factor(step: int) -> float:
        return lr_multiplier(step, kind=cfg.LR_SCHEDULE, warmup_steps=plan.warmup_steps,
                             total_steps=plan.total_steps, min_ratio=min_ratio,
                             milestones=milestones, gamma=cfg.LR_GAMMA)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


__all__ = ["Lamb", "Lars", "OPTIMIZERS", "SCHEDULES", "build_optimizer", "build_schedule",
           "clip_grad_norm_", "global_squared_norms", "lr_multiplier", "param_groups",
           "scaled_lr"]
