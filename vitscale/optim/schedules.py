"""Learning-rate schedules, stepped once per optimizer step.

    linear warmup from lr/warmup to lr over `warmup_steps`, then one of
      cosine     lr -> min_lr along half a cosine (Loshchilov & Hutter 2017, no restarts)
      linear     lr -> min_lr in a straight line
      multistep  lr * gamma^k after the k-th milestone (He et al. 2016)
      constant   lr

The peak LR may be scaled from a reference batch (Goyal et al. 2017, linear; Krizhevsky
2014 / Hoffer et al. 2017, square root): peak = LEARNING_RATE * f(global_batch / reference).
"""

from __future__ import annotations

import math
from bisect import bisect_right

SCHEDULES = ("cosine", "linear", "multistep", "constant")


def lr_multiplier(step: int, *, kind: str, warmup_steps: int, total_steps: int,
                  min_ratio: float = 0.0, milestones: tuple[int, ...] = (),
                  gamma: float = 0.1) -> float:
    """The factor applied to the peak LR at optimizer step `step` (0-based)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    if kind == "cosine":
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    if kind == "linear":
        return min_ratio + (1 - min_ratio) * (1 - progress)
    if kind == "multistep":
        return gamma ** bisect_right(milestones, step)
    if kind == "constant":
        return 1.0
    raise ValueError(f"unknown schedule {kind!r}")


def scaled_lr(lr: float, global_batch: int, reference_batch: int | None,
              rule: str = "linear") -> float:
    """LEARNING_RATE given for `reference_batch`, scaled to `global_batch`."""
    if not reference_batch:
        return lr
    ratio = global_batch / reference_batch
    return lr * (math.sqrt(ratio) if rule == "sqrt" else ratio)
