"""Device-resident batches: the whole dataset lives on the training device as uint8.

CIFAR-10's 50,000 training images are 150 MB as uint8, so they fit on any GPU (and in RAM on a
CPU). An epoch is then a random permutation and one gather per batch, with crop and flip done
in batches (augment.py). Nothing runs per sample in Python and there are no worker processes.

Order depends only on (seed, epoch); each data-parallel rank reads a disjoint shard of the same
permutation.
"""

from __future__ import annotations

import torch

from . import augment


class DeviceLoader:
    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int, *,
                 device: torch.device, mean, std, train: bool, img_size: int | None = None,
                 crop_padding: int = 0, hflip: bool = False, seed: int = 0,
                 rank: int = 0, world_size: int = 1, limit_batches: int | None = None):
        self.images = images.to(device)
        self.labels = labels.to(device)
        self.batch_size = batch_size
        self.device = device
        self.train = train
        self.img_size = img_size
        self.crop_padding = crop_padding if train else 0
        self.hflip = hflip and train
        self.seed = seed
        self.rank, self.world_size = rank, world_size
        self.limit_batches = limit_batches
        self.epoch = 0
        self.mean = torch.tensor(mean, device=device).view(1, -1, 1, 1) * 255
        self.std = torch.tensor(std, device=device).view(1, -1, 1, 1) * 255

    @property
    def num_samples(self) -> int:
        """Samples this rank reads per epoch (train drops the remainder; eval keeps it)."""
        n = len(self.labels)
        return n // self.world_size if self.train else len(range(self.rank, n, self.world_size))

    def __len__(self) -> int:
        n = self.num_samples
        batches = n // self.batch_size if self.train else -(-n // self.batch_size)
        return min(batches, self.limit_batches) if self.limit_batches else batches

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _order(self) -> torch.Tensor:
        n = len(self.labels)
        if not self.train:
            return torch.arange(self.rank, n, self.world_size)
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(n, generator=g)
        per_rank = n // self.world_size
        return order[self.rank * per_rank:(self.rank + 1) * per_rank]

    def __iter__(self):
        order = self._order().to(self.device)
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch * 7919 + self.rank + 1)
        for i in range(len(self)):
            idx = order[i * self.batch_size:(i + 1) * self.batch_size]
            x = self.images[idx]
            if self.crop_padding:
                x = augment.random_crop(x, self.crop_padding, g)
            if self.hflip:
                x = augment.random_hflip(x, g)
            yield augment.to_float(x, self.mean, self.std, self.img_size), self.labels[idx]
