"""Per-parameter learning-rate multipliers, as optimizer parameter groups.

A module asks for them with a method `lr_scales() -> [(parameter, multiplier), ...]`; the FFF
layer does so for its tree levels when FFF_LR_DEPTH is set (models/fff.py: seed 004's "adjust
the training rate of the root to be smaller than the leaves"). A multiplier must be a group of
its own: Adam-type updates divide the gradient by its own running scale, so scaling gradients
would not change the step, and one LR per tensor is all torch optimizers offer.

`split_lr_scaled(model, groups)` keeps the given groups first, in order (group 0 stays the
reference LR the logs show, and ZeRO's first group), without the scaled parameters, and appends
one group per (original group, multiplier) with the same settings plus `lr_scale`.
`build_optimizer` turns `lr_scale` into the group's `lr`; the LR schedule multiplies every
group's initial LR by the same factor, so the ratios hold through warmup and decay.
"""

from __future__ import annotations

from torch import nn


def lr_scales(model: nn.Module) -> dict[int, float]:
    """id(parameter) -> multiplier, from every module's `lr_scales()`; wrappers (DDP, FSDP2,
    compile) keep parameter identity, so ids are safe where names may gain prefixes."""
    scales: dict[int, float] = {}
    for module in model.modules():
        own = getattr(module, "lr_scales", None)
        if callable(own):
            scales.update((id(p), float(s)) for p, s in own())
    return scales


def split_lr_scaled(model: nn.Module, groups: list[dict]) -> list[dict]:
    """`groups` with the parameters that have an LR multiplier other than 1 moved into groups
    of their own (`lr_scale` set), appended after the original groups."""
    scales = {k: v for k, v in lr_scales(model).items() if v != 1.0}
    if not scales:
        return groups
    kept, extra = [], []
    for group in groups:
        by_scale: dict[float, list] = {}
        for p in group["params"]:
            by_scale.setdefault(scales.get(id(p), 1.0), []).append(p)
        kept.append({**group, "params": by_scale.pop(1.0, [])})
        extra += [{**group, "params": params, "lr_scale": scale}
                  for scale, params in sorted(by_scale.items())]
    return kept + extra
