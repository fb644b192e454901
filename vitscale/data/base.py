"""What every loader (device-resident, DataLoader workers, DALI) has in common.

A loader yields (images, labels) batches on the training device: images float32, normalised,
(b, 3, S, S); labels int64 (b,) (or soft targets (b, classes) after Mixup/CutMix, mix.py).
It reads this rank's share of the data in the order of sharding.py, and its position in the
epoch can be saved and restored:

    loader.set_epoch(e)                       # start epoch e (0-based) from its first batch
    state = loader.state_dict()               # {"epoch": e, "position": batches already read}
    loader.load_state_dict(state)             # the next iteration starts at that batch
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import sharding


@dataclass
class ImageSplit:
    """A decoded split held in memory (the device-resident pipeline's input)."""

    images: torch.Tensor   # (N, 3, H, W) uint8
    labels: torch.Tensor   # (N,) int64
    classes: list[str]


class ShardedLoader:
    """Order, length and position bookkeeping; subclasses implement __iter__ with `_indices()`."""

    def __init__(self, num_items: int, batch_size: int, *, train: bool, seed: int = 0,
                 rank: int = 0, world_size: int = 1, limit_batches: int | None = None):
        self.num_items = num_items
        self.batch_size = batch_size           # per rank
        self.train = train
        self.seed = seed
        self.rank, self.world_size = rank, world_size
        self.limit_batches = limit_batches
        self.epoch = 0
        self.position = 0                      # batches already read in this epoch

    @property
    def num_samples(self) -> int:
        """Samples this rank reads per epoch (train drops the remainder; eval keeps it)."""
        if self.train:
            return len(self) * self.batch_size
        return len(sharding.eval_order(self.num_items, world_size=self.world_size, rank=self.rank))

    def __len__(self) -> int:
        if self.train:
            batches = sharding.train_steps(self.num_items, self.batch_size, self.world_size)
        else:
            batches = sharding.eval_batches(self.num_items, self.batch_size, self.world_size,
                                            self.rank)
        return min(batches, self.limit_batches) if self.limit_batches else batches

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self.position = epoch, 0

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])

    def _indices(self) -> torch.Tensor:
        """This rank's sample indices for the current epoch, batch after batch."""
        if not self.train:
            return sharding.eval_order(self.num_items, world_size=self.world_size, rank=self.rank)
        return sharding.train_order(self.num_items, seed=self.seed, epoch=self.epoch,
                                    batch=self.batch_size, world_size=self.world_size,
                                    rank=self.rank)

    def _batches(self) -> list[torch.Tensor]:
        """This epoch's batches of indices, all of them (skipped ones included)."""
        order, b = self._indices(), self.batch_size
        return [order[i * b:(i + 1) * b] for i in range(len(self))]


# ---- pipeline stages that need no images ------------------------------------------------------

def unread_images(batch: int, device) -> torch.Tensor:
    """The stand-in for a batch's images on a rank that does not read them (a pipeline stage
    other than the first): an empty (b, 0) tensor. It carries the batch size, which is all
    such a rank needs (the shapes its stages receive), and costs nothing."""
    return torch.empty(batch, 0, device=device)


def is_unread(images: torch.Tensor) -> bool:
    return images.dim() == 2 and images.shape[1] == 0


class LoaderWrapper:
    """The loader protocol passed through to the loader it wraps (`self.loader`), which owns
    epoch, position and order; subclasses change what iterating yields."""

    def __len__(self) -> int:
        return len(self.loader)

    def set_epoch(self, epoch: int) -> None:
        self.loader.set_epoch(epoch)

    def state_dict(self) -> dict:
        return self.loader.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.loader.load_state_dict(state)

    def __getattr__(self, name: str):
        # Only called for names not found on the wrapper (epoch, position, seed, device, ...).
        if name == "loader":  # not set yet (e.g. during unpickling): avoid recursion
            raise AttributeError(name)
        return getattr(self.loader, name)


class LabelsOnly(LoaderWrapper):
    """A loader (base.py protocol) that yields (unread_images(b), labels) in the order and
    from the position of the ShardedLoader it wraps, without reading, decoding or augmenting
    one image: what the last pipeline stage reads in training, and every stage but the first
    in evaluation. The wrapped loader keeps owning epoch and position (state_dict is its)."""

    def __init__(self, loader: ShardedLoader, labels: torch.Tensor, image_size: int):
        self.loader, self.labels = loader, labels
        self.image_size = image_size     # the side of the images not read (CutMix's box)

    def __iter__(self):
        inner = self.loader
        device = getattr(inner, "device", None)
        start, inner.position = inner.position, 0
        for i, idx in enumerate(inner._batches()):
            inner.position = i + 1
            if i < start:      # resumed mid-epoch: these batches were read before
                continue
            yield unread_images(len(idx), device), self.labels[idx].to(device)
        inner.position = 0
