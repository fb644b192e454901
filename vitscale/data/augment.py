"""Batched augmentations on the training device: one kernel per batch, no per-sample Python.

The idea is airbench's (Keller Jordan, 2024): keep uint8 images on the device and augment whole
batches there, instead of transforming one PIL image at a time in worker processes.

Random draws are separate from the image work: a loader draws them for the whole global batch
(every data-parallel rank draws the same numbers) and each rank applies its slice, so a sample
gets the same augmentation whatever the number of ranks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def draw_crop_offsets(n: int, padding: int, generator: torch.Generator) -> torch.Tensor:
    """(2, n) offsets (dy, dx) in [0, 2*padding] for random_crop."""
    return torch.randint(0, 2 * padding + 1, (2, n), generator=generator)


def draw_flips(n: int, generator: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """(n,) booleans: which images random_hflip mirrors."""
    return torch.rand(n, generator=generator) < p


def random_crop(images: torch.Tensor, padding: int, offsets: torch.Tensor) -> torch.Tensor:
    """torchvision's RandomCrop(size, padding) with zero fill, for a whole (B, C, H, W) batch.

    Image b is padded and cropped at offsets[:, b]; the crop is one gather.
    """
    if padding <= 0:
        return images
    B, C, H, W = images.shape
    offsets = offsets.to(images.device)
    padded = F.pad(images, (padding,) * 4)                                   # (B, C, H+2p, W+2p)
    rows = offsets[0, :, None] + torch.arange(H, device=images.device)       # (B, H)
    cols = offsets[1, :, None] + torch.arange(W, device=images.device)       # (B, W)
    batch = torch.arange(B, device=images.device)[:, None, None]
    # Advanced indices around a slice put the indexed dims first: (B, H, W, C).
    return padded[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def random_hflip(images: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
    flips = flips.to(images.device)
    return torch.where(flips[:, None, None, None], images.flip(-1), images)


def to_float(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor,
             size: int | None = None) -> torch.Tensor:
    """uint8 (B, C, H, W) -> normalised float32, resized to `size` when it differs."""
    x = images.float()
    if size is not None and x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return (x - mean) / std
