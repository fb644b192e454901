"""Data: where the dataset is, how it is read, and the loaders that feed the training device.

Where the data is: --data PATH, else $DATA, else CIFAR-10 is downloaded into the cache folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import DataError
from . import cache
from .cifar import ImageSplit, check_class_sets, download_cifar10, load_cifar10
from .datasets import DATASETS, DatasetInfo
from .device_loader import DeviceLoader


def resolve_data_root(data: str | os.PathLike | None, dataset: str) -> Path:
    if data:
        return Path(data)
    if os.environ.get("DATA"):
        return Path(os.environ["DATA"])
    if dataset == "cifar10":
        return download_cifar10(cache.cache_dir() / "downloads")
    raise DataError(f"no data for {dataset}: pass --data PATH or set $DATA")


def load_splits(dataset: str, root: Path) -> tuple[ImageSplit, ImageSplit]:
    """(train, eval) splits of `dataset` under `root`, decoded (or from the cache)."""
    info = DATASETS[dataset]
    train = load_cifar10(root, "train", info.img_size)
    evaluation = load_cifar10(root, info.eval_split, info.img_size)
    check_class_sets(train, evaluation, root)
    if len(train.classes) != info.num_classes:
        raise DataError(f"{root}: found {len(train.classes)} classes, {dataset} has "
                        f"{info.num_classes}: check that --data points at {dataset}")
    return train, evaluation


__all__ = ["DATASETS", "DatasetInfo", "DeviceLoader", "ImageSplit", "load_splits",
           "resolve_data_root"]
