"""What vitscale knows about each dataset before reading it (for planning and validation).

| DATASET    | layout under --data                                     | evaluated     | train crop |
|------------|---------------------------------------------------------|---------------|------------|
| cifar10    | train/ test/ folders or archives, cifar-10-batches-py   | test/         | pad 4      |
| cifar100   | train/ test/ folders or archives, cifar-100-python      | test/         | pad 4      |
| imagenet1k | train/ val/ (or validation/): folders, archives, TFRecords | val/       | RRC        |
| imagenette | as imagenet1k (a real 10-class ImageNet subset)         | val/          | RRC        |
| caltech101 | 101_ObjectCategories/ (one pool, split by seed)         | carved test   | RRC        |
| synthetic  | none: random images from the seed, for benchmarks       | random        | RRC        |
| folder     | your own: train/ + val/ (or validation/, test/) of class folders, or one | val/ or carved | pad 4 at <= 64 px, else RRC |
|            | folder of class folders (a test share carved as for caltech101); any class count |  |  |

DATASET unset: data/infer.py works out which of these the data or the keys describe.

In metrics the evaluated split is always called "test" (for ImageNet that is its val/ folder,
the split papers report); "val" is reserved for the VAL_SPLIT images carved from train for
model selection, so the two never meet under one name.
"""

from __future__ import annotations

from dataclasses import dataclass

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    num_classes: int
    img_size: int          # the resolution its recipes train at
    train_size: int | None  # published sizes: used to plan before the data is read
    eval_size: int
    eval_split: str        # the split evaluated every epoch, as named in metrics
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    kind: str = "folder"   # 'cifar' | 'folder' | 'pool' | 'synthetic'
    train_crop: str = "rrc"
    eval_crop_pct: float = 0.875
    eval_dirs: tuple[str, ...] = ("val", "validation")


DATASETS: dict[str, DatasetInfo] = {
    # Channel statistics of the CIFAR-10 training set (computed on the 50,000 train images).
    "cifar10": DatasetInfo("cifar10", num_classes=10, img_size=32, train_size=50_000,
                           eval_size=10_000, eval_split="test", kind="cifar", train_crop="pad",
                           eval_crop_pct=1.0, eval_dirs=("test",),
                           mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616)),
    "cifar100": DatasetInfo("cifar100", num_classes=100, img_size=32, train_size=50_000,
                            eval_size=10_000, eval_split="test", kind="cifar", train_crop="pad",
                            eval_crop_pct=1.0, eval_dirs=("test",),
                            mean=(0.5071, 0.4865, 0.4409), std=(0.2673, 0.2564, 0.2762)),
    "imagenet1k": DatasetInfo("imagenet1k", num_classes=1000, img_size=224,
                              train_size=1_281_167, eval_size=50_000, eval_split="test",
                              mean=IMAGENET_MEAN, std=IMAGENET_STD),
    "imagenette": DatasetInfo("imagenette", num_classes=10, img_size=224, train_size=9_469,
                              eval_size=3_925, eval_split="test",
                              mean=IMAGENET_MEAN, std=IMAGENET_STD),
    # 8,677 images in 101 object classes (BACKGROUND_Google left out, as torchvision does);
    # no official split: data.test_fraction of each class is held out, chosen by SEED.
    "caltech101": DatasetInfo("caltech101", num_classes=101, img_size=224, train_size=6_942,
                              eval_size=1_735, eval_split="test", kind="pool",
                              mean=IMAGENET_MEAN, std=IMAGENET_STD),
    "synthetic": DatasetInfo("synthetic", num_classes=1000, img_size=224, train_size=10_240,
                             eval_size=1_024, eval_split="test", kind="synthetic",
                             mean=IMAGENET_MEAN, std=IMAGENET_STD),
}


FOLDER_EVAL_DIRS = ("val", "validation", "test")


def folder_info(num_classes: int | None, img_size: int | None,
                train_size: int | None = None) -> DatasetInfo:
    """DATASET='folder': a user's ImageFolder tree with any number of classes. Small images
    (<= 64 px) get CIFAR's recipe (padded crops, no eval crop), larger ones ImageNet's."""
    small = img_size is not None and img_size <= 64
    return DatasetInfo("folder", num_classes=num_classes or 0, img_size=img_size or 224,
                       train_size=train_size, eval_size=0, eval_split="test",
                       mean=IMAGENET_MEAN, std=IMAGENET_STD, kind="folder",
                       train_crop="pad" if small else "rrc",
                       eval_crop_pct=1.0 if small else 0.875, eval_dirs=FOLDER_EVAL_DIRS)


def dataset_info(cfg) -> DatasetInfo:
    """What vitscale knows about cfg's dataset before reading it (DATASET must be resolved:
    data/infer.py fills it in when the config leaves it unset)."""
    if cfg.DATASET == "folder":
        return folder_info(cfg.NUM_CLASSES, cfg.IMG_SIZE)
    return DATASETS[cfg.DATASET]
