"""The dense feed-forward sublayer: Linear -> GELU -> Linear (Vaswani et al. 2017; ViT).

The class name `MLP` and its layers `fc1` (D -> hidden) and `fc2` (hidden -> D) are an
interface: 1D tensor parallelism (vitscale/parallel/) shards every `MLP` it finds in a block,
`fc1` column-wise and `fc2` row-wise, so any hidden width (MLP_RATIO or MLP_DIM) and every
sublayer of FFN_PER_BLOCK > 1 shards the same way. Also importable as vitscale.models.vit.MLP.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MLP(nn.Module):
    """(..., D) -> (..., D) through a hidden width `hidden`."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(F.gelu(self.fc1(x)))))
