"""Typed, validated configuration from a Python config file (the seeds' format).

A config file is plain Python. Upper-case names are hyperparameters (BATCH_SIZE, LEARNING_RATE,
HIDDEN_SIZE, ...); lower-case names are framework sections (parallel, fp16,
gradient_accumulation, clip_grad_norm). `AMP_TYPE` is defined inside the file without an import.
Names that start with an underscore, and names bound only by imports, are the file's own helpers.
Colossal-AI's config files load as they are (`from colossalai.amp import AMP_TYPE`, its key
spellings, `os.environ['DATA']` unset): colossal.py serves the imports and translates the keys,
and `read_config` returns the notes on what it translated, checked or ignored.

    vitscale train configs/cifar10/vit_lite_7_4.py --set LEARNING_RATE=1e-3 --set parallel.pipeline=1

`--set KEY=VALUE` values are written as in the file: literals, dict(...), AMP_TYPE.X and constant
arithmetic (a bare word is taken as a string). A top-level key
set this way is pinned *before* the file runs: the file's own assignment to it is skipped, so
derived lines such as `BATCH_SIZE = TOTAL_BATCH_SIZE // gradient_accumulation` see the new value.

Unknown keys, wrong types and impossible combinations raise ConfigError with one line that names
the key and the fix, before any work is done.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import enum
import json
import logging
import math
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, Optional, Union

from .colossal import COLOSSAL_KEYS, ColossalName, Notes, config_builtins, translate
from .errors import ConfigError
from .precision import AMP_TYPE

log = logging.getLogger(__name__)

TensorMode = Literal["1d", "2d", "2.5d", "3d"]


@dataclass
class TensorParallelConfig:
    """`parallel['tensor']`: tensor-parallel mode and size (seed 003)."""

    mode: Optional[TensorMode] = None
    size: int = 1
    depth: int = 1  # 2.5D (Tesseract) only: size = depth * q^2
    # 1D only. Sequence parallelism (Korthikanti et al. 2022): LayerNorms, dropout and the
    # residual stream hold 1/size of the tokens instead of all of them on every rank.
    sequence_parallel: bool = False
    # 1D only. 'replicated': every rank computes all logits; 'class_parallel': the classifier
    # is split column-wise over classes and the loss runs on the shards (loss_parallel).
    head: Literal["replicated", "class_parallel"] = "replicated"


@dataclass
class ParallelConfig:
    """`parallel = dict(pipeline=P, tensor=dict(mode=M, size=T))`; data size = world / (P*T)."""

    pipeline: int = 1
    tensor: TensorParallelConfig = field(default_factory=TensorParallelConfig)
    # Pipeline parallelism (parallel/pipeline.py; docs/parallelism.md "Pipelines"): which
    # torch.distributed.pipelining schedule runs the NUM_MICRO_BATCHES micro-batches; how the
    # blocks are split into stages ('uniform' layers, 'balanced' parameters, or a tuple of
    # blocks per stage in `pipeline_stages`); and how many stages (chunks) each rank holds
    # (interleaved schedules: 2 or more; zbv_zero_bubble: exactly 2, in a V).
    pipeline_schedule: Literal["gpipe", "1f1b", "interleaved_1f1b", "interleaved_zero_bubble",
                               "zbv_zero_bubble"] = "1f1b"
    pipeline_partition: Literal["uniform", "balanced"] = "uniform"
    pipeline_stages: Optional[tuple] = None
    pipeline_chunks: int = 1
    # The data-parallel size the file expects (Colossal-AI's `parallel = dict(data=4, ...)`);
    # None: world / (pipeline x tensor). Set, a launched world must give exactly this.
    data: Optional[int] = None


@dataclass
class Fp16Config:
    """`fp16 = dict(mode=AMP_TYPE.TORCH, ...)`: mode and dynamic loss-scaler options."""

    mode: AMP_TYPE = AMP_TYPE.TORCH
    init_scale: float = 2.0**16
    growth_factor: float = 2.0
    backoff_factor: float = 0.5
    growth_interval: int = 1000
    hysteresis: int = 2          # naive mode: overflows tolerated before backing off
    min_scale: float = 1.0       # naive mode
    max_scale: float = 2.0**24   # naive mode


@dataclass
class ZeroConfig:
    """`zero = dict(stage=1|2|3)`: shard optimizer state (1), also gradients (2), also
    parameters between uses (3) across data-parallel ranks (see parallel/data.py)."""

    stage: Literal[1, 2, 3] = 2


@dataclass
class CheckpointConfig:
    """`checkpoints = dict(every_epochs=1, every_steps=None, keep=2)` (see train/checkpoint.py)."""

    every_epochs: Optional[int] = 1      # save after every N epochs (and after the last)
    every_steps: Optional[int] = None    # also save every N optimizer steps
    keep: int = 2                        # newest complete checkpoints kept


@dataclass
class DataConfig:
    """`data = dict(pipeline='auto', ...)`: how images reach the device (docs/data.md)."""

    # 'auto': device-resident when the decoded split fits in memory (RandAugment and
    # AutoAugment run there in batches, data/policy.py); else the DataLoader with workers.
    pipeline: Literal["auto", "device", "dataloader", "dali"] = "auto"
    num_workers: Optional[int] = None        # DataLoader / decoding workers; default: CPU count (<= 8)
    on_bad_image: Literal["error", "skip"] = "error"   # unreadable file: stop naming it, or skip
    store_size: Optional[int] = None         # device pipeline: side of the stored train images
    memory_fraction: float = 0.5             # of RAM (CPU) or GPU memory the device pipeline may use
    test_fraction: float = 0.2               # caltech101: share of each class held out as test
    dali_device: Literal["auto", "cpu", "gpu"] = "auto"  # where DALI decodes and augments
    synthetic_size: int = 10_240             # training images of DATASET='synthetic'
    # Where the data is when --data is not given (before $DATA): Colossal's dali.root and
    # train_data.dataset.root translate to it.
    root: Optional[str] = None


@dataclass
class Config:
    # ---- model: a named variant (vitscale.models.VARIANTS) and/or explicit sizes ----
    MODEL: Optional[str] = None          # e.g. 'vit_lite_7_4', 'vit_small_patch16_224'
    IMG_SIZE: Optional[int] = None       # input resolution in pixels (square)
    PATCH_SIZE: Optional[int] = None
    HIDDEN_SIZE: Optional[int] = None
    DEPTH: Optional[int] = None
    NUM_HEADS: Optional[int] = None
    MLP_RATIO: Optional[float] = None
    # Feed-forward sublayer (models/ffn.py, docs/experiments.md); None keeps the MODEL's.
    MLP_DIM: Optional[int] = None        # hidden width of the MLP, instead of MLP_RATIO x width
    FFN: Optional[Literal["mlp", "fff"]] = None  # dense MLP or fast feed-forward trees
    FFN_PER_BLOCK: Optional[int] = None  # feed-forward sublayers per block, each with a residual
    FFF_DEPTH: Optional[int] = None      # FFN='fff': tree depth d (levels 0..d)
    FFF_TREES: Optional[int] = None      # FFN='fff': parallel trees (default 1)
    FFF_FANOUT: Optional[int] = None     # FFN='fff': children per node (default 2)
    FFF_DENSE: Optional[int] = None      # FFN='fff': width of a dense MLP beside the trees
    FFF_LR_DEPTH: Optional[tuple] = None  # FFN='fff': LR multipliers root..leaves, or 2 values
    FFF_EVAL: Optional[Literal["dense", "conditional"]] = None  # FFN='fff': evaluation path
    NUM_CLASSES: Optional[int] = None    # defaults to the dataset's class count
    QKV_BIAS: Optional[bool] = None
    DROP_RATE: float = 0.0
    DROP_PATH_RATE: float = 0.0
    CHECKPOINT: bool = False             # activation checkpointing of every block
    INIT_FROM: Optional[str] = None      # weights to start from: a vitscale export or timm file

    # ---- data ----
    # None: inferred from --data, NUM_CLASSES and IMG_SIZE (data/infer.py); 'folder' is your
    # own ImageFolder tree with any number of classes.
    DATASET: Optional[Literal["cifar10", "cifar100", "imagenet1k", "imagenette", "caltech101",
                              "synthetic", "folder"]] = None
    TRAIN_CROP: Optional[Literal["pad", "rrc", "none"]] = None  # default: the dataset's
    CROP_PADDING: int = 4                # 'pad': random crop with this zero padding
    RRC_SCALE: tuple[float, float] = (0.08, 1.0)     # 'rrc': area fraction of the crop
    RRC_RATIO: tuple[float, float] = (3 / 4, 4 / 3)  # 'rrc': aspect ratio of the crop
    HFLIP: bool = True                   # random horizontal flip
    RANDAUGMENT: Optional[tuple[int, int]] = None    # (num_ops, magnitude), e.g. (2, 9)
    AUTOAUGMENT: Optional[Literal["imagenet", "cifar10", "svhn"]] = None
    RANDOM_ERASING: float = 0.0          # probability of erasing a box per image; 0 = off
    RANDOM_ERASING_VALUE: Literal["zero", "random"] = "zero"  # box fill: 0 or N(0, 1) pixels
    EVAL_CROP_PCT: Optional[float] = None  # eval: resize to IMG_SIZE / this, centre crop
    MIXUP_ALPHA: float = 0.0             # Beta(alpha, alpha) mixing weight; 0 = off
    CUTMIX_ALPHA: float = 0.0            # 0 = off
    MIX_PROB: float = 1.0                # share of batches mixed
    MIX_SWITCH_PROB: float = 0.5         # CutMix instead of Mixup, when both are on
    MIXUP_OFF_EPOCH: Optional[int] = None  # mixing stops after this many epochs
    VAL_SPLIT: int = 0                   # images held out of train for model selection

    # ---- optimization; batch sizes in images ----
    BATCH_SIZE: Optional[int] = None        # per device per micro-step (seed 003's meaning)
    TOTAL_BATCH_SIZE: Optional[int] = None  # global per optimizer step (seed 000/001)
    LEARNING_RATE: float = 1e-3             # peak LR (at LR_REFERENCE_BATCH when that is set)
    LR_REFERENCE_BATCH: Optional[int] = None  # scale LEARNING_RATE from this global batch
    LR_SCALING: Literal["linear", "sqrt"] = "linear"
    LR_SCHEDULE: Literal["cosine", "linear", "multistep", "constant"] = "cosine"
    LR_MILESTONES: tuple = ()               # multistep: epochs at which LR *= LR_GAMMA
    LR_GAMMA: float = 0.1
    MIN_LR: float = 0.0                     # LR at the end of the cosine or linear decay
    WEIGHT_DECAY: float = 0.05
    OPTIMIZER: Literal["adamw", "sgd", "lamb", "lars"] = "adamw"
    BETAS: tuple[float, float] = (0.9, 0.999)  # adamw, lamb
    EPS: Optional[float] = None             # default: adamw 1e-8, lamb 1e-6, lars 0
    MOMENTUM: float = 0.9                   # sgd, lars
    NESTEROV: bool = False                  # sgd
    LARS_ETA: float = 1e-3                  # lars trust coefficient
    LAMB_BIAS_CORRECTION: bool = True       # False: LAMB v3 as in Colossal-AI
    NUM_EPOCHS: int = 10
    WARMUP_EPOCHS: float = 0.0
    WARMUP_STEPS: Optional[int] = None      # instead of WARMUP_EPOCHS
    LABEL_SMOOTHING: float = 0.0
    SEED: int = 42
    EMA_DECAY: Optional[float] = None       # EMA of the weights, evaluated and exported; None: off
    EMA_WARMUP: bool = True                 # decay min(EMA_DECAY, (1+t)/(10+t)) at step t (train/ema.py)

    # ---- loop and logging ----
    LOG_EVERY: int = 50                     # optimizer steps between logged train metrics
    EVAL_EVERY: int = 1                     # epochs between test evaluations
    EVAL_BATCH_SIZE: Optional[int] = None   # per device; default 2 x BATCH_SIZE
    TTA_FLIP: bool = False                  # eval: average the logits of each image and its mirror
    LIMIT_TRAIN_BATCHES: Optional[int] = None  # cap optimizer steps per epoch (quick runs)
    LIMIT_EVAL_BATCHES: Optional[int] = None   # cap evaluation batches (quick runs)
    SELECTION_METRIC: Literal["acc1", "loss"] = "acc1"  # best model: on val, else on test
    EARLY_STOPPING_PATIENCE: Optional[int] = None       # evaluations without improvement

    # ---- helper names the seeds' Colossal-AI configs define for their own scripts ----
    TENSOR_PARALLEL_SIZE: Optional[int] = None
    TENSOR_PARALLEL_MODE: Optional[str] = None
    TESSERACT_DEPTH: Optional[int] = None
    SUMMA_DIM: Optional[int] = None
    SEQ_LENGTH: Optional[int] = None
    NUM_MICRO_BATCHES: Optional[int] = None
    TENSOR_SHAPE: Optional[tuple] = None
    LOG_PATH: Optional[str] = None

    # ---- framework sections (lower case, as in Colossal-AI) ----
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    fp16: Optional[Fp16Config] = None
    precision: Optional[Literal["fp32", "fp16", "bf16", "naive_fp16", "pure_bf16", "apex"]] = None
    gradient_accumulation: Optional[int] = None  # default 1, or derived (see plan.py)
    clip_grad_norm: Optional[float] = None  # max global gradient norm; None or 0 = off
    compile: bool = False                   # torch.compile every block
    tf32: bool = True                       # fp32 matmuls on tensor cores (Ampere and newer)
    cudnn_benchmark: bool = True
    cudnn_deterministic: bool = False
    zero: Optional[ZeroConfig] = None       # None: DDP (the seeds' "vanilla" data parallel)
    dist_timeout: float = 300.0             # seconds any rank waits for another before failing
    checkpoints: CheckpointConfig = field(default_factory=CheckpointConfig)
    data: DataConfig = field(default_factory=DataConfig)
    tensorboard: bool = True                # TensorBoard events in <run>/tensorboard
    report: bool = True                     # PNG plots + report.html in <run> at the end

    def to_dict(self) -> dict[str, Any]:
        return _to_plain(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_python(self) -> str:
        """A config file that reproduces this config exactly (saved with every run)."""
        lines = ["# Resolved vitscale config: `vitscale train <this file>` reproduces the run."]
        for f in fields(self):
            lines.append(f"{f.name} = {_py_repr(getattr(self, f.name))}")
        return "\n".join(lines) + "\n"

    @property
    def precision_name(self) -> str:
        from .precision import resolve_precision_name
        return resolve_precision_name(self.precision, self.fp16.mode if self.fp16 else None)


# --------------------------------------------------------------------------------------------
# Loading


@dataclass
class LoadedConfig:
    """A config file's typed Config, and what loading did with its keys (colossal.Notes):
    Colossal-AI spellings translated, keys with no meaning here ignored, unset variables."""

    config: Config
    notes: Notes

    def lines(self) -> list[str]:
        return self.notes.lines()


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Run a config file, apply `KEY=VALUE` overrides, and return the typed Config."""
    return read_config(path, overrides).config


