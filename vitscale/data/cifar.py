"""CIFAR-10 from any of its common layouts, decoded once into a uint8 tensor.

Accepted layouts of the folder given by --data (or $DATA):
  * ImageFolder:  train/<class>/*.jpg|png and test/<class>/*.jpg|png
  * archives:     train.tar.gz and test.tar.gz holding that same tree (../shared/datasets/cifar10)
  * batches:      cifar-10-batches-py/ (data_batch_1..5, test_batch), or that folder itself

Class indices follow the sorted class-folder names, which for CIFAR-10 is the standard order
(airplane, automobile, bird, cat, deer, dog, frog, horse, ship, truck).
"""

from __future__ import annotations

import io
import pickle
import tarfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from ..errors import DataError
from . import cache

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
BATCH_FILES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck"]
LAYOUT_HELP = ("expected train/ and test/ class folders, train.tar.gz and test.tar.gz, "
               "or cifar-10-batches-py/")


@dataclass
class ImageSplit:
    images: torch.Tensor   # (N, 3, H, W) uint8
    labels: torch.Tensor   # (N,) int64
    classes: list[str]


def load_cifar10(root: Path, split: str, img_size: int = 32) -> ImageSplit:
    """Load one split ('train' or 'test'), from the disk cache when it is there."""
    root = Path(root)
    if not root.exists():
        raise DataError(f"data folder {root} does not exist: pass --data PATH (or set $DATA) "
                        "to a CIFAR-10 copy, e.g. --data ../shared/datasets/cifar10")
    if not root.is_dir():
        raise DataError(f"--data {root} is a file, not a folder: {LAYOUT_HELP}")
    kind, sources = _detect_layout(root, split)
    key = f"cifar10-{split}-{kind}-{cache.fingerprint(sources)}.pt"
    cached = cache.load(key)
    if cached is not None:
        return ImageSplit(cached["images"], cached["labels"], list(cached["classes"]))
    if kind == "batches":
        result = _read_batches(sources, split)
    elif kind == "archive":
        result = _read_archive(sources[0], split, img_size)
    else:
        result = _read_folder(sources[0], split, img_size)
    cache.save(key, {"images": result.images, "labels": result.labels,
                     "classes": result.classes})
    return result


def check_class_sets(train: ImageSplit, test: ImageSplit, root: Path) -> None:
    if train.classes != test.classes:
        only_train = sorted(set(train.classes) - set(test.classes))
        only_test = sorted(set(test.classes) - set(train.classes))
        raise DataError(f"{root}: train and test have different classes (only in train: "
                        f"{only_train}, only in test: {only_test}): make the class folders match")


def _detect_layout(root: Path, split: str) -> tuple[str, list[Path]]:
    if (root / split).is_dir():
        return "folder", [root / split] + sorted(p for p in (root / split).iterdir())
    for suffix in ARCHIVE_SUFFIXES:
        if (root / f"{split}{suffix}").is_file():
            return "archive", [root / f"{split}{suffix}"]
    for candidate in (root, root / "cifar-10-batches-py"):
        files = [candidate / name for name in BATCH_FILES[split]]
        if all(f.is_file() for f in files):
            return "batches", files
    found = sorted(p.name for p in root.iterdir())[:8]
    raise DataError(f"{root} is not a CIFAR-10 folder (no {split} split found): {LAYOUT_HELP}; "
                    f"found {found or 'an empty folder'}")


def _decode(data: bytes, name: str, img_size: int) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as im:
            array = np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise DataError(f"{name}: not a readable image ({e}): remove or replace the file") from None
    if array.shape[:2] != (img_size, img_size):
        raise DataError(f"{name}: image is {array.shape[1]}x{array.shape[0]}, CIFAR-10 images "
                        f"are {img_size}x{img_size}: check that --data points at CIFAR-10")
    return array


def _stack(arrays: list[np.ndarray], labels: list[int], classes: list[str]) -> ImageSplit:
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    return ImageSplit(images, torch.tensor(labels, dtype=torch.int64), classes)


