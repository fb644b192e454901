"""Data: where the dataset is, how it is read, and the loaders that feed the training device.

Where the data is: --data PATH, else $DATA, else CIFAR-10 is downloaded into the cache folder.
The layout of the package follows the path of an image:

    sources.py, cifar.py, tfrecord.py   where the encoded images are (folders, archives, records)
    decode.py, compact.py               bytes -> RGB pixels; a whole split -> one cached uint8 tensor
    sharding.py, base.py                which rank reads which samples, in which order
    device_loader.py, augment.py        pipeline 'device': batches augmented on the device
    worker_loader.py, transforms.py     pipeline 'dataloader': workers, torchvision.transforms.v2
    dali_loader.py                      pipeline 'dali': NVIDIA DALI
    mix.py                              Mixup / CutMix on any pipeline's batches
    build.py                            config -> splits -> the chosen pipeline's loaders
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import DataError
from . import cache
from .base import ImageSplit
from .build import DataSplits, Loaders, build_loaders, decoded_splits, find_splits
from .cifar import download_cifar10
from .datasets import DATASETS, DatasetInfo
from .device_loader import DeviceLoader


def resolve_data_root(data: str | os.PathLike | None, dataset: str) -> Path:
    if dataset == "synthetic":
        return Path(".")
    if data:
        return Path(data)
    if os.environ.get("DATA"):
        return Path(os.environ["DATA"])
    if dataset == "cifar10":
        return download_cifar10(cache.cache_dir() / "downloads")
    raise DataError(f"no data for {dataset}: pass --data PATH or set $DATA")


def load_splits(dataset: str, root: Path) -> tuple[ImageSplit, ImageSplit]:
    """(train, eval) splits of a dataset that fits in memory, decoded (or from the cache), at
    the dataset's own resolution."""
    from ..config import Config
    cfg = Config(DATASET=dataset)
    splits = find_splits(cfg, root)
    train, evaluation, _ = decoded_splits(cfg, splits, splits.info.img_size)
    return train, evaluation


__all__ = ["DATASETS", "DataSplits", "DatasetInfo", "DeviceLoader", "ImageSplit", "Loaders",
           "build_loaders", "decoded_splits", "find_splits", "load_splits", "resolve_data_root"]
