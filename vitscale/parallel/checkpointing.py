"""Activation checkpointing (Chen et al. 2016, "Training Deep Nets with Sublinear Memory Cost").

A checkpointed block keeps only its input during the forward pass and recomputes its
activations in backward: about one extra forward per block, for activation memory that no
longer grows with depth x sequence x width inside the block.

The block's class is swapped for a subclass whose forward runs under
torch.utils.checkpoint, so parameter names (and so checkpoints and state dicts) do not change.
"""

from __future__ import annotations

import functools

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint


@functools.cache
def _checkpointed_class(cls: type) -> type:
    def forward(self, *args, **kwargs):
        if not torch.is_grad_enabled():  # evaluation: nothing to save memory for
            return cls.forward(self, *args, **kwargs)
        return checkpoint(cls.forward, self, *args, use_reentrant=False, **kwargs)

    return type(f"Checkpointed{cls.__name__}", (cls,), {"forward": forward})


def checkpoint_module(module: nn.Module) -> nn.Module:
    module.__class__ = _checkpointed_class(type(module))
    return module


def is_checkpointed(module: nn.Module) -> bool:
    return type(module).__name__.startswith("Checkpointed")
