"""The run plan: every derived value and every cross-key check, computed once before any work.

Units (design principle 7): batch sizes are images; `global_batch` is per optimizer step over
all data-parallel ranks; `per_device_batch` is one micro-step on one device.

    global_batch = per_device_batch x data_parallel_size x accumulation

The config gives either TOTAL_BATCH_SIZE (global; per-device batch derived, seeds 000/001) or
BATCH_SIZE (per device, seed 003). When a file gives both, as seed 000 does with
`BATCH_SIZE = TOTAL_BATCH_SIZE // gradient_accumulation`, BATCH_SIZE must equal either the
per-device batch or the global batch of one micro-step (Colossal-AI's "batch for dataloader").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .config import Config, suggest
from .data.datasets import DATASETS, DatasetInfo
from .errors import ConfigError
from .models import VARIANTS, ViTSize, get_variant, with_overrides

_SIZE_KEYS = ("IMG_SIZE", "PATCH_SIZE", "HIDDEN_SIZE", "DEPTH", "NUM_HEADS")
DEFAULT_MODEL = "vit_lite_7_4"


@dataclass(frozen=True)
class Plan:
    model: ViTSize
    model_name: str
    dataset: DatasetInfo
    world_size: int
    pipeline_size: int
    tensor_size: int
    data_parallel_size: int
    per_device_batch: int
    accumulation: int
    global_batch: int
    eval_batch: int
    steps_per_epoch: int
    total_steps: int
    warmup_steps: int
    precision: str

    def derived(self) -> dict:
        """The derived values printed at start and by --dry-run."""
        return {
            "model": self.model_name, "dataset": self.dataset.name,
            "world_size": self.world_size,
            "layout": f"pipeline {self.pipeline_size} x tensor {self.tensor_size} x data "
                      f"{self.data_parallel_size}",
            "global_batch": self.global_batch, "per_device_batch": self.per_device_batch,
            "accumulation_steps": self.accumulation, "steps_per_epoch": self.steps_per_epoch,
            "total_steps": self.total_steps, "warmup_steps": self.warmup_steps,
            "precision": self.precision,
        }

    def to_dict(self) -> dict:
        return asdict(self)


def make_plan(cfg: Config, world_size: int = 1, train_size: int | None = None) -> Plan:
    """Check `cfg` against the world size and derive every batch and step count.

    `train_size` is the number of training images actually found; before the data is read,
    the dataset's published size is used (dry runs, early validation).
    """
    dataset = DATASETS[cfg.DATASET]
    train_size = train_size or dataset.train_size
    size, name = resolve_model(cfg, dataset)
    pp, tp = cfg.parallel.pipeline, cfg.parallel.tensor.size
    _check_parallel(cfg, world_size)
    dp = world_size // (pp * tp)
    accum = cfg.gradient_accumulation
    per_device, global_batch = _batch_sizes(cfg, dp, accum)
    steps = train_size // dp // (per_device * accum)
    if steps == 0:
        raise ConfigError(f"global batch {global_batch} is larger than the {train_size} "
                          f"training images of {dataset.name}: lower TOTAL_BATCH_SIZE or BATCH_SIZE")
    if cfg.LIMIT_TRAIN_BATCHES:
        steps = min(steps, cfg.LIMIT_TRAIN_BATCHES)
    if cfg.WARMUP_EPOCHS > cfg.NUM_EPOCHS:
        raise ConfigError(f"WARMUP_EPOCHS={cfg.WARMUP_EPOCHS} exceeds NUM_EPOCHS={cfg.NUM_EPOCHS}: "
                          "lower WARMUP_EPOCHS")
    _check_positive(cfg)
    return Plan(model=size, model_name=name, dataset=dataset, world_size=world_size,
                pipeline_size=pp, tensor_size=tp, data_parallel_size=dp,
                per_device_batch=per_device, accumulation=accum, global_batch=global_batch,
                eval_batch=cfg.EVAL_BATCH_SIZE or 2 * per_device, steps_per_epoch=steps,
                total_steps=steps * cfg.NUM_EPOCHS,
                warmup_steps=round(cfg.WARMUP_EPOCHS * steps),
                precision=cfg.precision_name)


def resolve_model(cfg: Config, dataset: DatasetInfo) -> tuple[ViTSize, str]:
    """The model size: a named variant with any size keys applied on top, or keys alone."""
    given = {k: getattr(cfg, k) for k in _SIZE_KEYS if getattr(cfg, k) is not None}
    if cfg.MODEL is not None:
        if cfg.MODEL not in VARIANTS:
            raise ConfigError(f"MODEL={cfg.MODEL!r} is not a known model{suggest(cfg.MODEL, VARIANTS)}"
                              ": run `vitscale models` for the list, or give the size keys "
                              f"{', '.join(_SIZE_KEYS)} with MODEL = None")
        base, name = get_variant(cfg.MODEL), cfg.MODEL
    elif given:
        missing = [k for k in _SIZE_KEYS if k not in given]
        if missing:
            raise ConfigError(f"{missing[0]} is not set: a model without MODEL needs all of "
                              f"{', '.join(_SIZE_KEYS)} (or set MODEL, e.g. MODEL = 'vit_lite_7_4')")
        base, name = ViTSize(width=0, depth=0, heads=1, mlp_ratio=4.0, patch=1, img_size=1), "custom"
    else:
        base, name = get_variant(DEFAULT_MODEL), DEFAULT_MODEL
    size = with_overrides(
        base, img_size=cfg.IMG_SIZE, patch=cfg.PATCH_SIZE, width=cfg.HIDDEN_SIZE,
        depth=cfg.DEPTH, heads=cfg.NUM_HEADS, mlp_ratio=cfg.MLP_RATIO, qkv_bias=cfg.QKV_BIAS,
        num_classes=cfg.NUM_CLASSES or dataset.num_classes)
    if name != "custom" and size != with_overrides(get_variant(name), num_classes=size.num_classes):
        name = f"{name} (modified)"
    if size.num_classes != dataset.num_classes:
        raise ConfigError(f"NUM_CLASSES={size.num_classes} but {dataset.name} has "
                          f"{dataset.num_classes} classes: set NUM_CLASSES = {dataset.num_classes}")
    if size.img_size % size.patch:
        raise ConfigError(f"IMG_SIZE={size.img_size} is not divisible by PATCH_SIZE={size.patch}: "
                          "choose a patch size that divides the image size")
    if size.width % size.heads:
        raise ConfigError(f"HIDDEN_SIZE={size.width} is not divisible by NUM_HEADS={size.heads}: "
                          "choose a head count that divides the width")
    for key, value in (("HIDDEN_SIZE", size.width), ("DEPTH", size.depth),
                       ("NUM_HEADS", size.heads), ("PATCH_SIZE", size.patch),
                       ("IMG_SIZE", size.img_size), ("MLP_RATIO", size.mlp_ratio)):
        if value <= 0:
            raise ConfigError(f"{key}={value} must be positive")
    if cfg.SEQ_LENGTH is not None and cfg.SEQ_LENGTH != size.seq_length:
        raise ConfigError(f"SEQ_LENGTH={cfg.SEQ_LENGTH} does not match the model's "
                          f"(IMG_SIZE // PATCH_SIZE)**2 + 1 = {size.seq_length}: fix or remove it")
    return size, name


def _check_parallel(cfg: Config, world_size: int) -> None:
    pp, tensor = cfg.parallel.pipeline, cfg.parallel.tensor
    if pp < 1 or tensor.size < 1:
        raise ConfigError("parallel.pipeline and parallel.tensor.size must be at least 1")
    if tensor.mode is None and tensor.size != 1:
        raise ConfigError(f"parallel.tensor.size={tensor.size} needs a mode: set "
                          "parallel['tensor']['mode'] to '1d', '2d', '2.5d' or '3d', or size=1")
    if cfg.TENSOR_PARALLEL_SIZE is not None and cfg.TENSOR_PARALLEL_SIZE != tensor.size:
        raise ConfigError(f"TENSOR_PARALLEL_SIZE={cfg.TENSOR_PARALLEL_SIZE} differs from "
                          f"parallel.tensor.size={tensor.size}: make them agree")
    if pp > 1 or tensor.size > 1:
        raise ConfigError(f"parallel = dict(pipeline={pp}, tensor=dict(size={tensor.size})) asks "
                          "for pipeline or tensor parallelism, which this version of vitscale "
                          "does not provide yet: use pipeline=1 and tensor size 1")
    if world_size % (pp * tensor.size):
        raise ConfigError(f"world size {world_size} is not divisible by pipeline x tensor = "
                          f"{pp * tensor.size}: launch a multiple of {pp * tensor.size} processes")


def _batch_sizes(cfg: Config, dp: int, accum: int) -> tuple[int, int]:
    if accum < 1:
        raise ConfigError(f"gradient_accumulation={accum} must be at least 1")
    if cfg.TOTAL_BATCH_SIZE is None and cfg.BATCH_SIZE is None:
        raise ConfigError("neither BATCH_SIZE nor TOTAL_BATCH_SIZE is set: set one, e.g. "
                          "BATCH_SIZE = 128 (per device) or TOTAL_BATCH_SIZE = 512 (global)")
    if cfg.TOTAL_BATCH_SIZE is None:
        if cfg.BATCH_SIZE < 1:
            raise ConfigError(f"BATCH_SIZE={cfg.BATCH_SIZE} must be at least 1")
        return cfg.BATCH_SIZE, cfg.BATCH_SIZE * dp * accum
    total = cfg.TOTAL_BATCH_SIZE
    if total < 1 or total % (dp * accum):
        raise ConfigError(f"TOTAL_BATCH_SIZE={total} is not divisible by data-parallel size "
                          f"{dp} x gradient_accumulation {accum} = {dp * accum}: choose a multiple "
                          f"of {dp * accum}")
    per_device = total // (dp * accum)
    if cfg.BATCH_SIZE is not None and cfg.BATCH_SIZE not in (per_device, total // accum):
        raise ConfigError(f"BATCH_SIZE={cfg.BATCH_SIZE} contradicts TOTAL_BATCH_SIZE={total} "
                          f"(per-device batch {per_device}, {total // accum} per micro-step): "
                          "remove BATCH_SIZE or make it agree")
    return per_device, total


def _check_positive(cfg: Config) -> None:
    checks = [("LEARNING_RATE", cfg.LEARNING_RATE > 0), ("NUM_EPOCHS", cfg.NUM_EPOCHS >= 1),
              ("WEIGHT_DECAY", cfg.WEIGHT_DECAY >= 0), ("WARMUP_EPOCHS", cfg.WARMUP_EPOCHS >= 0),
              ("LABEL_SMOOTHING", 0 <= cfg.LABEL_SMOOTHING < 1),
              ("LOG_EVERY", cfg.LOG_EVERY >= 1), ("EVAL_EVERY", cfg.EVAL_EVERY >= 1),
              ("MIN_LR", 0 <= cfg.MIN_LR <= cfg.LEARNING_RATE),
              ("clip_grad_norm", cfg.clip_grad_norm is None or cfg.clip_grad_norm > 0),
              ("CROP_PADDING", cfg.CROP_PADDING >= 0)]
    for key, ok in checks:
        if not ok:
            raise ConfigError(f"{key}={getattr(cfg, key)!r} is out of range: see "
                              "docs/configuration.md for its allowed values")
