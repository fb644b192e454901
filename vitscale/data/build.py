"""From a config to the loaders a run reads: find the splits, pick a pipeline, build it.

    splits = find_splits(cfg, root)          # scan only: a bad --data fails here, fast
    loaders = build_loaders(cfg, splits, ...)  # decode (cached), choose and build the pipeline

Pipelines (data.pipeline, docs/data.md):
  device      the split decoded once into uint8 on the training device; crop, resized crop,
              flips, AutoAugment/RandAugment (policy.py) and Mixup/CutMix on whole batches
              there (device_loader.py)
  dataloader  worker processes decode and augment per image with torchvision.transforms.v2,
              including RandAugment and AutoAugment (worker_loader.py)
  dali        NVIDIA DALI decodes and augments, on the GPU when there is one (dali_loader.py)
  auto        device when the decoded split fits in data.memory_fraction of the device's
              memory; dataloader otherwise
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import ConfigError, DataError
from .base import ImageSplit
from .cifar import load_cifar_batches
from .compact import decode_split
from .datasets import DatasetInfo, dataset_info, folder_info
from .device_loader import DeviceLoader
from .sources import ArraySource, EncodedSource, check_class_sets, extract_once, scan_folder
from .splits import open_split
from .transforms import AugmentSpec
from .validation import TEST_SALT, carve_validation, check_holdout_size, stratified_holdout

Split = EncodedSource | ImageSplit


@dataclass
class DataSplits:
    """What --data holds: train (before any validation carve) and the evaluated split."""

    info: DatasetInfo
    root: Path
    train: Split
    evaluation: Split

    @property
    def classes(self) -> list[str]:
        return self.train.classes


@dataclass
class Loaders:
    train: object | None
    evaluation: object
    val: object | None
    classes: list[str]
    pipeline: str
    description: str


def find_splits(cfg, root: Path | None) -> DataSplits:
    info = dataset_info(cfg)
    if info.kind == "synthetic":
        return DataSplits(info, Path("."), *_synthetic(cfg, info))
    root = Path(root)
    if info.kind == "cifar":
        train = load_cifar_batches(root, "train", info.name) if root.is_dir() else None
        if train is not None:
            return DataSplits(info, root, train, load_cifar_batches(root, "test", info.name))
    if info.kind == "pool":
        train, evaluation = _caltech(cfg, root)
    elif info.name == "folder":
        train, evaluation = _folder(cfg, root)
        info = folder_info(len(train.classes), info.img_size, len(train))
    else:
        train = open_split(root, "train", info.name)
        evaluation = open_split(root, info.eval_dirs, info.name)
    check_class_sets(train.classes, evaluation.classes, root, info.eval_dirs[0])
    if info.name == "folder" and cfg.NUM_CLASSES not in (None, len(train.classes)):
        raise DataError(f"{root}: found {len(train.classes)} classes, NUM_CLASSES is "
                        f"{cfg.NUM_CLASSES}: set NUM_CLASSES = {len(train.classes)} or check --data")
    if len(train.classes) != info.num_classes:
        raise DataError(f"{root}: found {len(train.classes)} classes, {info.name} has "
                        f"{info.num_classes}: check that --data points at {info.name}")
    return DataSplits(info, root, train, evaluation)


def augment_spec(cfg, info: DatasetInfo, img_size: int) -> AugmentSpec:
    return AugmentSpec(
        img_size=img_size, train_crop=cfg.TRAIN_CROP or info.train_crop,
        crop_padding=cfg.CROP_PADDING, hflip=cfg.HFLIP, rrc_scale=cfg.RRC_SCALE,
        rrc_ratio=cfg.RRC_RATIO, randaugment=cfg.RANDAUGMENT, autoaugment=cfg.AUTOAUGMENT,
        random_erasing=cfg.RANDOM_ERASING, random_erasing_value=cfg.RANDOM_ERASING_VALUE,
        eval_crop_pct=cfg.EVAL_CROP_PCT or info.eval_crop_pct)


def build_loaders(cfg, splits: DataSplits, *, img_size: int, train_batch: int, eval_batch: int,
                  device: torch.device, rank: int = 0, world_size: int = 1,
                  with_train: bool = True, num_classes: int | None = None,
                  eval_rank: int | None = None, eval_world_size: int | None = None) -> Loaders:
    """The train (unless with_train=False), evaluation and validation loaders of this rank.
    Evaluation may be sharded differently (`eval_rank` of `eval_world_size`; default: as
    training): the tensor grid modes split training batches over more ranks than evaluation."""
    info = splits.info
    spec = augment_spec(cfg, info, img_size)
    train, validation = _carve(cfg, splits.train)
    pipeline = choose_pipeline(cfg, info, spec, train, splits.evaluation, device)
    common = dict(device=device, mean=info.mean, std=info.std, seed=cfg.SEED, rank=rank,
                  world_size=world_size)
    train_kw = dict(train=True, limit_batches=cfg.LIMIT_TRAIN_BATCHES, **common)
    eval_kw = dict(train=False, limit_batches=cfg.LIMIT_EVAL_BATCHES,
                   **{**common, "rank": rank if eval_rank is None else eval_rank,
                      "world_size": world_size if eval_world_size is None else eval_world_size})
    if pipeline == "device":
        train_split, eval_split, val_split = _decode_for_device(
            cfg, info, spec, train if with_train else None, splits.evaluation, validation)
        make = lambda s: DeviceLoader(s.images, s.labels, eval_batch,  # noqa: E731
                                      img_size=img_size, **eval_kw)
        train_loader = DeviceLoader(
            train_split.images, train_split.labels, train_batch, img_size=img_size,
            train_crop=spec.train_crop, crop_padding=spec.crop_padding, hflip=spec.hflip,
            rrc_scale=spec.rrc_scale, rrc_ratio=spec.rrc_ratio, autoaugment=spec.autoaugment,
            randaugment=spec.randaugment, random_erasing=spec.random_erasing,
            random_erasing_value=spec.random_erasing_value, **train_kw) \
            if with_train else None
    else:
        make_one = _worker_loader if pipeline == "dataloader" else _dali_loader
        eval_split, val_split = splits.evaluation, validation
        make = lambda s: make_one(cfg, _encoded(s), eval_batch, spec, **eval_kw)  # noqa: E731
        train_loader = make_one(cfg, _encoded(train), train_batch, spec, **train_kw) \
            if with_train else None
    eval_loader = make(eval_split)
    val_loader = make(val_split) if val_split is not None else None
    if train_loader is not None and _mixing(cfg):
        from .mix import MixConfig, MixingLoader
        train_loader = MixingLoader(train_loader, MixConfig(
            mixup_alpha=cfg.MIXUP_ALPHA, cutmix_alpha=cfg.CUTMIX_ALPHA, prob=cfg.MIX_PROB,
            switch_prob=cfg.MIX_SWITCH_PROB, label_smoothing=cfg.LABEL_SMOOTHING,
            off_epoch=cfg.MIXUP_OFF_EPOCH, num_classes=num_classes or info.num_classes))
    description = (f"data: {info.name} from {splits.root}, {len(train.labels)} train / "
                   f"{len(splits.evaluation.labels)} {info.eval_dirs[0]}"
                   + (f" / {len(validation.labels)} val" if validation is not None else "")
                   + f" images; pipeline {pipeline}")
    return Loaders(train_loader, eval_loader, val_loader, splits.classes, pipeline, description)


def decoded_splits(cfg, splits: DataSplits, img_size: int, with_train: bool = True
                   ) -> tuple[ImageSplit | None, ImageSplit, ImageSplit | None]:
    """The device pipeline's inputs, decoded (from the cache when it is there): train (less
    VAL_SPLIT; None unless with_train), the evaluation split, and the carved validation split
    (or None)."""
    train, validation = _carve(cfg, splits.train)
    return _decode_for_device(cfg, splits.info, augment_spec(cfg, splits.info, img_size),
                              train if with_train else None, splits.evaluation, validation)


def _decode_for_device(cfg, info: DatasetInfo, spec: AugmentSpec, train: Split | None,
                       evaluation: Split, validation: Split | None):
    store = _store_size(cfg, info, spec)
    eval_sizes = _eval_sizes(info, spec)
    return (_decoded(cfg, train, store, store, "training images") if train is not None else None,
            _decoded(cfg, evaluation, *eval_sizes, "evaluation images"),
            _decoded(cfg, validation, *eval_sizes, "validation images")
            if validation is not None else None)


def choose_pipeline(cfg, info: DatasetInfo, spec: AugmentSpec, train: Split, evaluation: Split,
                    device: torch.device) -> str:
    wanted = cfg.data.pipeline
    if wanted in ("dali", "dataloader"):
        return wanted
    store = _store_size(cfg, info, spec)
    eval_side = _eval_sizes(info, spec)[1]
    # A padded crop with flips keeps mirror images beside the training images (CropStore).
    mirrored = spec.train_crop != "rrc" and spec.hflip and store == spec.img_size and \
        spec.autoaugment is None and spec.randaugment is None
    need = 3 * ((1 + mirrored) * len(train.labels) * store ** 2
                + len(evaluation.labels) * eval_side ** 2)
    budget = cfg.data.memory_fraction * _memory_bytes(device)
    if need <= budget:
        return "device"
    if wanted == "device":
        raise ConfigError(f"data.pipeline='device' needs {need / 2**30:.1f} GB for the decoded "
                          f"images, more than data.memory_fraction={cfg.data.memory_fraction} of "
                          f"{device.type} memory ({budget / 2**30:.1f} GB): use "
                          "data.pipeline='dataloader' or raise data.memory_fraction")
    return "dataloader"


def _mixing(cfg) -> bool:
    return cfg.MIXUP_ALPHA > 0 or cfg.CUTMIX_ALPHA > 0


def _memory_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _store_size(cfg, info: DatasetInfo, spec: AugmentSpec) -> int:
    if info.kind == "cifar":
        return info.img_size  # stored at 32 px; resized on the device when IMG_SIZE differs
    return cfg.data.store_size or spec.img_size


def _eval_sizes(info: DatasetInfo, spec: AugmentSpec) -> tuple[int, int]:
    """(resize, crop) of the stored evaluation images."""
    if info.kind == "cifar":
        return info.img_size, info.img_size
    return spec.eval_resize, spec.img_size


def _carve(cfg, train: Split) -> tuple[Split, Split | None]:
    """The validation split (VAL_SPLIT images of train, stratified, from SEED)."""
    if not cfg.VAL_SPLIT:
        return train, None
    if isinstance(train, ImageSplit):
        return carve_validation(train, cfg.VAL_SPLIT, cfg.SEED)
    check_holdout_size(cfg.VAL_SPLIT, len(train))
    keep, held = stratified_holdout(train.labels, len(train.classes), cfg.VAL_SPLIT, cfg.SEED)
    return train.subset(keep), train.subset(held)


def _decoded(cfg, split: Split, resize: int, crop: int, what: str) -> ImageSplit:
    if isinstance(split, ImageSplit):
        return split
    return decode_split(split, resize, crop, on_bad_image=cfg.data.on_bad_image,
                        num_workers=cfg.data.num_workers, what=what)


def _encoded(split: Split) -> EncodedSource:
    return ArraySource(split) if isinstance(split, ImageSplit) else split


def _worker_loader(cfg, source, batch, spec, *, train, **kwargs):
    from .worker_loader import WorkerLoader
    return WorkerLoader(source, batch, train=train, spec=spec, num_workers=cfg.data.num_workers,
                        on_bad_image=cfg.data.on_bad_image, **kwargs)


def _dali_loader(cfg, source, batch, spec, *, train, **kwargs):
    from .dali_loader import DaliLoader
    return DaliLoader(source, batch, train=train, img_size=spec.img_size,
                      rrc_scale=spec.rrc_scale, rrc_ratio=spec.rrc_ratio, hflip=spec.hflip,
                      eval_crop_pct=spec.eval_crop_pct, dali_device=cfg.data.dali_device,
                      num_threads=cfg.data.num_workers or min(8, os.cpu_count() or 1), **kwargs)


def _caltech(cfg, root: Path) -> tuple[EncodedSource, EncodedSource]:
    """Caltech-101's one pool of images, split into train and test by SEED, per class."""
    pool = _caltech_pool(root)
    size = round(cfg.data.test_fraction * len(pool))
    check_holdout_size(size, len(pool), "data.test_fraction x images")
    keep, held = stratified_holdout(pool.labels, len(pool.classes), size, cfg.SEED, TEST_SALT)
    return pool.subset(keep), pool.subset(held)


