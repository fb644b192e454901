"""`vitscale bench data`: images/s of a vitscale input pipeline beside the plain torchvision one.

The plain alternative is what a user writes first: torchvision.datasets.ImageFolder with the
same augmentations (RandomResizedCrop or padded RandomCrop, flip, AutoAugment or RandAugment
when the config asks for one, ToTensor, Normalize) and a
DataLoader with worker processes. Both deliver normalised float32 batches on the training
device, and nothing else runs (no model): this measures the input pipeline alone.

Each pipeline is read for `epochs` passes, the two in turns pass by pass. vitscale's device
pipeline decodes and caches the dataset before its first pass (on its first ever run); the
number that matters for training is the later passes (reported as "steady"), which is also
what the baseline gets from its warm page cache.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass
class DataBenchRow:
    name: str
    pipeline: str
    images: int
    first_epoch_images_per_s: float
    steady_images_per_s: float


def _one_pass(loader, epoch: int, device: torch.device) -> tuple[int, float]:
    """Images in pass `epoch` of `loader` and the seconds it took."""
    if hasattr(loader, "set_epoch"):
        loader.set_epoch(epoch)
    start, n = time.perf_counter(), 0
    for x, _ in loader:
        n += len(x)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return n, time.perf_counter() - start


def bench_pair(cfg, data: Path, device: torch.device, batch: int, epochs: int,
               workers: int) -> tuple[DataBenchRow, DataBenchRow]:
    """vitscale's pipeline and the torchvision baseline, pass by pass in turns (vitscale's
    pass e, then the baseline's pass e): on a machine that other jobs share, a change in
    load then hits both sides and the ratio stays meaningful."""
    ours, pipeline = vitscale_loader(cfg, data, device, batch)
    plain = torchvision_loader(cfg, data, device, batch, workers)
    seconds = {"ours": [], "plain": []}
    images = {}
    for epoch in range(epochs):
        for key, loader in (("ours", ours), ("plain", plain)):
            images[key], took = _one_pass(loader, epoch, device)
            seconds[key].append(took)
    return (_row("vitscale", pipeline, images["ours"], seconds["ours"]),
            _row(f"torchvision ImageFolder + DataLoader({workers} workers)", "dataloader",
                 images["plain"], seconds["plain"]))


def _row(name: str, pipeline: str, images: int, seconds: list[float]) -> DataBenchRow:
    later = seconds[1:] or seconds
    return DataBenchRow(name, pipeline, images, images / seconds[0],
                        images / (sum(later) / len(later)))


def vitscale_loader(cfg, data: Path, device: torch.device, batch: int):
    """vitscale's training loader for `cfg` and the name of its pipeline."""
    from ..data import build_loaders, find_splits
    from ..plan import make_plan

    splits = find_splits(cfg, data)
    plan = make_plan(cfg, train_size=len(splits.train.labels))
    loaders = build_loaders(cfg, splits, img_size=plan.model.img_size, train_batch=batch,
                            eval_batch=batch, device=device)
    return loaders.train, loaders.pipeline


def torchvision_loader(cfg, data: Path, device: torch.device, batch: int, workers: int):
    """torchvision.datasets.ImageFolder + DataLoader(num_workers=workers), same augmentations."""
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    from ..data.build import augment_spec
    from ..data.datasets import DATASETS
    from ..plan import make_plan

    info = DATASETS[cfg.DATASET]
    plan = make_plan(cfg)
    spec = augment_spec(cfg, info, plan.model.img_size)
    if spec.train_crop == "pad":
        crop = [transforms.RandomCrop(spec.img_size, padding=spec.crop_padding)]
    else:
        crop = [transforms.RandomResizedCrop(spec.img_size, scale=spec.rrc_scale,
                                             ratio=spec.rrc_ratio)]
    flip = [transforms.RandomHorizontalFlip()] if spec.hflip else []
    if spec.autoaugment is not None:
        flip.append(transforms.AutoAugment(transforms.AutoAugmentPolicy(spec.autoaugment)))
    if spec.randaugment is not None:
        flip.append(transforms.RandAugment(*spec.randaugment))
    transform = transforms.Compose(crop + flip + [transforms.ToTensor(),
                                                  transforms.Normalize(info.mean, info.std)])
    dataset = datasets.ImageFolder(str(_train_folder(data)), transform=transform)
    loader = DataLoader(dataset, batch_size=batch, shuffle=True, drop_last=True,
                        num_workers=workers, pin_memory=device.type == "cuda",
                        persistent_workers=workers > 0)
    return _OnDevice(loader, device)


class _OnDevice:
    def __init__(self, loader, device):
        self.loader, self.device = loader, device

    def __iter__(self):
        for x, y in self.loader:
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)


def _train_folder(data: Path) -> Path:
    """The train/ class folders under --data (archives are extracted once, as vitscale does)."""
    from ..data.sources import ARCHIVE_SUFFIXES, extract_once
    from ..errors import DataError

    if (data / "train").is_dir():
        return data / "train"
    for suffix in ARCHIVE_SUFFIXES:
        if (data / f"train{suffix}").is_file():
            return extract_once(data / f"train{suffix}") / "train"
    raise DataError(f"{data}: no train/ folder or train archive for the torchvision baseline")
