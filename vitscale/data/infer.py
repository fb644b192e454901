"""Which dataset (and default model) a config means when it does not name DATASET.

Colossal-AI's config files never name their dataset: the training script did. vitscale works
it out from the strongest evidence there is, and says which (`vitscale train FILE --dry-run`):

  1. DATASET, when the file (or --set) gives it;
  2. the data folder -- --data, else data.root (Colossal's dali.root / train_data root), else
     $DATA -- when it exists: CIFAR python batches are cifar10/cifar100, 101_ObjectCategories
     is caltech101, TFRecords are imagenet1k; a train/ split (folder or archive) holding the
     ten CIFAR-10 classes beside test/ is cifar10, Imagenette's ten WordNet ids imagenette,
     1000 WordNet ids imagenet1k; any other tree of class folders is DATASET='folder' with its
     own class count (NUM_CLASSES) and, unless the config sizes the model, IMG_SIZE from its
     images (32 when they are small, 224 otherwise);
  3. the keys: NUM_CLASSES 10 -> cifar10 (the seeds' 10-class dataset), 100 at <= 64 px ->
     cifar100, 101 -> caltech101, 1000 -> imagenet1k, any other count -> 'folder' (which then
     needs --data); no NUM_CLASSES but a 224-px model (IMG_SIZE, or MODEL's) or data.pipeline
     = 'dali' (Colossal's DALI loader reads ImageNet) -> imagenet1k;
  4. nothing at all: cifar10, seed 000's CIFAR-10 benchmark -- and the dry run says so.

The default model follows the training resolution, as in the seeds: ViT-Lite-7/4 for 32-px
images (seed 000's CIFAR-10 result), ViT-S/16 for 224-px ones (its ImageNet-1k result).
"""

from __future__ import annotations

import dataclasses
import io
import os
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError, DataError
from .datasets import DATASETS, FOLDER_EVAL_DIRS

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck"]
IMAGENETTE_CLASSES = ["n01440764", "n02102040", "n02979186", "n03000684", "n03028079",
                      "n03394916", "n03417042", "n03425413", "n03445777", "n03888257"]
_WNID = re.compile(r"^n\d{8}$")
SMALL_IMAGE = 64          # sides up to this train at 32 px with the CIFAR recipe


def default_model(img_size: int) -> str:
    """The seeds' model for a training resolution: ViT-Lite-7/4 (32 px), ViT-S/16 (224 px)."""
    return "vit_lite_7_4" if img_size <= SMALL_IMAGE else "vit_small_patch16_224"


@dataclass
class Inference:
    """A config with DATASET resolved, and what was inferred from what."""

    config: object
    lines: list[str] = field(default_factory=list)   # "dataset: cifar10 (from ...)"
    train_size: int | None = None                     # train images found, when scanned
    root: Path | None = None                          # the data folder, when one is known


def data_root(cfg, data=None) -> tuple[Path | None, str]:
    """(the data folder, where it came from): --data, then data.root, then $DATA."""
    if data:
        return Path(data), "--data"
    if cfg.data.root:
        return Path(cfg.data.root), "data.root"
    if os.environ.get("DATA"):
        return Path(os.environ["DATA"]), "$DATA"
    return None, ""


