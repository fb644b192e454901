"""Optimizers and learning-rate schedules, stepped once per optimizer step.

Weight decay skips biases, normalisation weights and the position/class embeddings (the
standard ViT/DeiT practice): they are 1-D or additive offsets, and decaying them toward zero
only hurts.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .config import Config
from .plan import Plan


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    no_decay = model.no_weight_decay_names() if hasattr(model, "no_weight_decay_names") else set()
    decay, rest = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (rest if name in no_decay or p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": rest, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, cfg: Config, device: torch.device) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg.WEIGHT_DECAY)
    # The fused kernel does the whole AdamW update in one launch per dtype on CUDA; on the CPU
    # the foreach path is as fast and available on every torch we support.
    fused = device.type == "cuda"
    return torch.optim.AdamW(groups, lr=cfg.LEARNING_RATE, betas=cfg.BETAS, fused=fused)


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, min_ratio: float) -> float:
    """LR multiplier: linear from 1/warmup to 1 over warmup, then cosine down to min_ratio."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def build_schedule(optimizer: torch.optim.Optimizer, cfg: Config, plan: Plan):
    min_ratio = cfg.MIN_LR / cfg.LEARNING_RATE
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_cosine(step, plan.warmup_steps, plan.total_steps, min_ratio))
