"""Random Erasing on whole normalised batches on the training device.

Random Erasing (Zhong et al. 2020, "Random Erasing Data Augmentation", Alg. 1) blanks one
random rectangle per image with probability p: area fraction ~ U(0.02, 0.33), log aspect
ratio ~ U(log 0.3, log 3.3), up to 10 tries for a box that fits, filled with 0 or with
per-pixel N(0, 1) noise. It runs after normalisation, as timm and torchvision place it
(RandomErasing follows Normalize), so a zero fill is the dataset's mean colour and the noise
has the normalised images' scale. DeiT (Touvron et al. 2021, Table 8) trains with p = 0.25.

Semantics are torchvision.transforms.v2.RandomErasing's (defaults scale=(0.02, 0.33),
ratio=(0.3, 3.3)): h = round(sqrt(area a)), w = round(sqrt(area / a)), a box fits when
h < H and w < W, top-left uniform over the valid positions; with no fitting try the image is
left as it is. Batched: every image's 10 tries are drawn at once (so the random stream has a
fixed length whatever is kept), the first fitting one is picked with argmax, and the boxes are
applied with one mask; no per-image Python.

Like the crops (augment.py), the boxes are drawn for the whole global batch on every rank from
their own stream (ERASE_STREAM), so a sample gets the same box on 1, 2 or 4 ranks, after a
resume, and whether or not other augmentations are on. The noise of value='random' is made on
the device for this rank's erased images only (drawing it for the whole global batch on the CPU
would cost several times the erasing): its values, not its boxes or distribution, depend on the
rank layout.

    erasing = RandomErasing(p=0.25, value="random")
    draw = erasing.draw(n, height, width, generator)      # CPU, whole global batch
    x = erasing.apply(x, draw, mine, rank)                # normalised float (b, C, H, W)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..errors import ConfigError

# Stream of sharding.epoch_generator reserved for Random Erasing (0: order, 1: crop, flip and
# policy, 2: Mixup/CutMix).
ERASE_STREAM = 3
TRIES = 10


@dataclass(frozen=True)
class RandomErasing:
    p: float                                      # probability that an image is erased
    value: str = "zero"                           # 'zero' | 'random' (per-pixel N(0, 1))
    scale: tuple[float, float] = (0.02, 0.33)     # area fraction of the box
    ratio: tuple[float, float] = (0.3, 3.3)       # aspect ratio h / w of the box

    def __post_init__(self):
        if not 0 <= self.p <= 1:
            raise ConfigError(f"RANDOM_ERASING={self.p!r} is a probability: use a value in "
                              "[0, 1] (0 turns it off)")
        if self.value not in ("zero", "random"):
            raise ConfigError(f"RANDOM_ERASING_VALUE={self.value!r} is not allowed: choose "
                              "'zero' or 'random'")

    def draw(self, n: int, height: int, width: int, generator: torch.Generator) -> dict:
        """{'boxes': (n, 4) int64 (top, left, h, w), h = w = 0 for an image left as it is;
        'seed': the noise seed of this batch}, on the CPU."""
        return dict(boxes=draw_boxes(n, height, width, self.p, self.scale, self.ratio,
                                     generator),
                    seed=int(torch.randint(0, 2**62, (1,), generator=generator)))

    def apply(self, images: torch.Tensor, draw: dict, mine: slice, rank: int = 0
              ) -> torch.Tensor:
        """This rank's normalised images with their slice `mine` of the draw erased."""
        boxes = draw["boxes"][mine][:len(images)]
        if self.value == "zero":
            return erase(images, boxes)
        # Noise for the erased images only (a share p of them): the normal draws are most of
        # the cost. The rows come from the CPU draws, so the device is not synced.
        rows = torch.nonzero(boxes[:, 2] > 0).flatten()
        g = torch.Generator(images.device).manual_seed(draw["seed"] + rank)
        noise = torch.randn((len(rows), *images.shape[1:]), generator=g, device=images.device,
                            dtype=images.dtype)
        out = images.clone()
        rows_here = rows.to(images.device, non_blocking=True)
        out[rows_here] = erase(images[rows_here], boxes[rows], noise)
        return out


def draw_boxes(n: int, height: int, width: int, p: float, scale: tuple[float, float],
               ratio: tuple[float, float], generator: torch.Generator) -> torch.Tensor:
    """(n, 4) int64 boxes (top, left, h, w) as v2.RandomErasing draws them; (0, 0, 0, 0)
    where the image is not erased (probability 1 - p, or no try fitted)."""
    erase = torch.rand(n, generator=generator, dtype=torch.float64) < p
    area = height * width * torch.empty(n, TRIES, dtype=torch.float64).uniform_(
        scale[0], scale[1], generator=generator)
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    aspect = torch.exp(torch.empty(n, TRIES, dtype=torch.float64).uniform_(
        *log_ratio, generator=generator))
    h = torch.sqrt(area * aspect).round().long()          # round half to even, as Python's
    w = torch.sqrt(area / aspect).round().long()
    u = torch.rand(n, TRIES, 2, generator=generator, dtype=torch.float64)
    fits = (h < height) & (w < width)
    first = fits.int().argmax(1, keepdim=True)            # the first try that fits
    h, w = h.gather(1, first)[:, 0], w.gather(1, first)[:, 0]
    u = u.gather(1, first[..., None].expand(-1, -1, 2))[:, 0]
    # Top-left uniform over the valid positions, as randint(0, H - h + 1).
    top = (u[:, 0] * (height - h + 1)).floor().long()
    left = (u[:, 1] * (width - w + 1)).floor().long()
    boxes = torch.stack([top, left, h, w], dim=1)
    return torch.where((erase & fits.any(1))[:, None], boxes, 0)


def erase(images: torch.Tensor, boxes: torch.Tensor, noise: torch.Tensor | None = None
          ) -> torch.Tensor:
    """images (b, C, H, W) with box b set to 0 (or to noise's pixels there): one mask, no
    per-image work. A (0, 0, 0, 0) box leaves its image as it is."""
    _, _, height, width = images.shape
    boxes = boxes.to(images.device, non_blocking=True)
    top, left, h, w = boxes.T[..., None]                  # (b, 1) each
    rows = torch.arange(height, device=images.device)
    cols = torch.arange(width, device=images.device)
    inside_rows = (rows >= top) & (rows < top + h)         # (b, H)
    inside_cols = (cols >= left) & (cols < left + w)       # (b, W)
    mask = (inside_rows[:, :, None] & inside_cols[:, None, :])[:, None]   # (b, 1, H, W)
    fill = noise if noise is not None else torch.zeros((), dtype=images.dtype,
                                                       device=images.device)
    return torch.where(mask, fill, images)
