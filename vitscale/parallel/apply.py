"""Turn a pure model into the trained one, in one fixed order (torchtitan's, see DESIGN.md):

    1. tensor parallelism      (shards q/k/v/fc1 column-wise, proj/fc2 row-wise)
    2. activation checkpointing (per block; must wrap the sharded block)
    3. torch.compile           (per block; compiles what will actually run)
    4. data parallelism        (DDP or FSDP2; wraps everything above)

Pipeline parallelism, when on, splits the model into stages before step 1. This version of
vitscale runs steps 2 and 3; the plan refuses layouts that need steps 1 and 4 with one line.
"""

from __future__ import annotations

from torch import nn

from ..config import Config
from .checkpointing import checkpoint_module


def parallelize(model: nn.Module, cfg: Config) -> nn.Module:
    if cfg.CHECKPOINT:
        for block in model.blocks:
            checkpoint_module(block)
    if cfg.compile:
        for block in model.blocks:
            block.compile()
    return model