def _read_folder(split_dir: Path, split: str, img_size: int) -> ImageSplit:
    class_dirs = sorted(p for p in split_dir.iterdir() if p.is_dir())
    if not class_dirs:
        raise DataError(f"{split_dir} has no class folders: {LAYOUT_HELP}")
    files = [(f, label) for label, d in enumerate(class_dirs)
             for f in sorted(d.iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
    counts = Counter(label for _, label in files)
    empty = [d.name for label, d in enumerate(class_dirs) if counts[label] == 0]
    if empty:
        raise DataError(f"{split_dir}: class folder(s) {empty} hold no images: "
                        "remove them or add the images")
    arrays = [_decode(f.read_bytes(), str(f), img_size)
              for f, _ in tqdm(files, desc=f"decoding {split} (first run; cached afterwards)",
                               unit="img", leave=False, mininterval=1.0, disable=None)]
    return _stack(arrays, [lb for _, lb in files], [d.name for d in class_dirs])


def _read_archive(archive: Path, split: str, img_size: int) -> ImageSplit:
    items: list[tuple[str, str, np.ndarray]] = []
    try:
        with tarfile.open(archive) as tar, tqdm(desc=f"decoding {archive.name} (first run; "
                                                "cached afterwards)", unit="img", leave=False, disable=None,
                                                mininterval=1.0) as bar:
            for member in tar:
                parts = Path(member.name).parts
                if not member.isfile() or Path(member.name).suffix.lower() not in IMAGE_SUFFIXES:
                    continue
                if len(parts) < 2:
                    raise DataError(f"{archive}: {member.name} is not inside a class folder: "
                                    f"the archive must hold {split}/<class>/<image>")
                data = tar.extractfile(member).read()
                items.append((parts[-2], member.name,
                              _decode(data, f"{archive}:{member.name}", img_size)))
                bar.update()
    except (tarfile.TarError, EOFError, OSError) as e:
        raise DataError(f"{archive}: damaged or unreadable archive ({e}): replace the file") from None
    if not items:
        raise DataError(f"{archive} holds no images: it must hold {split}/<class>/<image>")
    items.sort(key=lambda item: (item[0], item[1]))
    classes = sorted({c for c, _, _ in items})
    index = {c: i for i, c in enumerate(classes)}
    return _stack([a for _, _, a in items], [index[c] for c, _, _ in items], classes)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """CIFAR's python batches are pickles: allow only the numpy types they are made of."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("builtins", "bytes")}

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR batch")
        return super().find_class(module, name)


def _read_batches(files: list[Path], split: str) -> ImageSplit:
    arrays, labels = [], []
    for f in files:
        try:
            with open(f, "rb") as fh:
                batch = _NumpyOnlyUnpickler(fh, encoding="bytes").load()
            data = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
            arrays.append(data)
            labels.extend(int(x) for x in batch[b"labels"])
        except (pickle.UnpicklingError, KeyError, ValueError, EOFError, TypeError) as e:
            raise DataError(f"{f}: not a CIFAR-10 python batch ({e}): "
                            "re-download cifar-10-python.tar.gz") from None
    images = torch.from_numpy(np.concatenate(arrays))
    return ImageSplit(images, torch.tensor(labels, dtype=torch.int64), list(CIFAR10_CLASSES))


def download_cifar10(target: Path) -> Path:
    """Download the python batches into `target`; offline this fails with a clear DataError."""
    from torchvision.datasets.utils import download_and_extract_archive

    url = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    folder = target / "cifar-10-batches-py"
    if all((folder / n).is_file() for names in BATCH_FILES.values() for n in names):
        return folder
    try:
        download_and_extract_archive(url, str(target), md5="c58f30108f718f92721af3b95e74349a")
    except Exception as e:  # URLError, timeouts, SSL errors: all mean "no usable network"
        raise DataError(f"could not download CIFAR-10 ({type(e).__name__}: {e}): point --data "
                        "(or $DATA) at a local copy, e.g. --data ../shared/datasets/cifar10") from None
    return folder
