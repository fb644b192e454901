"""Where the images of a split are: a list of encoded images with labels, readable by index.

Layouts found under the data folder (--data or $DATA), for a split such as 'train' or 'val':

    <split>/<class>/<image>           an ImageFolder tree (ImageNet-1k, Imagenette, CIFAR folders)
    <split>.tar                       the same tree in an uncompressed tar: read in place
    <split>.tar.gz | <split>.tgz      the same, compressed: extracted once into the cache
    <split>/*.tfrecord (+ .idx)       TFRecords from `vitscale prepare` or imagenet-tools
                                      (tfrecord.py; splits.open_split tells the layouts apart)
    101_ObjectCategories/<class>/...  Caltech-101: one pool, split by seed (validation.py)

Class indices follow the sorted class-folder names. Checks here stop a run before any work
with one line that names the folder and the fix: a missing split, an empty class folder, and
(in check_class_sets) train and evaluation splits with different classes.
"""

from __future__ import annotations

import os
import shutil
import tarfile
from collections import Counter
from pathlib import Path

import torch

from ..errors import DataError
from . import cache

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff"}
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz")


class EncodedSource:
    """N images (file bytes) with labels; `read(i)` is random access, safe in worker processes."""

    def __init__(self, root: Path, names: list[str], labels: list[int], classes: list[str]):
        self.root = root
        self.names = names
        self.labels = torch.tensor(labels, dtype=torch.int64)
        self.classes = classes

    def __len__(self) -> int:
        return len(self.names)

    def read(self, i: int) -> bytes:
        raise NotImplementedError

    def fingerprint(self) -> str:
        raise NotImplementedError

    def subset(self, indices: torch.Tensor) -> "EncodedSource":
        return SubsetSource(self, indices)


class FolderSource(EncodedSource):
    """An ImageFolder tree; `names` are the image paths (strings: 50,000 Path objects cost
    ~0.5 s per rank)."""

    def read(self, i: int) -> bytes:
        with open(self.names[i], "rb") as f:
            return f.read()

    def fingerprint(self) -> str:
        # The folders' listing and times: adding, removing or replacing a file changes them.
        folders = {os.path.dirname(f) for f in self.names}
        return cache.fingerprint([self.root] + sorted(Path(d) for d in folders))


class TarSource(EncodedSource):
    """An uncompressed .tar read in place: each member's data is at a known offset."""

    def __init__(self, archive: Path, members: list[tuple[str, int, int]], labels: list[int],
                 classes: list[str]):
        super().__init__(archive, [f"{archive}:{name}" for name, _, _ in members], labels, classes)
        self.archive = archive
        self.spans = [(offset, size) for _, offset, size in members]
        self._handle = None
        self._pid = None

    def read(self, i: int) -> bytes:
        if self._pid != os.getpid():            # one handle per (worker) process
            self._handle, self._pid = open(self.archive, "rb"), os.getpid()
        offset, size = self.spans[i]
        self._handle.seek(offset)
        return self._handle.read(size)

    def fingerprint(self) -> str:
        return cache.fingerprint([self.archive])

    def __getstate__(self):
        return {**self.__dict__, "_handle": None, "_pid": None}


class ArraySource(EncodedSource):
    """Images already decoded in memory (CIFAR's python batches, synthetic data): `read`
    returns the (H, W, 3) array, which decode.open_rgb accepts as it is."""

    def __init__(self, split, root: Path | None = None):
        super().__init__(root or Path("."), [f"image {i}" for i in range(len(split.labels))],
                         split.labels.tolist(), split.classes)
        self.images = split.images

    def read(self, i: int):
        return self.images[i].permute(1, 2, 0).numpy()


class SubsetSource(EncodedSource):
    """Some of another source's images (a validation carve or a Caltech-101 split)."""

    def __init__(self, parent: EncodedSource, indices: torch.Tensor):
        idx = indices.tolist()
        super().__init__(parent.root, [parent.names[i] for i in idx],
                         parent.labels[indices].tolist(), parent.classes)
        self.parent, self.indices = parent, idx

    def read(self, i: int) -> bytes:
        return self.parent.read(self.indices[i])

    def fingerprint(self) -> str:
        import hashlib
        digest = hashlib.sha1(str(self.indices).encode()).hexdigest()[:8]
        return f"{self.parent.fingerprint()}-{digest}"


def scan_folder(split_dir: Path, shown_as: Path | None = None,
                exclude: tuple[str, ...] = ()) -> FolderSource:
    """An ImageFolder tree: split_dir/<class>/<image>; every class folder must hold images."""
    shown = shown_as or split_dir
    if not split_dir.is_dir():
        raise DataError(f"{shown}: expected a folder of class folders ({split_dir} is missing)")
    class_dirs = sorted(p for p in split_dir.iterdir() if p.is_dir() and p.name not in exclude)
    if not class_dirs:
        raise DataError(f"{shown} has no class folders: expected {split_dir.name}/<class>/<image>")
    files, labels = [], []
    for label, d in enumerate(class_dirs):
        found = _image_files(d)
        files += found
        labels += [label] * len(found)
    _check_no_empty_class([d.name for d in class_dirs], labels, shown)
    return FolderSource(split_dir, files, labels, [d.name for d in class_dirs])


