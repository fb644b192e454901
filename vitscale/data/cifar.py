"""CIFAR's python batches, and the CIFAR-10 download.

CIFAR-10 and CIFAR-100 also come as ImageFolder trees or archives of them (train/<class>/*.jpg,
test/<class>/*.jpg; ../shared/datasets/cifar10): sources.py reads those like any other folder.
Here: cifar-10-batches-py/ (data_batch_1..5, test_batch) and cifar-100-python/ (train, test,
meta; the 100 fine labels), given as --data or as a folder inside it. Both are pickles: they
are read with an unpickler that admits only the numpy types they are made of.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from . import cache
from .base import ImageSplit

BATCH_FILES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
BATCH_FILES_100 = {"train": ["train"], "test": ["test"]}
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck"]


def load_cifar_batches(root: Path, split: str, dataset: str = "cifar10") -> ImageSplit | None:
    """One split from CIFAR's python batches under `root`, or None when they are not there."""
    folder, names = (("cifar-10-batches-py", BATCH_FILES[split]) if dataset == "cifar10" else
                     ("cifar-100-python", BATCH_FILES_100[split] + ["meta"]))
    for candidate in (root, root / folder):
        files = [candidate / name for name in names]
        if all(f.is_file() for f in files):
            key = f"{dataset}-{split}-batches-{cache.fingerprint(files)}.pt"
            cached = cache.load(key)
            if cached is not None:
                return ImageSplit(cached["images"], cached["labels"], list(cached["classes"]))
            result = _read_batches(files, split) if dataset == "cifar10" else _read_batches_100(files)
            cache.save(key, {"images": result.images, "labels": result.labels,
                             "classes": result.classes})
            return result
    return None


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """CIFAR's python batches are pickles: allow only the numpy types they are made of."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("builtins", "bytes"),
               ("builtins", "list")}

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


def _read_batches_100(files: list[Path]) -> ImageSplit:
    *data_files, meta = files
    meta_dict = _unpickle(meta)
    classes = [c.decode() for c in meta_dict[b"fine_label_names"]]
    batch = _unpickle(data_files[0])
    images = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
    return ImageSplit(torch.from_numpy(images.copy()),
                      torch.tensor([int(x) for x in batch[b"fine_labels"]]), classes)


def _unpickle(f: Path) -> dict:
    try:
        with open(f, "rb") as fh:
            return _NumpyOnlyUnpickler(fh, encoding="bytes").load()
    except (pickle.UnpicklingError, KeyError, ValueError, EOFError, TypeError) as e:
        raise DataError(f"{f}: not a CIFAR python batch ({e}): re-download the dataset") from None


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
