"""The run plan: every derived value and every cross-key check, computed once before any work.

Units (design principle 7): batch sizes are images; `global_batch` is per optimizer step over
all data-parallel ranks; `per_device_batch` is one micro-step on one device.

    global_batch = per_device_batch x data_parallel_size x accumulation

The config gives either TOTAL_BATCH_SIZE (global; per-device batch derived, seeds 000/001) or
BATCH_SIZE (per device, seed 003). When a file gives both:
  * with `gradient_accumulation` unset, BATCH_SIZE is the per-device batch and the
    accumulation is derived for the world size the run is launched on (seed 001: 32K =
    256 per GPU x 4 GPUs x 32 accumulation steps);
  * with it set, as seed 000 does (`BATCH_SIZE = TOTAL_BATCH_SIZE // gradient_accumulation`),
    BATCH_SIZE must equal either the per-device batch or the global batch of one micro-step
    (Colossal-AI's "batch for dataloader").

The peak LR is LEARNING_RATE, scaled from LR_REFERENCE_BATCH to the global batch when that is
set (linearly or by the square root, optim/schedules.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .config import Config, suggest
from .data.datasets import DatasetInfo, dataset_info
from .data.infer import default_model, infer_dataset
from .distributed.mesh import ParallelDims
from .errors import ConfigError
from .models import VARIANTS, ViTSize, describe_feed_forward, get_variant, with_overrides
from .models.fff import tree_neurons
from .optim.schedules import scaled_lr
from .precision import check_available

_SIZE_KEYS = ("IMG_SIZE", "PATCH_SIZE", "HIDDEN_SIZE", "DEPTH", "NUM_HEADS")
# Config keys of the feed-forward sublayer -> ViTSize fields (models/ffn.py).
FFN_KEYS = {"MLP_DIM": "mlp_dim", "FFN": "ffn", "FFN_PER_BLOCK": "ffn_per_block",
            "FFF_DEPTH": "fff_depth", "FFF_TREES": "fff_trees", "FFF_FANOUT": "fff_fanout",
            "FFF_DENSE": "fff_dense", "FFF_LR_DEPTH": "fff_lr_depth", "FFF_EVAL": "fff_eval"}
_MAX_FFF_NEURONS = 2**24  # per layer; beyond this the dense training multiply cannot fit
DEFAULT_MODEL = "vit_lite_7_4"  # at 32 px; data/infer.default_model picks by resolution


@dataclass(frozen=True)
class Plan:
    model: ViTSize
    model_name: str
    dataset: DatasetInfo
    dims: ParallelDims
    per_device_batch: int
    accumulation: int
    global_batch: int
    eval_batch: int
    steps_per_epoch: int | None  # None: a 'folder' dataset planned before its data is read
    total_steps: int | None
    warmup_steps: int | None
    precision: str
    peak_lr: float

    def derived(self) -> dict:
        """The derived values printed at start and by --dry-run."""
        return {
            "model": self.model_name, "dataset": self.dataset.name,
            "world_size": self.dims.world, "layout": self.dims.describe(),
            "global_batch": self.global_batch, "per_device_batch": self.per_device_batch,
            "accumulation_steps": self.accumulation, "steps_per_epoch": self.steps_per_epoch,
            "total_steps": self.total_steps, "warmup_steps": self.warmup_steps,
            "peak_lr": self.peak_lr, "precision": self.precision,
            "ffn": describe_feed_forward(self.model),
        }

    def to_dict(self) -> dict:
        return asdict(self)


def make_plan(cfg: Config, world_size: int = 1, train_size: int | None = None,
              runnable: bool = True) -> Plan:
    """Check `cfg` against the world size and derive every batch and step count.

    `train_size` is the number of training images actually found; before the data is read,
    the dataset's published size is used (dry runs, early validation). `runnable=False`
    plans a layout that this version cannot run yet (dry runs, the planner), and leaves
    out the check that this machine has what the precision needs (apex).
    A config without DATASET is planned on the dataset its keys point to (data/infer.py); the
    CLI and build_engine resolve it from the data first.
    """
    if cfg.DATASET is None or (cfg.DATASET == "folder" and cfg.IMG_SIZE is None):
        cfg = infer_dataset(cfg, scan=False).config
    dataset = dataset_info(cfg)
    if train_size is None and dataset.train_size is not None:
        train_size = (cfg.data.synthetic_size if dataset.kind == "synthetic" else
                      dataset.train_size) - cfg.VAL_SPLIT
    size, name = resolve_model(cfg, dataset)
    _check_ffn_layout(cfg, size)
    dims = ParallelDims.from_config(cfg, world_size, size.heads, size.width, size.depth,
                                   runnable=runnable)
    dp = dims.data
    if cfg.parallel.data is not None and cfg.parallel.data != dp and runnable:
        raise ConfigError(f"parallel.data={cfg.parallel.data} but world size {world_size} / "
                          f"(pipeline x tensor = {dims.pipeline * dims.tensor}) gives {dp} "
                          f"data-parallel ranks: launch {cfg.parallel.data * dims.pipeline * dims.tensor}"
                          " processes or remove parallel.data")
    per_device, accum, global_batch = _batch_sizes(cfg, dp)
    dims.check_shapes(size.mlp_hidden, size.width, per_device)
    _check_pipeline_keys(cfg, dims, size, per_device)
    steps = warmup = None
    if train_size is not None:
        steps = train_size // dp // (per_device * accum)
        if steps == 0:
            raise ConfigError(f"global batch {global_batch} is larger than the {train_size} "
                              f"training images of {dataset.name}: lower TOTAL_BATCH_SIZE or "
                              "BATCH_SIZE")
        if cfg.LIMIT_TRAIN_BATCHES:
            steps = min(steps, cfg.LIMIT_TRAIN_BATCHES)
    _check_positive(cfg)
    if steps is not None:
        warmup = _warmup_steps(cfg, steps)
    precision = cfg.precision_name
    if runnable:  # a dry run plans the layout and lists these (commands/train.py)
        _check_precision_layout(precision, dims)
        _check_dropout_layout(cfg, dims, size)
        check_available(precision)
        _check_ema_layout(cfg, dims)
    if cfg.LR_SCHEDULE == "multistep" and not cfg.LR_MILESTONES:
        raise ConfigError("LR_SCHEDULE='multistep' needs LR_MILESTONES, e.g. (30, 60, 80) epochs")
    if list(cfg.LR_MILESTONES) != sorted(cfg.LR_MILESTONES) or any(
            not isinstance(m, (int, float)) or m < 0 for m in cfg.LR_MILESTONES):
        raise ConfigError(f"LR_MILESTONES={cfg.LR_MILESTONES!r} must be increasing epoch numbers")
    if cfg.dist_timeout <= 0:
        raise ConfigError(f"dist_timeout={cfg.dist_timeout} must be a positive number of seconds")
    _check_data(cfg, dataset, per_device * accum)
    peak_lr = scaled_lr(cfg.LEARNING_RATE, global_batch, cfg.LR_REFERENCE_BATCH, cfg.LR_SCALING)
    if cfg.MIN_LR > peak_lr:
        raise ConfigError(f"MIN_LR={cfg.MIN_LR} exceeds the peak LR {peak_lr:g}: lower MIN_LR")
    return Plan(model=size, model_name=name, dataset=dataset, dims=dims,
                per_device_batch=per_device, accumulation=accum, global_batch=global_batch,
                eval_batch=cfg.EVAL_BATCH_SIZE or 2 * per_device, steps_per_epoch=steps,
                total_steps=steps * cfg.NUM_EPOCHS if steps is not None else None,
                warmup_steps=warmup,
                precision=precision, peak_lr=peak_lr)


def _check_dropout_layout(cfg: Config, dims: ParallelDims, size: ViTSize) -> None:
    """Dropout under sequence parallelism needs even token shards (see docs/parallelism.md)."""
    if dims.sequence_parallel and cfg.DROP_RATE > 0 and size.seq_length % dims.tensor:
        raise ConfigError(
            f"sequence parallelism splits N={size.seq_length} tokens unevenly over "
            f"{dims.tensor} ranks, so dropout would draw a different number of random values "
            "on each rank and DropPath's per-image choices would stop agreeing across an "
            "image's token shards: set DROP_RATE=0 or parallel['tensor']['sequence_parallel']"
            "=False")


def _check_precision_layout(precision: str, dims: ParallelDims) -> None:
    """Precision modes that cannot hold DTensor parameters, refused with the reason."""
    if dims.pipeline > 1 and precision in ("fp16", "naive_fp16", "apex"):
        raise ConfigError(f"precision {precision!r} under pipeline parallelism (parallel."
                          f"pipeline={dims.pipeline}): not provided yet (the pipeline schedule runs each micro-batch's backward "
                          "itself, outside the loss scaler, and fp16 needs every stage to agree "
                          "on skipped steps): use precision='bf16' or 'fp32'")
    if precision == "apex" and (dims.tensor > 1 or dims.uses_fsdp):
        raise ConfigError("fp16 mode AMP_TYPE.APEX (apex O1) patches torch functions for plain "
                          "tensors, but tensor parallelism and FSDP2 hold DTensor parameters: "
                          "use fp16 = dict(mode=AMP_TYPE.TORCH) or precision = 'bf16'")
    if precision == "naive_fp16" and dims.uses_fsdp:
        how = f"zero stage {dims.zero_stage}" if dims.zero_stage else \
            "data parallelism under tensor parallelism"
        raise ConfigError(f"fp16 mode AMP_TYPE.NAIVE keeps fp32 master copies beside an fp16 "
                          f"model, but {how} runs on FSDP2, whose sharded fp32 parameters are "
                          "the masters: use fp16 = dict(mode=AMP_TYPE.TORCH) or precision = "
                          "'bf16'")


def _check_ema_layout(cfg: Config, dims: ParallelDims) -> None:
    """train/ema.py keeps a whole replica of the weights per rank: single process and DDP
    (ZeRO-1 included), where every rank holds every weight."""
    if not cfg.EMA_DECAY:
        return
    sharded = ("parallel.tensor" if dims.tensor > 1 else "parallel.pipeline"
               if dims.pipeline > 1 else f"zero stage {dims.zero_stage} (FSDP)"
               if dims.uses_fsdp else None)
    if sharded:
        raise ConfigError(f"EMA_DECAY averages whole weights, which {sharded} shards: not "
                          "provided for this layout, train without EMA_DECAY or on DDP")


def _check_data(cfg: Config, dataset: DatasetInfo, loader_batch: int) -> None:
    """Combinations of data keys that cannot work, before any data is read."""
    crop = cfg.TRAIN_CROP or dataset.train_crop
    per_image = cfg.RANDAUGMENT is not None or cfg.AUTOAUGMENT is not None  # policy.py
    if cfg.RANDAUGMENT is not None and cfg.AUTOAUGMENT is not None:
        raise ConfigError("both RANDAUGMENT and AUTOAUGMENT are set: keep one")
    if per_image and cfg.data.pipeline == "dali":
        raise ConfigError("RANDAUGMENT/AUTOAUGMENT are not in the DALI pipeline: use "
                          "data.pipeline='device' or 'dataloader' (or 'auto')")
    if cfg.RANDOM_ERASING and cfg.data.pipeline == "dali":
        raise ConfigError("RANDOM_ERASING is not in the DALI pipeline: use "
                          "data.pipeline='device' or 'dataloader' (or 'auto')")
    if cfg.data.pipeline == "dali" and crop == "pad":
        raise ConfigError("data.pipeline='dali' does random resized crops, not padded crops: "
                          "set TRAIN_CROP='rrc' or use data.pipeline='device'")
    if (cfg.MIXUP_ALPHA > 0 or cfg.CUTMIX_ALPHA > 0) and loader_batch % 2:
        raise ConfigError(f"Mixup/CutMix pair neighbouring images but the per-device batch "
                          f"{loader_batch} is odd: make BATCH_SIZE (x accumulation) even")


def _warmup_steps(cfg: Config, steps_per_epoch: int) -> int:
    if cfg.WARMUP_STEPS is not None:
        if cfg.WARMUP_EPOCHS:
            raise ConfigError(f"both WARMUP_STEPS={cfg.WARMUP_STEPS} and WARMUP_EPOCHS="
                              f"{cfg.WARMUP_EPOCHS} are set: keep one")
        warmup = cfg.WARMUP_STEPS
    else:
        warmup = round(cfg.WARMUP_EPOCHS * steps_per_epoch)
    if warmup > steps_per_epoch * cfg.NUM_EPOCHS:
        raise ConfigError(f"warmup ({warmup} steps) is longer than training "
                          f"({steps_per_epoch * cfg.NUM_EPOCHS} steps): lower WARMUP_EPOCHS "
                          "or WARMUP_STEPS")
    return warmup


def resolve_model(cfg: Config, dataset: DatasetInfo) -> tuple[ViTSize, str]:
    """The model size: a named variant with any size keys applied on top, all five size keys
    alone, or the seeds' model for the resolution (data/infer.default_model) with any size keys
    given applied on top."""
    given = {k: getattr(cfg, k) for k in _SIZE_KEYS if getattr(cfg, k) is not None}
    if cfg.MODEL is not None:
        if cfg.MODEL not in VARIANTS:
            raise ConfigError(f"MODEL={cfg.MODEL!r} is not a known model{suggest(cfg.MODEL, VARIANTS)}"
                              ": run `vitscale models` for the list, or give the size keys "
                              f"{', '.join(_SIZE_KEYS)} with MODEL = None")
        base, name = get_variant(cfg.MODEL), cfg.MODEL
    elif len(given) == len(_SIZE_KEYS):
        base, name = ViTSize(width=0, depth=0, heads=1, mlp_ratio=4.0, patch=1, img_size=1), "custom"
    else:
        name = default_model(cfg.IMG_SIZE or dataset.img_size)
        base = get_variant(name)
    size = with_overrides(
        base, img_size=cfg.IMG_SIZE, patch=cfg.PATCH_SIZE, width=cfg.HIDDEN_SIZE,
        depth=cfg.DEPTH, heads=cfg.NUM_HEADS, mlp_ratio=cfg.MLP_RATIO, qkv_bias=cfg.QKV_BIAS,
        num_classes=cfg.NUM_CLASSES or dataset.num_classes,
        **{field: getattr(cfg, key) for key, field in FFN_KEYS.items()})
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
    _check_feed_forward(cfg, size)
    if cfg.SEQ_LENGTH is not None and cfg.SEQ_LENGTH != size.seq_length:
        raise ConfigError(f"SEQ_LENGTH={cfg.SEQ_LENGTH} does not match the model's "
                          f"(IMG_SIZE // PATCH_SIZE)**2 + 1 = {size.seq_length}: fix or remove it")
    return size, name


def _check_feed_forward(cfg: Config, size: ViTSize) -> None:
    """The feed-forward keys agree with each other and with FFN (docs/configuration.md)."""
    fff_keys = [k for k in FFN_KEYS if k.startswith("FFF_") and getattr(cfg, k) is not None]
    if size.ffn != "fff" and fff_keys:
        raise ConfigError(f"{fff_keys[0]} is set but FFN is {size.ffn!r}: set FFN = 'fff' to use "
                          f"fast feed-forward trees, or remove {fff_keys[0]}")
    if size.ffn == "fff" and cfg.MLP_DIM is not None:
        raise ConfigError("MLP_DIM sizes a dense MLP but FFN is 'fff': size the trees with "
                          "FFF_DEPTH and FFF_TREES (FFF_DENSE adds a dense MLP beside them)")
    if size.ffn == "fff" and size.fff_depth is None:
        raise ConfigError("FFN='fff' needs FFF_DEPTH, the depth of each tree: e.g. FFF_DEPTH = 7 "
                          "(255 neurons, about an MLP of width 256)")
    for key, low in (("MLP_DIM", 1), ("FFN_PER_BLOCK", 1), ("FFF_DEPTH", 0), ("FFF_TREES", 1),
                     ("FFF_FANOUT", 2), ("FFF_DENSE", 0)):
        value = getattr(size, FFN_KEYS[key])
        if value is not None and value < low:
            raise ConfigError(f"{key}={value!r} must be at least {low}")
    if size.ffn != "fff":
        return
    neurons = tree_neurons(size.fff_depth, size.fff_fanout) * size.fff_trees
    if neurons > _MAX_FFF_NEURONS:
        raise ConfigError(f"FFF_DEPTH={size.fff_depth} at fan-out {size.fff_fanout} x "
                          f"{size.fff_trees} trees is {neurons:,} neurons per layer, more than "
                          f"{_MAX_FFF_NEURONS:,}: lower FFF_DEPTH or FFF_FANOUT")
    lr = size.fff_lr_depth
    if lr is not None and (len(lr) not in (2, size.fff_depth + 1) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in lr)):
        raise ConfigError(f"FFF_LR_DEPTH={lr!r} needs {size.fff_depth + 1} positive multipliers "
                          "(one per level, root first) or 2 (root, leaves), e.g. (0.1, 1.0)")


def _check_ffn_layout(cfg: Config, size: ViTSize) -> None:
    """Tensor parallelism shards dense MLPs (fc1 by columns, fc2 by rows); FFF trees it refuses."""
    if size.ffn == "fff" and cfg.parallel.tensor.size > 1:
        raise ConfigError(f"FFN='fff' (FFF_DEPTH={size.fff_depth}) cannot run with tensor "
                          f"parallelism (parallel.tensor.size={cfg.parallel.tensor.size}): a "
                          "token's path visits one node per level, so split trees would need an "
                          "exchange per level; use FFN='mlp' with tensor parallelism, or data "
                          "parallelism / ZeRO for FFF")


def pipeline_micro_batches(cfg: Config, dims: ParallelDims) -> int:
    """M: into how many micro-batches the pipeline splits each data-parallel rank's batch
    (per accumulation step): NUM_MICRO_BATCHES, by default the pipeline size (as seed 003's
    configs set it); 1 without a pipeline."""
    if dims.pipeline == 1:
        return 1
    return cfg.NUM_MICRO_BATCHES or dims.pipeline


def _check_pipeline_keys(cfg: Config, dims: ParallelDims, size: ViTSize, per_device: int) -> None:
    """NUM_MICRO_BATCHES and TENSOR_SHAPE (seed 003's pipeline keys) against the layout: the
    per-device batch splits into NUM_MICRO_BATCHES micro-batches, and each stage sends
    (micro-batch / batch split, SEQ_LENGTH, HIDDEN_SIZE / hidden split) activations, where the
    tensor mode splits the batch and width as Colossal-AI's layers do (1D: none; 2D: q each;
    2.5D: batch d q, width q; 3D: batch q^2, width q). Micro-batches are cut from each grid
    rank's own share of the batch, so that share must split into them too."""
    if dims.pipeline == 1:
        return  # listed as ignored when the config is read (colossal.py)
    micro = pipeline_micro_batches(cfg, dims)
    if micro < 1 or per_device % micro:
        default = "" if cfg.NUM_MICRO_BATCHES else f" (the default: the pipeline size)"
        raise ConfigError(f"NUM_MICRO_BATCHES={micro}{default} does not divide the per-device "
                          f"batch {per_device}: choose a divisor of {per_device}")
    share = per_device // dims.batch_split   # a grid rank's images (check_shapes: divisible)
    if share % micro:
        raise ConfigError(f"NUM_MICRO_BATCHES={micro} does not divide the {share} images each "
                          f"rank of the {dims.tensor_mode} grid reads per step (per-device batch "
                          f"{per_device} / batch split {dims.batch_split}): choose a divisor of "
                          f"{share}")
    if cfg.TENSOR_SHAPE is None:
        return
    expected = (per_device // micro // dims.batch_split, size.seq_length,
                size.width // dims.grid_side)
    if tuple(cfg.TENSOR_SHAPE) != expected:
        raise ConfigError(f"TENSOR_SHAPE={tuple(cfg.TENSOR_SHAPE)} differs from the activations "
                          f"each pipeline stage sends in this layout, {expected} (micro-batch, "
                          "tokens, width per tensor rank): fix or remove TENSOR_SHAPE")


def _batch_sizes(cfg: Config, dp: int) -> tuple[int, int, int]:
    """(per-device batch, accumulation steps, global batch)."""
    accum = cfg.gradient_accumulation
    if accum is not None and accum < 1:
        raise ConfigError(f"gradient_accumulation={accum} must be at least 1")
    if cfg.TOTAL_BATCH_SIZE is None and cfg.BATCH_SIZE is None:
        raise ConfigError("neither BATCH_SIZE nor TOTAL_BATCH_SIZE is set: set one, e.g. "
                          "BATCH_SIZE = 128 (per device) or TOTAL_BATCH_SIZE = 512 (global)")
    if cfg.BATCH_SIZE is not None and cfg.BATCH_SIZE < 1:
        raise ConfigError(f"BATCH_SIZE={cfg.BATCH_SIZE} must be at least 1")
    if cfg.TOTAL_BATCH_SIZE is None:
        accum = accum or 1
        return cfg.BATCH_SIZE, accum, cfg.BATCH_SIZE * dp * accum
    total = cfg.TOTAL_BATCH_SIZE
    if accum is None and cfg.BATCH_SIZE is not None:  # derive accumulation (seed 001)
        if total < 1 or total % (cfg.BATCH_SIZE * dp):
            raise ConfigError(f"TOTAL_BATCH_SIZE={total} is not divisible by BATCH_SIZE "
                              f"{cfg.BATCH_SIZE} x data-parallel size {dp} = {cfg.BATCH_SIZE * dp}"
                              f": choose a multiple of {cfg.BATCH_SIZE * dp}, or set "
                              "gradient_accumulation")
        return cfg.BATCH_SIZE, total // (cfg.BATCH_SIZE * dp), total
    accum = accum or 1
    if total < 1 or total % (dp * accum):
        raise ConfigError(f"TOTAL_BATCH_SIZE={total} is not divisible by data-parallel size "
                          f"{dp} x gradient_accumulation {accum} = {dp * accum}: choose a multiple "
                          f"of {dp * accum}")
    per_device = total // (dp * accum)
    if cfg.BATCH_SIZE is not None and cfg.BATCH_SIZE not in (per_device, total // accum):
        raise ConfigError(f"BATCH_SIZE={cfg.BATCH_SIZE} contradicts TOTAL_BATCH_SIZE={total} "
                          f"(per-device batch {per_device}, {total // accum} per micro-step): "
                          "remove BATCH_SIZE or make it agree")
    return per_device, accum, total


def _check_positive(cfg: Config) -> None:
    checks = [("LEARNING_RATE", cfg.LEARNING_RATE > 0), ("NUM_EPOCHS", cfg.NUM_EPOCHS >= 1),
              ("WARMUP_STEPS", cfg.WARMUP_STEPS is None or cfg.WARMUP_STEPS >= 0),
              ("LR_REFERENCE_BATCH", cfg.LR_REFERENCE_BATCH is None or cfg.LR_REFERENCE_BATCH > 0),
              ("LR_GAMMA", cfg.LR_GAMMA > 0), ("MOMENTUM", 0 <= cfg.MOMENTUM < 1),
              ("LARS_ETA", cfg.LARS_ETA > 0), ("EPS", cfg.EPS is None or cfg.EPS >= 0),
              ("BETAS", all(0 <= b < 1 for b in cfg.BETAS)),
              ("WEIGHT_DECAY", cfg.WEIGHT_DECAY >= 0), ("WARMUP_EPOCHS", cfg.WARMUP_EPOCHS >= 0),
              ("LABEL_SMOOTHING", 0 <= cfg.LABEL_SMOOTHING < 1),
              ("LOG_EVERY", cfg.LOG_EVERY >= 1), ("EVAL_EVERY", cfg.EVAL_EVERY >= 1),
              ("MIN_LR", cfg.MIN_LR >= 0),
              ("clip_grad_norm", cfg.clip_grad_norm is None or cfg.clip_grad_norm > 0),
              ("CROP_PADDING", cfg.CROP_PADDING >= 0), ("VAL_SPLIT", cfg.VAL_SPLIT >= 0),
              ("EARLY_STOPPING_PATIENCE",
               cfg.EARLY_STOPPING_PATIENCE is None or cfg.EARLY_STOPPING_PATIENCE >= 1),
              ("RRC_SCALE", 0 < cfg.RRC_SCALE[0] <= cfg.RRC_SCALE[1] <= 1),
              ("RRC_RATIO", 0 < cfg.RRC_RATIO[0] <= cfg.RRC_RATIO[1]),
              ("EVAL_CROP_PCT", cfg.EVAL_CROP_PCT is None or 0 < cfg.EVAL_CROP_PCT <= 1),
              ("RANDAUGMENT", cfg.RANDAUGMENT is None or (
                  cfg.RANDAUGMENT[0] >= 1 and 0 <= cfg.RANDAUGMENT[1] <= 30)),
              ("RANDOM_ERASING", 0 <= cfg.RANDOM_ERASING <= 1),
              ("MIXUP_ALPHA", cfg.MIXUP_ALPHA >= 0), ("CUTMIX_ALPHA", cfg.CUTMIX_ALPHA >= 0),
              ("EMA_DECAY", cfg.EMA_DECAY is None or 0 <= cfg.EMA_DECAY < 1),
              ("MIX_PROB", 0 <= cfg.MIX_PROB <= 1),
              ("MIX_SWITCH_PROB", 0 <= cfg.MIX_SWITCH_PROB <= 1),
              ("MIXUP_OFF_EPOCH", cfg.MIXUP_OFF_EPOCH is None or cfg.MIXUP_OFF_EPOCH >= 0),
              ("data.num_workers", cfg.data.num_workers is None or cfg.data.num_workers >= 0),
              ("data.store_size", cfg.data.store_size is None or cfg.data.store_size >= 1),
              ("data.memory_fraction", 0 < cfg.data.memory_fraction <= 1),
              ("data.test_fraction", 0 < cfg.data.test_fraction < 1),
              ("data.synthetic_size", cfg.data.synthetic_size >= 1),
              ("checkpoints.keep", cfg.checkpoints.keep >= 1),
              ("checkpoints.every_epochs",
               cfg.checkpoints.every_epochs is None or cfg.checkpoints.every_epochs >= 1),
              ("checkpoints.every_steps",
               cfg.checkpoints.every_steps is None or cfg.checkpoints.every_steps >= 1)]
    for key, ok in checks:
        if not ok:
            value = cfg
            for part in key.split("."):
                value = getattr(value, part)
            raise ConfigError(f"{key}={value!r} is out of range: see docs/configuration.md for "
                              "its allowed values")
