"""Device-resident batches: the whole dataset lives on the training device as uint8.

CIFAR-10's 50,000 training images are 150 MB as uint8 and Imagenette's 9,469 are 1.4 GB at
224 px, so they fit on any GPU (and in RAM on a CPU). An epoch is then a random permutation
and one gather per batch, with the augmentation done on the batch (augment.py): random crop
with padding (CIFAR) or random resized crop (ImageNet-style), flips, then AutoAugment or
RandAugment when asked for (policy.py), in the DataLoader path's order (transforms.py). No worker processes,
no decoding after the first run (the decoded tensor is cached on disk, compact.py).

Order and augmentation depend only on (seed, epoch) (sharding.py): the random draws are made
for the whole global batch on every rank, also for skipped batches, so a sample gets the same
augmentation on 1, 2 or 4 ranks and after a resume in the middle of an epoch.
"""

from __future__ import annotations

import torch

from . import augment, sharding
from .base import ShardedLoader
from .erasing import ERASE_STREAM, RandomErasing
from .policy import build_policy


class OutputBuffers:
    """Memory for the float batches a loader yields, reused once nothing else refers to it.

    A fresh 224 px batch of 256 (154 MB) costs ~37,000 page faults on a CPU: glibc maps blocks
    over 32 MB anew for each allocation and the kernel zeroes every page, about as long as
    normalising into them. Reuse is safe only when the consumer no longer holds the batch (the
    training step may still hold the previous one, autograd may have saved it, a caller may
    keep a list of batches), so a buffer is handed out again only when no other tensor shares
    its storage: the storage's use count, the liveness check of torch's CUDA-graph trees
    (torch/_inductor/cudagraph_trees.py). Otherwise a new buffer is allocated, as before. On
    CPU only: CUDA's caching allocator already makes allocation cheap and orders reuse by
    stream, which this check does not. Every element of a buffer is overwritten."""

    def __init__(self, keep: int = 3):
        self.keep, self.buffers = keep, []   # (buffer, its use count while unshared)

    def get(self, shape: tuple[int, ...], device: torch.device) -> torch.Tensor | None:
        if device.type != "cpu" or _USE_COUNT is None:
            return None
        for buffer, unshared in self.buffers:
            if buffer.shape == shape and _use_count(buffer) == unshared:
                return buffer
        buffer = torch.empty(shape, dtype=torch.float32, device=device)
        self.buffers = [(buffer, _use_count(buffer))] + self.buffers[:self.keep - 1]
        return buffer


_USE_COUNT = getattr(torch._C, "_storage_Use_Count", None)  # private: without it, no reuse


def _use_count(t: torch.Tensor) -> int:
    return _USE_COUNT(t.untyped_storage()._cdata)


