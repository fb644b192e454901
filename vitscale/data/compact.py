"""Decode a split once into one uint8 tensor for the device-resident pipeline, cached on disk.

Training images are stored as square `store_size` images (shorter side resized to it, then the
central square), the input of the random resized crop on the device. This drops the borders of
non-square photographs, the price of a uniform tensor; for Imagenette (224 x 224 here) and
CIFAR nothing is lost. Evaluation images are stored already transformed as torchvision's
evaluation pipeline does (resize to img_size / crop_pct, centre crop img_size), so evaluation
is a plain read.

Decoding runs in worker processes (torch DataLoader) with a progress bar, once: the tensor
goes to $VITSCALE_CACHE under a key made of the source's fingerprint and the sizes, written
atomically (cache.py).
"""

from __future__ import annotations

import logging
import os
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from . import cache
from .base import ImageSplit
from .decode import BadImage, BadImageLog, decode_rgb, decoder_name, resize_center_crop
from .sources import EncodedSource

log = logging.getLogger(__name__)


class _Decoded(Dataset):
    def __init__(self, source: EncodedSource, resize: int, crop: int):
        self.source, self.resize, self.crop = source, resize, crop

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i: int):
        name = self.source.names[i]
        try:
            image = decode_rgb(self.source.read(i), name)
        except BadImage as bad:
            return i, None, bad.reason
        return i, resize_center_crop(image, self.resize, self.crop).permute(1, 2, 0), None


def cache_key(source: EncodedSource, resize: int, crop: int, on_bad_image: str) -> str:
    # The decoder is part of the key: TorchCodec and PIL may differ (EXIF orientation).
    return (f"compact-v2-{decoder_name()}-{source.fingerprint()}-{resize}-{crop}-"
            f"{on_bad_image}.pt")


def decode_split(source: EncodedSource, resize: int, crop: int, *, on_bad_image: str = "error",
                 num_workers: int | None = None, what: str = "images") -> ImageSplit:
    """Every image of `source` as (N, 3, crop, crop) uint8, from the cache when it is there."""
    key = cache_key(source, resize, crop, on_bad_image)
    cached = cache.load(key)
    if cached is None:
        with cache.building(key, f"the decoded {what}"):
            cached = cache.load(key)  # built by another process while this one waited
            if cached is None:
                return _decode(source, resize, crop, key, on_bad_image, num_workers, what)
    return ImageSplit(cached["images"], cached["labels"], list(cached["classes"]))


def _decode(source: EncodedSource, resize: int, crop: int, key: str, on_bad_image: str,
            num_workers: int | None, what: str) -> ImageSplit:
    workers = num_workers if num_workers is not None else min(8, os.cpu_count() or 1)
    loader = DataLoader(_Decoded(source, resize, crop), batch_size=64, num_workers=workers,
                        collate_fn=lambda items: items)
    images = torch.empty((len(source), crop, crop, 3), dtype=torch.uint8)   # channels last
    keep = torch.ones(len(source), dtype=torch.bool)
    bad = BadImageLog(on_bad_image)
    with tqdm(total=len(source), desc=f"decoding {what} (first run; cached afterwards)",
              unit="img", leave=False, disable=None, mininterval=1.0) as bar:
        for batch in loader:
            for i, array, reason in batch:
                if array is None:
                    bad.handle(BadImage(source.names[i], reason))
                    keep[i] = False
                else:
                    images[i] = array
            bar.update(len(batch))
    if (message := bad.report(what)) is not None:
        log.warning(message)
    kept = torch.nonzero(keep).flatten()
    kept_images = images if keep.all() else images[keep]
    result = ImageSplit(kept_images.permute(0, 3, 1, 2),
                        source.labels[kept], list(source.classes))
    cache.save(key, {"images": result.images, "labels": result.labels,
                     "classes": result.classes})
    return result
