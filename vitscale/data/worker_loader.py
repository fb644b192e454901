"""The DataLoader pipeline: worker processes decode and augment one image at a time.

For data that does not fit in memory (ImageNet-1k: 1.28M JPEGs) or augmentations the device
pipeline does not batch (RandAugment, AutoAugment). Workers decode, apply the
torchvision.transforms.v2 pipeline (transforms.py) and hand batches to the main process: on a
GPU uint8 batches, copied from pinned memory and normalised there; on a CPU batches the
workers already normalised.

Workers decode with TorchCodec when it is installed, else PIL (decode.py), and augment the
uint8 tensors with torch's antialiased kernels: about twice the images/s of PIL-based
transforms per core.

Reproducibility: the batches come from sharding.py like every pipeline's, and each sample's
random augmentation is seeded by (seed, epoch, sample index), not by the worker that happens
to load it: the same image gets the same crop whatever the number of workers or ranks, and
after a resume.

Bad images are handled by decode.BadImageLog in the main process: the run stops naming the
file, or (on_bad_image='skip') the image is left out of its batch and counted.
"""

from __future__ import annotations

import logging
import os

import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from .base import ShardedLoader
from .augment import normalization, to_float
from .decode import BadImage, BadImageLog, decode_rgb
from .sources import EncodedSource
from .transforms import AugmentSpec, erasing_transform, eval_transform, train_transform

log = logging.getLogger(__name__)


class _Transformed(Dataset):
    """Item (index, epoch) -> (index, image, None), or (index, None, reason) for an unreadable
    file. The image is uint8, or normalised float32 when `normalise` = (scale, shift), then
    randomly erased by `erase` (a v2.RandomErasing) if given."""

    def __init__(self, source: EncodedSource, transform, seed: int, normalise=None,
                 erase=None):
        self.source, self.transform, self.seed = source, transform, seed
        self.normalise, self.erase = normalise, erase

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, item: tuple[int, int]):
        i, epoch = item
        try:
            image = decode_rgb(self.source.read(i), self.source.names[i])
        except BadImage as bad:
            return i, None, bad.reason
        # v2 transforms draw from torch's global CPU generator: seed it per sample. (Only the
        # CPU one: torch.manual_seed would also queue a CUDA seed, recording a stack trace
        # each time, ~0.8 ms per image.)
        torch.default_generator.manual_seed((self.seed * 1_000_003 + epoch) * 10_000_019 + i)
        x = self.transform(image)
        if self.normalise is not None:
            x = to_float(x[None], *self.normalise)[0]
        if self.erase is not None:
            x = self.erase(x)
        return i, x, None


class _EpochBatches:
    """The batch sampler: this rank's batches of the loader's current epoch, from its position,
    read in the main process at the start of every pass.

    Workers live for one pass (forking them costs well under a second): a pass that ends early
    (an error, a resume, TensorBoard's first batch) takes its workers with it at once, instead
    of leaving persistent ones to be joined at exit.
    """

    def __init__(self, loader: "WorkerLoader"):
        self.loader = loader

    def __iter__(self):
        loader = self.loader
        for idx in loader._batches()[loader.position:]:
            yield [(i, loader.epoch) for i in idx.tolist()]

    def __len__(self) -> int:
        return len(self.loader) - self.loader.position


class WorkerLoader(ShardedLoader):
    def __init__(self, source: EncodedSource, batch_size: int, *, device: torch.device, mean, std,
                 train: bool, spec: AugmentSpec, seed: int = 0, rank: int = 0,
                 world_size: int = 1, limit_batches: int | None = None,
                 num_workers: int | None = None, on_bad_image: str = "error",
                 prefetch_factor: int = 2):
        super().__init__(len(source), batch_size, train=train, seed=seed, rank=rank,
                         world_size=world_size, limit_batches=limit_batches)
        self.source = source
        self.labels = source.labels
        self.device = device
        self.spec = spec
        self.bad = BadImageLog(on_bad_image)
        self.scale, self.shift = normalization(mean, std, device)
        workers = num_workers if num_workers is not None else min(8, os.cpu_count() or 1)
        transform = train_transform(spec) if train else eval_transform(spec)
        erase = erasing_transform(spec) if train else None
        # Where to normalise: on a GPU after the copy (4x fewer bytes cross PCIe, and the GPU
        # does it for free); on a CPU in the workers, in parallel, while each image is still
        # in cache, instead of in the training process.
        # Random Erasing follows normalisation (its zero fill is the mean colour), so with it
        # the workers always normalise.
        self.normalise_in_workers = (device.type == "cpu" and workers > 0) or erase is not None
        normalise = (self.scale, self.shift) if self.normalise_in_workers else None
        self._loader = DataLoader(
            _Transformed(source, transform, seed, normalise, erase),
            batch_sampler=_EpochBatches(self),
            num_workers=workers, collate_fn=_collate, pin_memory=device.type == "cuda",
            prefetch_factor=prefetch_factor if workers else None)

    def __iter__(self):
        start = self.position
        for k, (indices, images, skipped) in enumerate(self._loader):
            for i, reason in skipped:
                self.bad.handle(BadImage(self.source.names[i], reason))
            self.position = start + k + 1
            if len(indices):
                labels = self.labels[indices].to(self.device, non_blocking=True)
                if not self.normalise_in_workers:
                    images = to_float(images.to(self.device, non_blocking=True), self.scale,
                                      self.shift)
                yield images, labels
        if (message := self.bad.report("training data" if self.train else "evaluation data")):
            log.warning(message)
            self.bad.skipped.clear()
        self.position = 0


def _collate(items):
    good = [(i, x) for i, x, _ in items if x is not None]
    skipped = [(i, reason) for i, x, reason in items if x is None]
    indices = torch.tensor([i for i, _ in good], dtype=torch.int64)
    # default_collate stacks straight into shared memory inside a worker, saving the copy
    # that sending an ordinary tensor to the training process would make.
    images = default_collate([x for _, x in good]) if good else torch.empty(0)
    return indices, images, skipped