def read_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> LoadedConfig:
    """`load_config`, also returning the notes on translated and ignored keys (printed by the
    CLI at start and by --dry-run)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist: pass the path of a .py config, "
                          "e.g. configs/cifar10/quick_cpu.py")
    parsed = [_parse_override(o) for o in overrides]
    pinned = {k: v for k, v in parsed if "." not in k}
    nested = [(k, v) for k, v in parsed if "." in k]
    notes = Notes()
    namespace, tesseract_depth = _run_config_file(path, pinned, notes)
    for key, value in nested:
        _set_nested(namespace, key, value)
    values, notes = translate(namespace, tesseract_depth=tesseract_depth, notes=notes)
    cfg = _config_from_values(values, source=str(path))
    for line in notes.lines():
        log.debug("%s: %s", path, line)
    return LoadedConfig(cfg, notes)


def apply_overrides(values: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict:
    """`values` with `KEY=VALUE` overrides applied (dotted keys reach into sections)."""
    namespace = {k: (dict(v) if isinstance(v, dict) else v) for k, v in values.items()}
    for key, value in (_parse_override(o) for o in overrides):
        if "." in key:
            _set_nested(namespace, key, value)
        else:
            namespace[key] = value
    return namespace


def config_from_dict(values: dict[str, Any], source: str = "config") -> Config:
    """Build and type-check a Config from a dict of upper- and lower-case keys (Colossal-AI
    spellings are translated as in a config file)."""
    translated, notes = translate(values)
    for line in notes.lines():
        log.debug("%s: %s", source, line)
    return _config_from_values(translated, source)


def _config_from_values(values: dict[str, Any], source: str) -> Config:
    unknown = _unknown_keys(Config, values, prefix="")
    if unknown:
        # Every unknown key at once, so a file from elsewhere is fixed in one pass.
        listed = "; ".join(f"{key}{hint}" for key, hint in unknown)
        raise ConfigError(f"{source}: unknown key{'s' if len(unknown) > 1 else ''} {listed}: "
                          "see docs/configuration.md")
    for key, value in values.items():
        foreign = _colossal_value(value)
        if foreign is not None:
            raise ConfigError(f"{source}: {key} uses {foreign}, which vitscale does not provide "
                              "(only AMP_TYPE and ParallelMode come from colossalai): set it "
                              "with vitscale's keys")
    cfg = _build_dataclass(Config, values, prefix="")
    _normalize(cfg)
    return cfg


def _unknown_keys(cls, values: dict[str, Any], prefix: str) -> list[tuple[str, str]]:
    """(dotted key, suggestion) of every key of `values` (and of nested sections) that `cls`
    does not have."""
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = []
    for key, value in values.items():
        if key not in known:
            hint = suggest(key, known) or (_suggest_key(key) if cls is Config else "")
            unknown.append((f"{prefix}{key}" if prefix else repr(key), hint))
            continue
        section = _dataclass_of(hints[key])
        if section is not None and isinstance(value, dict):
            if section is ParallelConfig and isinstance(value.get("pipeline"), dict):
                value = {**value, "pipeline": value["pipeline"].get("size", 1)}  # Colossal form
            unknown += _unknown_keys(section, value, prefix=f"{prefix}{key}.")
    return unknown


def _suggest_key(key: str) -> str:
    """The nearest vitscale key, else the nearest Colossal-AI spelling vitscale translates."""
    return suggest(key, {f.name for f in fields(Config)}) or suggest(key, COLOSSAL_KEYS)


def _dataclass_of(tp: Any):
    """The dataclass a field's type holds (also inside Optional[...]), or None."""
    if dataclasses.is_dataclass(tp):
        return tp
    if typing.get_origin(tp) in (Union, types.UnionType):
        return next((a for a in typing.get_args(tp) if dataclasses.is_dataclass(a)), None)
    return None