def _image_files(directory: Path) -> list[str]:
    """The image files anywhere under `directory`, in the order sorted(directory.rglob("*"))
    gives (by path components; symlinked folders not entered), from os.scandir: pathlib costs
    ~1 s per 50,000 files, which every rank of every run paid at start."""
    found: list[tuple[tuple[str, ...], str]] = []

    def walk(path: str, parts: tuple[str, ...]) -> None:
        with os.scandir(path) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    walk(entry.path, parts + (entry.name,))
                elif os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES and entry.is_file():
                    found.append((parts + (entry.name,), entry.path))

    walk(str(directory), ())
    found.sort(key=lambda item: item[0])
    return [path for _, path in found]


def scan_tar(archive: Path) -> TarSource:
    """An uncompressed tar of <split>/<class>/<image>: members indexed, nothing extracted."""
    members: list[tuple[str, str, int, int]] = []
    try:
        with tarfile.open(archive, "r:") as tar:
            for m in tar:
                if m.isfile() and Path(m.name).suffix.lower() in IMAGE_SUFFIXES:
                    parts = Path(m.name).parts
                    if len(parts) < 2:
                        raise DataError(f"{archive}: {m.name} is not inside a class folder: the "
                                        "archive must hold <split>/<class>/<image>")
                    members.append((parts[-2], m.name, m.offset_data, m.size))
    except (tarfile.TarError, EOFError, OSError) as e:
        raise DataError(f"{archive}: damaged or unreadable archive ({e}): replace the file") from None
    if not members:
        raise DataError(f"{archive} holds no images: it must hold <split>/<class>/<image>")
    members.sort()
    classes = sorted({c for c, *_ in members})
    index = {c: i for i, c in enumerate(classes)}
    return TarSource(archive, [(n, o, s) for _, n, o, s in members],
                     [index[c] for c, *_ in members], classes)


def extract_once(archive: Path) -> Path:
    """Extract a compressed archive into the cache (atomically) and return that folder."""
    target = cache.cache_dir() / "extracted" / f"{archive.name}-{cache.fingerprint([archive])}"
    if target.is_dir():
        return target
    with cache.building(f"extracted-{target.name}", f"the extracted {archive}") as locked:
        if not target.is_dir():  # else extracted by another process while this one waited
            _extract_to(archive, target, remove_stale=locked)
    return target


def _extract_to(archive: Path, target: Path, remove_stale: bool) -> None:
    """Extract into a private partial folder, renamed to `target` when complete. Holding the
    entry's lock, no other process is writing one: partial folders left by processes that
    died mid-extraction are removed first."""
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    for stale in target.parent.glob(f"{target.name}.partial-*") if remove_stale else [partial]:
        shutil.rmtree(stale, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        with tarfile.open(archive) as tar:
            _extract_safely(tar, partial, archive)
    except (tarfile.TarError, EOFError, OSError) as e:
        shutil.rmtree(partial, ignore_errors=True)
        raise DataError(f"{archive}: damaged or unreadable archive ({e}): replace the file") from None
    try:
        partial.rename(target)
    except OSError:                                  # another process got there first
        shutil.rmtree(partial, ignore_errors=True)


def _extract_safely(tar: tarfile.TarFile, target: Path, archive: Path) -> None:
    """Extract refusing absolute paths and paths or links that leave `target`."""
    if hasattr(tarfile, "data_filter"):      # Python >= 3.11.4 / 3.12: the stdlib's check
        tar.extractall(target, filter="data")
        return
    root = target.resolve()
    for member in tar.getmembers():
        path = (target / member.name).resolve()
        if not path.is_relative_to(root) or member.issym() or member.islnk():
            raise DataError(f"{archive}: member {member.name} would be written outside the "
                            "extraction folder or is a link: refusing the archive")
    tar.extractall(target)


def _check_no_empty_class(classes: list[str], labels: list[int], where: Path) -> None:
    counts = Counter(labels)
    empty = [c for i, c in enumerate(classes) if counts[i] == 0]
    if empty:
        raise DataError(f"{where}: class folder(s) {empty[:5]} hold no images: remove them or "
                        "add the images (class indices come from the folder list)")


def check_class_sets(train_classes: list[str], eval_classes: list[str], root: Path,
                     eval_name: str = "test") -> None:
    if train_classes != eval_classes:
        only_train = sorted(set(train_classes) - set(eval_classes))[:5]
        only_eval = sorted(set(eval_classes) - set(train_classes))[:5]
        raise DataError(f"{root}: train and {eval_name} have different classes (only in train: "
                        f"{only_train}, only in {eval_name}: {only_eval}): make the class "
                        "folders match")
