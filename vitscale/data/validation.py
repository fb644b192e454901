"""A validation split carved from the training set, so that model selection never sees test.

VAL_SPLIT images are held out, stratified by class (each class gives its share, rounded so
the total is exact), chosen by a permutation drawn from SEED: the same images on every run,
rank and layout.
"""

from __future__ import annotations

import torch

from ..errors import ConfigError
from .cifar import ImageSplit


def carve_validation(train: ImageSplit, size: int, seed: int) -> tuple[ImageSplit, ImageSplit | None]:
    """(train without the held-out images, held-out images), or (train, None) for size 0."""
    if not size:
        return train, None
    n = len(train.labels)
    if not 0 < size < n:
        raise ConfigError(f"VAL_SPLIT={size} must be between 1 and the {n - 1} training images")
    g = torch.Generator().manual_seed(seed + 7)
    order = torch.randperm(n, generator=g)
    labels = train.labels[order]
    counts = torch.bincount(labels, minlength=len(train.classes))
    share = counts.double() * size / n
    take = share.floor().long()
    # Hand the rounding remainder to the classes with the largest fractional parts.
    remainder = size - int(take.sum())
    take[torch.argsort(share - take.double(), descending=True)[:remainder]] += 1
    held = torch.zeros(n, dtype=torch.bool)
    for cls in range(len(train.classes)):
        members = order[labels == cls]
        held[members[:take[cls]]] = True
    keep_idx, held_idx = torch.nonzero(~held).flatten(), torch.nonzero(held).flatten()
    return (ImageSplit(train.images[keep_idx], train.labels[keep_idx], train.classes),
            ImageSplit(train.images[held_idx], train.labels[held_idx], train.classes))