def _colossal_value(value: Any) -> str | None:
    if isinstance(value, ColossalName):
        return repr(value)
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return next((f for f in map(_colossal_value, value) if f is not None), None)
    return None


def _run_config_file(path: Path, pinned: dict[str, Any], notes: Notes
                     ) -> tuple[dict[str, Any], bool]:
    """The file's names after running it, and whether it passes DEPTH as the Tesseract depth."""
    source = path.read_text()
    try:
        tree = ast.parse(source, filename=str(path))
    except SyntaxError as e:
        raise ConfigError(f"{path}:{e.lineno}: syntax error in config file: {e.msg}") from None
    known = {f.name for f in fields(Config)} | COLOSSAL_KEYS
    for key in pinned:
        if key not in known:
            raise ConfigError(f"--set {key}: unknown key{_suggest_key(key)}")
    imported, assigned = _bound_names(tree)
    tesseract_depth = _passes_depth_as_tesseract_depth(tree)
    tree.body = [node for node in tree.body if not _assigns_only(node, set(pinned))]
    namespace: dict[str, Any] = {"AMP_TYPE": AMP_TYPE, "__file__": str(path),
                                 "__name__": "__vitscale_config__",
                                 "__builtins__": config_builtins(notes), **pinned}
    try:
        exec(compile(tree, str(path), "exec"), namespace)
    except ImportError as e:
        lineno = _traceback_line(e, str(path))
        raise ConfigError(f"{path}{':' + str(lineno) if lineno else ''}: import of "
                          f"{e.name or str(e)!r} failed ({e}): install it or remove the import "
                          "(colossalai, titans and the standard library need no install)") from None
    except Exception as e:  # the config file's own code failed
        lineno = _traceback_line(e, str(path))
        unset = [f"${n}" for n in notes.unset_env if f"${n}" in str(e)]
        hint = (f": it reads {unset[0]}, which is not set; set it (e.g. "
                f"{unset[0][1:]}=...) before loading" if unset else "")
        raise ConfigError(f"{path}{':' + str(lineno) if lineno else ''}: config file raised "
                          f"{type(e).__name__}: {e}{hint}") from None
    # Names bound only by imports are the file's tools (AMP_TYPE, math, a stray
    # `from tkinter import HIDDEN`), not keys -- unless they name a key
    # (`from base import LEARNING_RATE` sets it).
    helpers = imported - assigned - known
    return {k: v for k, v in namespace.items()
            if not k.startswith("_") and k != "AMP_TYPE" and k not in helpers
            and not isinstance(v, (types.ModuleType, type, types.FunctionType))}, tesseract_depth


