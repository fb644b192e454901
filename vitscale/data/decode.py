"""One image file's bytes -> RGB pixels, and what happens when a file is bad.

`decode_rgb` returns a (3, H, W) uint8 tensor. It decodes with TorchCodec (libjpeg-turbo,
~5,000 JPEGs/s per core at 224 px against PIL's ~3,400, and no PIL image to convert) when
that is installed and loads with this torch, and with PIL otherwise; PIL also gets every file
TorchCodec refuses, and is the judge of what counts as a bad file. TorchCodec applies EXIF
orientation, PIL as torchvision's ImageFolder uses it does not: the rare rotated photo differs.

Every mode PIL opens becomes RGB: grayscale (L, as about 1% of Imagenette/ImageNet is),
CMYK (a few ImageNet JPEGs), palette and RGBA (PNGs; palette transparency goes through RGBA
first so PIL does not warn). A truncated or non-image file either stops the run with its name
(`data.on_bad_image = 'error'`, the default: nothing is silently lost) or is skipped and counted
(`'skip'`), as the config chooses.
"""

from __future__ import annotations

import functools
import io
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..errors import DataError

BAD_IMAGE_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError,
                    Image.DecompressionBombError)


def decode_rgb(data: bytes | np.ndarray, name: str) -> torch.Tensor:
    """(3, H, W) uint8 RGB pixels of an image file (or of an (H, W, 3) array); raises BadImage
    for an unreadable file."""
    if isinstance(data, np.ndarray):
        return torch.from_numpy(data).permute(2, 0, 1)
    fast = _torchcodec_decoder()
    if fast is not None:
        try:
            return fast(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode="RGB")
        except (RuntimeError, ValueError):
            pass  # a format or a file it does not take: PIL decides
    from torchvision.transforms.v2 import functional as TF  # on use: ~1.4 s of start-up
    return TF.pil_to_tensor(open_rgb(data, name))


def decoder_name() -> str:
    return "torchcodec" if _torchcodec_decoder() is not None else "pil"


@functools.cache
def _torchcodec_decoder():
    try:
        from torchcodec.decoders import decode_image
    except Exception:  # not installed, or built for another torch: PIL serves
        return None
    return decode_image


def open_rgb(data: bytes | np.ndarray, name: str) -> Image.Image:
    """A decoded, fully loaded RGB image; raises BadImage for an unreadable file."""
    if isinstance(data, np.ndarray):          # already pixels (CIFAR's python batches)
        return Image.fromarray(data)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # e.g. "Corrupt EXIF data": the pixels are fine
            im = Image.open(io.BytesIO(data))
            im.load()                         # decode now: a truncated file fails here
        if im.mode == "P" and "transparency" in im.info:
            im = im.convert("RGBA")
        return im if im.mode == "RGB" else im.convert("RGB")
    except UnidentifiedImageError:
        raise BadImage(name, "not an image format PIL can read") from None
    except BAD_IMAGE_ERRORS as e:   # truncated, corrupt, too large
        raise BadImage(name, f"{type(e).__name__}: {e}") from None


class BadImage(Exception):
    def __init__(self, name: str, reason: str):
        super().__init__(f"{name}: {reason}")
        self.name, self.reason = name, reason


@dataclass
class BadImageLog:
    """Counts the skipped files of one pass; `policy` is data.on_bad_image."""

    policy: str = "error"
    skipped: list[str] = field(default_factory=list)

    def handle(self, bad: BadImage) -> None:
        if self.policy == "error":
            raise DataError(f"{bad.name} is not a readable image ({bad.reason}): remove or "
                            "replace it, or set data = dict(on_bad_image='skip') to skip such "
                            "files") from None
        self.skipped.append(bad.name)

    def report(self, what: str) -> str | None:
        if not self.skipped:
            return None
        shown = ", ".join(self.skipped[:3]) + (", ..." if len(self.skipped) > 3 else "")
        return f"{what}: skipped {len(self.skipped)} unreadable image(s) ({shown})"


def resize_center_crop(image: torch.Tensor, resize: int, crop: int) -> torch.Tensor:
    """torchvision's evaluation transform, Resize(resize) + CenterCrop(crop) (antialiased),
    on a (3, H, W) uint8 tensor."""
    from torchvision.transforms.v2 import functional as TF  # on use: ~1.4 s of start-up
    return TF.center_crop(TF.resize(image, resize, antialias=True), crop)
