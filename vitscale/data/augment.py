"""Batched augmentations on the training device: one kernel per batch, no per-sample Python.

The idea is airbench's (Keller Jordan, 2024): keep uint8 images on the device and augment whole
batches there, instead of transforming one PIL image at a time in worker processes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_crop(images: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """torchvision's RandomCrop(size, padding) with zero fill, for a whole (B, C, H, W) batch.

    Each image gets its own offset (dy, dx) in [0, 2*padding]; the crop is one gather.
    """
    if padding <= 0:
        return images
    B, C, H, W = images.shape
    padded = F.pad(images, (padding,) * 4)                                   # (B, C, H+2p, W+2p)
    offsets = torch.randint(0, 2 * padding + 1, (2, B), generator=generator).to(images.device)
    rows = offsets[0, :, None] + torch.arange(H, device=images.device)       # (B, H)
    cols = offsets[1, :, None] + torch.arange(W, device=images.device)       # (B, W)
    batch = torch.arange(B, device=images.device)[:, None, None]
    # Advanced indices around a slice put the indexed dims first: (B, H, W, C).
    return padded[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def random_hflip(images: torch.Tensor, generator: torch.Generator, p: float = 0.5) -> torch.Tensor:
    flip = (torch.rand(images.shape[0], generator=generator) < p).to(images.device)
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


def to_float(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor,
             size: int | None = None) -> torch.Tensor:
    """uint8 (B, C, H, W) -> normalised float32, resized to `size` when it differs."""
    x = images.float()
    if size is not None and x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return (x - mean) / std