class DeviceLoader(ShardedLoader):
    """`train_crop`: 'pad' (random crop with `crop_padding`), 'rrc' (random resized crop with
    `rrc_scale`/`rrc_ratio`) or 'none'. Evaluation images are used as stored (compact.py
    stores them already resized and centre-cropped) and resized to `img_size` if they differ.
    `autoaugment` ('cifar10' | 'imagenet' | 'svhn') or `randaugment` ((num_ops, magnitude))
    run on the cropped uint8 batch, at the stored size (CIFAR: 32 px) before any resize.
    `random_erasing` (probability; `random_erasing_value` 'zero' or 'random') erases one box
    per image of the normalised batch (erasing.py)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int, *,
                 device: torch.device, mean, std, train: bool, img_size: int | None = None,
                 train_crop: str = "pad", crop_padding: int = 0, hflip: bool = False,
                 rrc_scale: tuple[float, float] = (0.08, 1.0),
                 rrc_ratio: tuple[float, float] = (3 / 4, 4 / 3),
                 autoaugment: str | None = None, randaugment: tuple[int, int] | None = None,
                 random_erasing: float = 0.0, random_erasing_value: str = "zero",
                 seed: int = 0,
                 rank: int = 0, world_size: int = 1, limit_batches: int | None = None):
        super().__init__(len(labels), batch_size, train=train, seed=seed, rank=rank,
                         world_size=world_size, limit_batches=limit_batches)
        self.labels = labels.to(device)
        self.device = device
        self.img_size = img_size or images.shape[-1]
        self.train_crop = train_crop if train else "none"
        self.crop_padding = crop_padding if train else 0
        self.hflip = hflip and train
        policy = train and (autoaugment is not None or randaugment is not None)
        if self.train_crop in ("pad", "none") and not policy and \
                self.img_size == images.shape[-1] == images.shape[-2]:
            # Crop, flip and normalise as one row gather and one multiply-add (CropStore).
            self.store = augment.CropStore(images.to(device), self.crop_padding, self.hflip)
            self.images = self.store.images
        else:
            self.store = None
            # Channels-last: each image's pixels are contiguous, the layout the resize kernels want.
            self.images = images.to(device).contiguous(memory_format=torch.channels_last)
        self.outputs = OutputBuffers()
        self.rrc_scale, self.rrc_ratio = rrc_scale, rrc_ratio
        self.scale, self.shift = augment.normalization(mean, std, device)
        side = self.img_size if self.train_crop == "rrc" else images.shape[-1]
        self.policy = build_policy(autoaugment=autoaugment, randaugment=randaugment,
                                   height=side, width=side) if train else None
        self.erasing = RandomErasing(random_erasing, random_erasing_value) \
            if train and random_erasing > 0 else None

    def _draw(self, n: int, g: torch.Generator) -> dict:
        """This global batch's random draws (crop boxes or offsets, flips), for all n images."""
        draws = {}
        if self.train_crop == "pad" and self.crop_padding:
            draws["offsets"] = augment.draw_crop_offsets(n, self.crop_padding, g)
        if self.train_crop == "rrc":
            _, _, h, w = self.images.shape
            draws["boxes"] = augment.draw_resized_crops(n, h, w, self.rrc_scale, self.rrc_ratio, g)
        if self.hflip:
            draws["flips"] = augment.draw_flips(n, g)
        if self.policy is not None:
            draws["policy"] = self.policy.draw(n, g)
        return draws

    def _draw_batch(self, n: int, g: torch.Generator) -> dict:
        """_draw, on a CPU in a worker thread that runs torch ops on one thread: the random
        resized crop's draws are ~20 ops on 10 tries per image, and the ones MKL computes
        (sqrt, exp, round) are split over threads from 2,048 numbers (ATen's grain for them),
        which costs a fork and a join each: 8 ms each on a shared 2-core CPU, against 5 µs."""
        workers = augment.cpu_workers() if self.device.type == "cpu" else None
        return workers.submit(self._draw, n, g).result() if workers else self._draw(n, g)

    def _augment(self, idx: torch.Tensor, draws: dict, mine: slice) -> torch.Tensor:
        """This rank's batch `idx`, augmented with its slice of the draws, as normalised float."""
        n = len(idx)
        flips = draws["flips"][mine][:n] if "flips" in draws else None
        policy = draws["policy"][mine][:n] if "policy" in draws else None
        out_shape = (n, self.img_size, self.img_size, self.images.shape[1])
        if self.store is not None:
            offsets = draws["offsets"][:, mine][:, :n] if "offsets" in draws else None
            return self.store.crops(idx, offsets, flips, self.scale, self.shift,
                                    out=self.outputs.get(out_shape, self.device))
        if "boxes" in draws:
            if policy is None:  # crop, flip and normalise in one pass per image
                return augment.resized_crops(self.images, idx, draws["boxes"][mine][:n],
                                             self.img_size, flips, self.scale, self.shift,
                                             out=self.outputs.get(out_shape, self.device))
            x = augment.resized_crops(self.images, idx, draws["boxes"][mine][:n],
                                      self.img_size, flips)
        else:
            x = self.images[idx]
            if "offsets" in draws:
                x = augment.random_crop(x, self.crop_padding, draws["offsets"][:, mine][:, :n])
            if flips is not None:
                x = augment.random_hflip(x, flips)
        if policy is not None:
            x = self.policy.apply(x, policy)
        return augment.to_float(x, self.scale, self.shift, self.img_size)

    def __iter__(self):
        batches = [b.to(self.device) for b in self._batches()]
        g = sharding.epoch_generator(self.seed, self.epoch, stream=1)
        # Random Erasing draws from its own stream: turning it on changes no crop or policy.
        g_erase = sharding.epoch_generator(self.seed, self.epoch, stream=ERASE_STREAM)
        b, global_batch = self.batch_size, self.batch_size * self.world_size
        mine = slice(self.rank * b, (self.rank + 1) * b)
        start, self.position = self.position, 0
        for i, idx in enumerate(batches):
            draws = self._draw_batch(global_batch, g) if self.train else {}
            if self.erasing is not None:
                side = self.img_size
                draws["erase"] = self.erasing.draw(global_batch, side, side, g_erase)
            if i < start:                      # resumed mid-epoch: replay the draws only
                self.position = i + 1
                continue
            x = self._augment(idx, draws, mine)
            if self.erasing is not None:       # after normalisation, as timm and torchvision
                x = self.erasing.apply(x, draws["erase"], mine, self.rank)
            self.position = i + 1
            yield x, self.labels[idx]
        self.position = 0  # a finished pass: the next one starts from the beginning
