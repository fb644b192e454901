"""Per-image torchvision.transforms.v2 pipelines for the DataLoader path (docs/data.md).

Training: RandomResizedCrop (or CIFAR's padded RandomCrop), horizontal flip, then optionally
RandAugment (Cubuk et al. 2020) or AutoAugment (Cubuk et al. 2019), and after normalisation
Random Erasing (Zhong et al. 2020; erasing_transform, applied by the loader). Evaluation: Resize to
img_size / crop_pct, CenterCrop img_size (crop_pct 0.875 is the classic 224/256). uint8
(3, H, W) tensors in (decode.decode_rgb), uint8 tensors out; the loader normalises
(worker_loader.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torchvision.transforms import v2


@dataclass(frozen=True)
class AugmentSpec:
    img_size: int
    train_crop: str = "rrc"                  # 'rrc' | 'pad' | 'none'
    crop_padding: int = 4
    hflip: bool = True
    rrc_scale: tuple[float, float] = (0.08, 1.0)
    rrc_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    randaugment: tuple[int, int] | None = None   # (num_ops, magnitude)
    autoaugment: str | None = None               # 'imagenet' | 'cifar10' | 'svhn'
    random_erasing: float = 0.0                  # probability; 0 = off
    random_erasing_value: str = "zero"           # 'zero' | 'random' (per-pixel N(0, 1))
    eval_crop_pct: float = 0.875

    @property
    def eval_resize(self) -> int:
        return round(self.img_size / self.eval_crop_pct)


# torchvision is imported where a transform is built, not with this module: it costs every
# process ~1.4 s of CPU at start, and the device pipeline (the default) never needs it.

def train_transform(spec: AugmentSpec) -> v2.Compose:
    from torchvision.transforms import v2
    if spec.train_crop == "rrc":
        steps = [v2.RandomResizedCrop(spec.img_size, scale=spec.rrc_scale, ratio=spec.rrc_ratio,
                                      antialias=True)]
    elif spec.train_crop == "pad":
        steps = [v2.Resize(spec.img_size, antialias=True), v2.CenterCrop(spec.img_size),
                 v2.RandomCrop(spec.img_size, padding=spec.crop_padding)]
    else:
        steps = [v2.Resize(spec.img_size, antialias=True), v2.CenterCrop(spec.img_size)]
    if spec.hflip:
        steps.append(v2.RandomHorizontalFlip())
    if spec.randaugment is not None:
        num_ops, magnitude = spec.randaugment
        steps.append(v2.RandAugment(num_ops=num_ops, magnitude=magnitude))
    if spec.autoaugment is not None:
        policy = {"imagenet": v2.AutoAugmentPolicy.IMAGENET, "cifar10": v2.AutoAugmentPolicy.CIFAR10,
                  "svhn": v2.AutoAugmentPolicy.SVHN}[spec.autoaugment]
        steps.append(v2.AutoAugment(policy))
    return v2.Compose(steps)


def erasing_transform(spec: AugmentSpec) -> v2.RandomErasing | None:
    """Random Erasing for normalised float images (it follows Normalize, as in timm and
    torchvision's references), with v2's defaults scale=(0.02, 0.33), ratio=(0.3, 3.3); the
    device pipeline's batched version draws the same boxes (erasing.py). None when off."""
    if not spec.random_erasing:
        return None
    from torchvision.transforms import v2
    value = "random" if spec.random_erasing_value == "random" else 0
    return v2.RandomErasing(p=spec.random_erasing, value=value)


def eval_transform(spec: AugmentSpec) -> v2.Compose:
    from torchvision.transforms import v2
    return v2.Compose([v2.Resize(spec.eval_resize, antialias=True), v2.CenterCrop(spec.img_size)])
