"""One image file's bytes -> an RGB uint8 array, and what happens when a file is bad.

Every mode PIL opens becomes RGB: grayscale (L, as about 1% of Imagenette/ImageNet is),
CMYK (a few ImageNet JPEGs), palette and RGBA (PNGs; palette transparency goes through RGBA
first so PIL does not warn). A truncated or non-image file either stops the run with its name
(`data.on_bad_image = 'error'`, the default: nothing is silently lost) or is skipped and counted
(`'skip'`), as the config chooses.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, UnidentifiedImageError
from torchvision.transforms.v2 import functional as TF

from ..errors import DataError

BAD_IMAGE_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError,
                    Image.DecompressionBombError)


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


def resize_center_crop(im: Image.Image, resize: int, crop: int) -> np.ndarray:
    """torchvision's evaluation transform, Resize(resize) + CenterCrop(crop), as (H, W, 3) uint8."""
    im = TF.center_crop(TF.resize(im, resize), crop)
    return np.asarray(im)