def _bound_names(tree: ast.Module) -> tuple[set[str], set[str]]:
    """(names bound by import statements, names bound by assignments) at the file's top level,
    also inside top-level try/if blocks."""
    imported: set[str] = set()
    assigned: set[str] = set()
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                imported.add((alias.asname or alias.name).split(".")[0])
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                assigned.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
        elif isinstance(node, (ast.Try, ast.If, ast.With, ast.For)):
            stack.extend(getattr(node, "body", []) + getattr(node, "orelse", []) +
                         getattr(node, "finalbody", []) +
                         [s for h in getattr(node, "handlers", []) for s in h.body])
    return imported, assigned


def _passes_depth_as_tesseract_depth(tree: ast.Module) -> bool:
    """True when a `tensor=dict(..., depth=DEPTH)` passes the name DEPTH as the 2.5D depth:
    Colossal's CIFAR 2.5D benchmark (seed 000) uses DEPTH = 1 that way, not as the model's."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
                node.func.id == "dict":
            names = {k.arg for k in node.keywords}
            for k in node.keywords:
                if k.arg == "depth" and isinstance(k.value, ast.Name) and k.value.id == "DEPTH" \
                        and names & {"mode", "size"}:
                    return True
    return False


def _assigns_only(node: ast.stmt, names: set[str]) -> bool:
    """True for a top-level `NAME = ...` statement whose targets are all pinned names."""
    if isinstance(node, ast.Assign):
        targets = node.targets
    elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
        targets = [node.target]
    else:
        return False
    return all(isinstance(t, ast.Name) and t.id in names for t in targets)


def _traceback_line(e: BaseException, filename: str) -> int | None:
    tb, line = e.__traceback__, None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _parse_override(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. --set LEARNING_RATE=1e-3")
    key, raw = text.split("=", 1)
    key, raw = key.strip(), raw.strip()
    try:
        tree = ast.parse(raw, mode="eval")
    except SyntaxError:
        return key, raw  # not an expression: a bare string such as a path
    if isinstance(tree.body, ast.Name) and tree.body.id not in ("dict", "AMP_TYPE"):
        return key, raw  # a bare word such as vit_small_patch16_224 is a string
    try:
        return key, _override_value(tree.body)
    except ValueError as e:
        raise ConfigError(f"--set {key}: {raw!r} {e}: write a Python literal, dict(...) or "
                          "AMP_TYPE.TORCH") from None


def _override_value(node: ast.expr) -> Any:
    """The value of an override written as in a config file: literals, dict(k=v, ...),
    AMP_TYPE.X and constant arithmetic such as 2**16 -- nothing that runs code."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.Tuple, ast.List)):
        items = [_override_value(e) for e in node.elts]
        return tuple(items) if isinstance(node, ast.Tuple) else items
    if isinstance(node, ast.Dict):
        return {_override_value(k): _override_value(v) for k, v in zip(node.keys, node.values)}
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict" \
            and not node.args and all(k.arg for k in node.keywords):
        return {k.arg: _override_value(k.value) for k in node.keywords}
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and \
            node.value.id == "AMP_TYPE":
        if node.attr not in AMP_TYPE.__members__:
            raise ValueError("is not one of " + ", ".join(f"AMP_TYPE.{m.name}" for m in AMP_TYPE))
        return AMP_TYPE[node.attr]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _override_value(node.operand)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div,
                                                            ast.FloorDiv, ast.Pow)):
        left, right = _override_value(node.left), _override_value(node.right)
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (left, right)):
            if isinstance(node.op, ast.Pow) and abs(right) > 64:
                raise ValueError("has too large an exponent")
            return {ast.Add: lambda: left + right, ast.Sub: lambda: left - right,
                    ast.Mult: lambda: left * right, ast.Div: lambda: left / right,
                    ast.FloorDiv: lambda: left // right,
                    ast.Pow: lambda: left ** right}[type(node.op)]()
    raise ValueError(f"is not a value ({ast.unparse(node)!r} would run code)")