def infer_dataset(cfg, data=None, scan: bool = True) -> Inference:
    """`cfg` with DATASET (and for 'folder' NUM_CLASSES and IMG_SIZE) filled in.

    With `scan`, the data folder is listed (never decoded) when DATASET is unset or 'folder';
    without it only the keys count (make_plan, which must not touch the disk).
    """
    root, source = data_root(cfg, data)
    lines = [f"data: {root} (from {source})" if root else
             "data: none given (--data, data.root or $DATA)"]
    if root is not None and not root.exists():
        lines[0] += ": not found on this machine"
    changes: dict = {}
    train_size = None
    if cfg.DATASET not in (None, "folder"):
        lines.append(f"dataset: {cfg.DATASET} (DATASET)")
        dataset = cfg.DATASET
    else:
        found = _scan(cfg, root) if scan and root is not None and root.exists() else None
        if found is not None:
            dataset, why, classes, train_size, sides = found
            if cfg.DATASET == "folder" and dataset != "folder":
                dataset, why = "folder", "DATASET"
            lines.append(f"dataset: {dataset} ({why})")
            if dataset == "folder":
                if cfg.NUM_CLASSES is not None and cfg.NUM_CLASSES != len(classes):
                    raise ConfigError(f"NUM_CLASSES={cfg.NUM_CLASSES} but {root} has "
                                      f"{len(classes)} class folders: set NUM_CLASSES = "
                                      f"{len(classes)} or point --data at the right folder")
                changes["NUM_CLASSES"] = len(classes)
                lines.append(f"NUM_CLASSES: {len(classes)} (class folders in {root})")
                if cfg.IMG_SIZE is None and cfg.MODEL is None and sides:
                    side = statistics.median(sides)
                    changes["IMG_SIZE"] = 32 if side <= SMALL_IMAGE else 224
                    lines.append(f"IMG_SIZE: {changes['IMG_SIZE']} (median image side "
                                 f"{side:g} px over {len(sides)} sampled images)")
        elif cfg.DATASET == "folder":
            dataset = "folder"
            lines.append("dataset: folder (DATASET)")
            if cfg.NUM_CLASSES is None:
                raise ConfigError("DATASET='folder' needs the data to count its classes: pass "
                                  "--data PATH (or set NUM_CLASSES)")
        else:
            dataset, why = _from_keys(cfg)
            lines.append(f"dataset: {dataset} ({why})")
    changes["DATASET"] = dataset
    if dataset == "folder" and cfg.IMG_SIZE is None and "IMG_SIZE" not in changes:
        from ..models import VARIANTS
        img = VARIANTS[cfg.MODEL].img_size if cfg.MODEL in VARIANTS else 224
        changes["IMG_SIZE"] = img
        lines.append(f"IMG_SIZE: {img} ({'MODEL' if cfg.MODEL in VARIANTS else 'the default'})")
    new = dataclasses.replace(cfg, **changes)
    lines.append(_model_line(new))
    return Inference(new, lines, train_size, root)


def _model_line(cfg) -> str:
    from ..models import VARIANTS
    size_keys = ("IMG_SIZE", "PATCH_SIZE", "HIDDEN_SIZE", "DEPTH", "NUM_HEADS")
    given = [k for k in size_keys if getattr(cfg, k) is not None]
    if cfg.MODEL is not None:
        return f"model: {cfg.MODEL} (MODEL)" + (f" with {', '.join(given)}" if given else "")
    if len(given) == len(size_keys):
        return f"model: custom ({', '.join(size_keys)})"
    img = cfg.IMG_SIZE or _dataset_img_size(cfg)
    name = default_model(img)
    why = f"the default at {img} px"
    if given:
        return f"model: {name} ({why}) with {', '.join(given)}"
    return f"model: {name} ({why}; {'MODEL and the size keys are unset'})"


def _dataset_img_size(cfg) -> int:
    if cfg.DATASET == "folder":
        return cfg.IMG_SIZE or 224
    return DATASETS[cfg.DATASET].img_size


