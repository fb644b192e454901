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