def _set_nested(namespace: dict[str, Any], dotted: str, value: Any) -> None:
    head, *rest = dotted.split(".")
    known = {f.name for f in fields(Config)} | COLOSSAL_KEYS
    if head not in known:
        raise ConfigError(f"--set {dotted}: unknown key {head!r}{_suggest_key(head)}")
    node = namespace.get(head)
    if node is None:
        node = namespace[head] = {}
    if dataclasses.is_dataclass(node):
        node = namespace[head] = _to_plain(node)
    if not isinstance(node, dict):
        raise ConfigError(f"--set {dotted}: {head} is not a section (dict) in this config")
    node = namespace[head] = dict(node)  # the file's own dict is not changed in place
    for part in rest[:-1]:
        child = node.get(part)
        if child is None:
            child = {}
        if not isinstance(child, dict):
            raise ConfigError(f"--set {dotted}: {part} is not a section (dict)")
        node[part] = child = dict(child)
        node = child
    node[rest[-1]] = value


# --------------------------------------------------------------------------------------------
# Type checking


def _build_dataclass(cls, values: dict[str, Any], prefix: str):
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(f"unknown key {prefix}{key}{suggest(key, known)}")
        kwargs[key] = _coerce(value, hints[key], f"{prefix}{key}")
    return cls(**kwargs)