def _from_keys(cfg) -> tuple[str, str]:
    """The dataset NUM_CLASSES, IMG_SIZE (or MODEL's) and data.pipeline point to."""
    from ..models import VARIANTS
    classes = cfg.NUM_CLASSES
    img = cfg.IMG_SIZE or (VARIANTS[cfg.MODEL].img_size if cfg.MODEL in VARIANTS else None)
    img_from = "IMG_SIZE" if cfg.IMG_SIZE else f"MODEL={cfg.MODEL!r}"
    if classes == 10:
        return "cifar10", ("NUM_CLASSES=10: CIFAR-10, the seeds' 10-class dataset; "
                           "DATASET='imagenette' for Imagenette")
    if classes == 100 and (img or 32) <= SMALL_IMAGE:
        return "cifar100", "NUM_CLASSES=100 at 32 px"
    if classes == 101:
        return "caltech101", "NUM_CLASSES=101"
    if classes == 1000:
        return "imagenet1k", "NUM_CLASSES=1000"
    if classes is not None:
        return "folder", f"NUM_CLASSES={classes} is no dataset vitscale knows: pass --data"
    if cfg.data.pipeline == "dali":
        return "imagenet1k", "data.pipeline='dali' (Colossal-AI's dali = dict(...)): its DALI " \
                             "loader reads ImageNet"
    if img is not None and img > SMALL_IMAGE:
        return "imagenet1k", f"{img_from} is {img} px and NUM_CLASSES is unset: ImageNet-1k, " \
                             "the seeds' 224-px dataset"
    return "cifar10", ("the default, seed 000's CIFAR-10 benchmark: nothing names a dataset; set "
                       "DATASET or pass --data")


def _scan(cfg, root: Path):
    """(dataset, why, class names, train images, sampled image sides) of the data folder, or
    None when it holds nothing recognisable (the run then fails on it with the fix)."""
    from .sources import ARCHIVE_SUFFIXES, scan_folder
    from .splits import open_split
    for name, dataset in (("cifar-10-batches-py", "cifar10"), ("cifar-100-python", "cifar100")):
        if (root / name).is_dir() or root.name == name:
            return dataset, f"{name} in {root}", [], None, []
    for name in ("101_ObjectCategories", "101_ObjectCategories.tar.gz",
                 "101_ObjectCategories.tgz", "caltech101"):
        if (root / name).exists():
            return "caltech101", f"{name} in {root}", [], None, []

    def has(split: str) -> bool:
        return (root / split).is_dir() or any((root / f"{split}{s}").is_file()
                                              for s in ARCHIVE_SUFFIXES)
    try:
        if has("train"):
            train_dir = root / "train"
            if train_dir.is_dir() and any(p.suffix == ".tfrecord" or "-of-" in p.name
                                          for p in train_dir.iterdir() if p.is_file()):
                return "imagenet1k", f"TFRecords in {train_dir}", [], None, []
            train = open_split(root, "train", "your data")
            classes = list(train.classes)
            found = f"{len(classes)} classes in {root}/train"
            if classes == CIFAR10_CLASSES and has("test"):
                return "cifar10", f"the CIFAR-10 classes in {root}", classes, len(train), []
            if classes == IMAGENETTE_CLASSES and (has("val") or has("validation")):
                return "imagenette", f"Imagenette's classes in {root}", classes, len(train), []
            if len(classes) == 1000 and all(_WNID.match(c) for c in classes):
                return "imagenet1k", f"1000 WordNet ids in {root}/train", classes, len(train), []
            if not any(has(d) for d in FOLDER_EVAL_DIRS):
                raise DataError(f"{root} has train/ but no val/, validation/ or test/: add the "
                                "evaluation split beside it")
            return "folder", found, classes, len(train), _sides(train)
        pool = scan_folder(root)  # one folder of class folders: a test share is carved
    except DataError:
        if has("train"):
            raise
        return None
    keep = len(pool) - round(cfg.data.test_fraction * len(pool))
    return ("folder", f"{len(pool.classes)} class folders in {root}, data.test_fraction held "
                      "out as test", list(pool.classes), keep, _sides(pool))


def _sides(source, samples: int = 24) -> list[int]:
    """The longer side of up to `samples` images spread over the source (headers only)."""
    from PIL import Image
    n = len(source)
    sides = []
    for i in sorted({round(k * (n - 1) / max(samples - 1, 1)) for k in range(min(samples, n))}):
        try:
            with Image.open(io.BytesIO(source.read(i))) as im:
                sides.append(max(im.size))
        except Exception:  # an unreadable file is the data pipeline's to report, not ours
            continue
    return sides


__all__ = ["CIFAR10_CLASSES", "IMAGENETTE_CLASSES", "Inference", "data_root", "default_model",
           "infer_dataset"]
