"""Held-out splits carved from a labelled pool: validation from train, Caltech-101's test.

VAL_SPLIT images are held out of train, stratified by class (each class gives its share,
rounded so the total is exact), chosen by a permutation drawn from SEED: the same images on
every run, rank and layout, so model selection never sees the test set. Caltech-101, which has
no official split, gets its test set the same way (with another salt).
"""

from __future__ import annotations

import torch

from ..errors import ConfigError
from .base import ImageSplit

VALIDATION_SALT, TEST_SALT = 7, 11


def stratified_holdout(labels: torch.Tensor, num_classes: int, size: int, seed: int,
                       salt: int = VALIDATION_SALT) -> tuple[torch.Tensor, torch.Tensor]:
    """(kept indices, held-out indices), both sorted; `size` images held out in proportion."""
    n = len(labels)
    g = torch.Generator().manual_seed(seed + salt)
    order = torch.randperm(n, generator=g)
    shuffled = labels[order]
    counts = torch.bincount(shuffled, minlength=num_classes)
    share = counts.double() * size / n
    take = share.floor().long()
    # Hand the rounding remainder to the classes with the largest fractional parts.
    remainder = size - int(take.sum())
    take[torch.argsort(share - take.double(), descending=True)[:remainder]] += 1
    held = torch.zeros(n, dtype=torch.bool)
    for cls in range(num_classes):
        members = order[shuffled == cls]
        held[members[:take[cls]]] = True
    return torch.nonzero(~held).flatten(), torch.nonzero(held).flatten()


def check_holdout_size(size: int, n: int, key: str = "VAL_SPLIT") -> None:
    if not 0 < size < n:
        raise ConfigError(f"{key}={size} must be between 1 and the {n - 1} training images")


def carve_validation(train: ImageSplit, size: int, seed: int) -> tuple[ImageSplit, ImageSplit | None]:
    """(train without the held-out images, held-out images), or (train, None) for size 0."""
    if not size:
        return train, None
    check_holdout_size(size, len(train.labels))
    keep, held = stratified_holdout(train.labels, len(train.classes), size, seed)
    return (ImageSplit(train.images[keep], train.labels[keep], train.classes),
            ImageSplit(train.images[held], train.labels[held], train.classes))
