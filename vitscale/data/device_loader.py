"""Device-resident batches: the whole dataset lives on the training device as uint8.

CIFAR-10's 50,000 training images are 150 MB as uint8, so they fit on any GPU (and in RAM on a
CPU). An epoch is then a random permutation and one gather per batch, with crop and flip done
in batches (augment.py). Nothing runs per sample in Python and there are no worker processes.

Order and augmentation depend only on (seed, epoch). With R data-parallel ranks each global
batch of R x b images is the same one that a single process would train on, split into R
disjoint slices of b: so a run gives the same result on 1, 2 or 4 ranks, and a checkpoint can
resume on another world size. `state_dict()` records the position inside the epoch.
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
        self.batch_size = batch_size           # per rank
        self.device = device
        self.train = train
        self.img_size = img_size
        self.crop_padding = crop_padding if train else 0
        self.hflip = hflip and train
        self.seed = seed
        self.rank, self.world_size = rank, world_size
        self.limit_batches = limit_batches
        self.epoch = 0
        self.position = 0                      # batches already read in this epoch
        self.mean = torch.tensor(mean, device=device).view(1, -1, 1, 1) * 255
        self.std = torch.tensor(std, device=device).view(1, -1, 1, 1) * 255

    @property
    def num_samples(self) -> int:
        """Samples this rank reads per epoch (train drops the remainder; eval keeps it)."""
        n = len(self.labels)
        if self.train:
            return len(self) * self.batch_size
        return len(range(self.rank, n, self.world_size))

    def __len__(self) -> int:
        n = len(self.labels)
        if self.train:
            batches = n // (self.batch_size * self.world_size)
        else:
            batches = -(-len(range(self.rank, n, self.world_size)) // self.batch_size)
        return min(batches, self.limit_batches) if self.limit_batches else batches

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self.position = epoch, 0

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])

    def _order(self) -> torch.Tensor:
        n = len(self.labels)
        if not self.train:
            return torch.arange(self.rank, n, self.world_size)
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(n, generator=g)
        b, r = self.batch_size, self.world_size
        steps = n // (b * r)
        # (step, rank, b): rank r reads slice r of every global batch.
        return order[: steps * b * r].view(steps, r, b)[:, self.rank].reshape(-1)

    def __iter__(self):
        order = self._order().to(self.device)
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch * 7919 + 1)
        b, global_batch = self.batch_size, self.batch_size * self.world_size
        mine = slice(self.rank * b, (self.rank + 1) * b)
        start, self.position = self.position, 0
        for i in range(len(self)):
            # Draw for the whole global batch on every rank, also for skipped batches, so
            # that the stream of random numbers does not depend on world size or resumption.
            offsets = augment.draw_crop_offsets(global_batch, self.crop_padding, g) \
                if self.crop_padding else None
            flips = augment.draw_flips(global_batch, g) if self.hflip else None
            if i < start:
                self.position = i + 1
                continue
            idx = order[i * b:(i + 1) * b]
            x = self.images[idx]
            if offsets is not None:
                x = augment.random_crop(x, self.crop_padding, offsets[:, mine][:, :len(idx)])
            if flips is not None:
                x = augment.random_hflip(x, flips[mine][:len(idx)])
            self.position = i + 1
            yield augment.to_float(x, self.mean, self.std, self.img_size), self.labels[idx]
        self.position = 0  # a finished pass: the next one starts from the beginning
