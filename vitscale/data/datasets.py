"""What vitscale knows about each dataset before reading it (for planning and validation)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    num_classes: int
    img_size: int          # native resolution of the stored images
    train_size: int
    eval_size: int
    eval_split: str        # the split evaluated every epoch
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


DATASETS: dict[str, DatasetInfo] = {
    # Channel statistics of the CIFAR-10 training set (computed on the 50,000 train images).
    "cifar10": DatasetInfo("cifar10", num_classes=10, img_size=32, train_size=50_000,
                           eval_size=10_000, eval_split="test",
                           mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616)),
}