def _folder(cfg, root: Path) -> tuple[EncodedSource, EncodedSource]:
    """DATASET='folder': train/ beside val/ (or validation/, test/), or one folder of class
    folders from which data.test_fraction of each class is held out by SEED (as Caltech-101)."""
    from .sources import ARCHIVE_SUFFIXES
    if (root / "train").is_dir() or any((root / f"train{s}").is_file() for s in ARCHIVE_SUFFIXES):
        info = folder_info(None, None)
        return open_split(root, "train", "your data"), open_split(root, info.eval_dirs, "your data")
    if not root.is_dir():
        open_split(root, "train", "your data")  # raises the one-line error for a missing folder
    pool = scan_folder(root)
    size = round(cfg.data.test_fraction * len(pool))
    check_holdout_size(size, len(pool), "data.test_fraction x images")
    keep, held = stratified_holdout(pool.labels, len(pool.classes), size, cfg.SEED, TEST_SALT)
    return pool.subset(keep), pool.subset(held)


def _caltech_pool(root: Path) -> EncodedSource:
    background = ("BACKGROUND_Google",)  # clutter, not a class (torchvision leaves it out too)
    for folder in (root / "101_ObjectCategories", root / "caltech101" / "101_ObjectCategories"):
        if folder.is_dir():
            return scan_folder(folder, exclude=background)
    for name in ("101_ObjectCategories.tar.gz", "101_ObjectCategories.tgz"):
        if (root / name).is_file():
            return scan_folder(extract_once(root / name) / "101_ObjectCategories",
                               shown_as=root / name, exclude=background)
    if root.is_dir() and (root / "accordion").is_dir():
        return scan_folder(root, exclude=background)
    raise DataError(f"{root}: no Caltech-101 images (looked for 101_ObjectCategories/ and "
                    "101_ObjectCategories.tar.gz): point --data at the folder that holds them")


def _synthetic(cfg, info: DatasetInfo) -> tuple[ImageSplit, ImageSplit]:
    """Random images and labels from SEED, for benchmarks only (nothing to learn)."""
    g = torch.Generator().manual_seed(cfg.SEED)
    size = cfg.IMG_SIZE or info.img_size
    classes = [f"class_{i}" for i in range(info.num_classes)]

    def make(n: int) -> ImageSplit:
        return ImageSplit(torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8,
                                        generator=g),
                          torch.randint(0, info.num_classes, (n,), generator=g), classes)
    return make(cfg.data.synthetic_size), make(info.eval_size)