def _coerce(value: Any, tp: Any, name: str) -> Any:
    """Return `value` converted to type `tp`, or raise ConfigError naming the key."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, name)
            except ConfigError as e:
                errors.append(e)
        if len(errors) == 1:
            raise errors[0]
        raise ConfigError(f"{name}={value!r} has the wrong type: expected {_type_name(tp)}")
    if origin is Literal:
        choices = typing.get_args(tp)
        if value in choices:
            return value
        raise ConfigError(f"{name}={value!r} is not allowed: choose one of "
                          f"{', '.join(repr(c) for c in choices)}{suggest(value, choices)}")
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (tuple, list)) or len(value) != len(args):
            raise ConfigError(f"{name}={value!r} has the wrong type: expected {_type_name(tp)}")
        return tuple(_coerce(v, a, f"{name}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if tp is tuple:
        if isinstance(value, (tuple, list)):
            return tuple(value)
    elif dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if isinstance(value, dict):
            if tp is ParallelConfig and isinstance(value.get("pipeline"), dict):
                value = {**value, "pipeline": value["pipeline"].get("size", 1)}  # Colossal form
            return _build_dataclass(tp, value, prefix=f"{name}.")
        raise ConfigError(f"{name}={value!r} has the wrong type: expected dict(...)")
    elif isinstance(tp, type) and issubclass(tp, enum.Enum):
        if isinstance(value, tp):
            return value
        try:
            return tp(str(value).lower())
        except ValueError:
            pass
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    raise ConfigError(f"{name}={value!r} has the wrong type: expected {_type_name(tp)}, "
                      f"got {type(value).__name__}")


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin is tuple:
        return "(" + ", ".join(_type_name(a) for a in typing.get_args(tp)) + ")"
    if tp is type(None):
        return "None"
    if dataclasses.is_dataclass(tp):
        return "dict(...)"
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return " | ".join(f"{tp.__name__}.{m.name}" for m in tp)  # aliases (PARALLEL) left out
    return getattr(tp, "__name__", str(tp))


def suggest(key: Any, known) -> str:
    if not isinstance(key, str):
        return ""
    by_upper = {str(k).upper(): k for k in known if k is not None}
    match = difflib.get_close_matches(key.upper(), list(by_upper), n=1, cutoff=0.6)
    return f" (did you mean {by_upper[match[0]]!r}?)" if match else ""


def _normalize(cfg: Config) -> None:
    if cfg.clip_grad_norm == 0:
        cfg.clip_grad_norm = None
    if cfg.precision is not None or cfg.fp16 is not None:
        cfg.precision = cfg.precision_name  # also checks that the two agree


# --------------------------------------------------------------------------------------------
# Serialisation


def _to_plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {f.name: _to_plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple):
        return [_to_plain(v) for v in value]
    return value


def _py_repr(value: Any) -> str:
    if dataclasses.is_dataclass(value):
        inner = ", ".join(f"{f.name}={_py_repr(getattr(value, f.name))}" for f in fields(value))
        return f"dict({inner})"
    if isinstance(value, float) and (math.isinf(value) or math.isnan(value)):
        return f"float('{value}')"
    return repr(value)
