"""Which layout a split has under the data folder, and its source (sources.py lists them):

    source = open_split(Path("../shared/datasets/imagenette"), ("val", "validation"), "imagenette")

Above both sources.py and tfrecord.py (a TFRecord source is an EncodedSource), so neither
imports the other's module at run time.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError
from .sources import ARCHIVE_SUFFIXES, EncodedSource, extract_once, scan_folder, scan_tar
from .tfrecord import TFRecordSource


def open_split(root: Path, split: str | tuple[str, ...], dataset: str) -> EncodedSource:
    """The source of `split` under `root` (a tuple lists accepted names, e.g. ('val', 'validation'))."""
    names = (split,) if isinstance(split, str) else split
    root = Path(root)
    _check_root(root, dataset)
    for name in names:
        if (root / name).is_dir():
            if _looks_like_tfrecords(root / name):
                return TFRecordSource(root / name)
            return scan_folder(root / name)
        for suffix in ARCHIVE_SUFFIXES:
            archive = root / f"{name}{suffix}"
            if archive.is_file():
                if suffix == ".tar":
                    return scan_tar(archive)
                return scan_folder(extract_once(archive) / name, shown_as=archive)
    found = sorted(p.name for p in root.iterdir())[:8]
    raise DataError(f"{root}: no {names[0]!r} split for {dataset} (looked for {names[0]}/, "
                    f"{names[0]}.tar, {names[0]}.tar.gz); found {found or 'an empty folder'}: "
                    f"point --data at the folder that holds {names[0]}/<class>/<image>")


def _check_root(root: Path, dataset: str) -> None:
    if not root.exists():
        raise DataError(f"data folder {root} does not exist: pass --data PATH (or set $DATA) "
                        f"to your {dataset} copy")
    if not root.is_dir():
        raise DataError(f"--data {root} is a file, not a folder: point it at the folder "
                        "that holds the split folders or archives")


def _looks_like_tfrecords(folder: Path) -> bool:
    for p in folder.iterdir():
        if p.is_dir():
            return False
        if p.suffix == ".tfrecord" or "-of-" in p.name:
            return True
    return False
