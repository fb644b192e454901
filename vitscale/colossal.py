"""Colossal-AI config files, loaded as they are: their imports, their spellings, their keys.

The seeds' config files are Colossal-AI's (seeds 000-003), and the public ones start with
`from colossalai.amp import AMP_TYPE`, read `os.environ['DATA']` at load time and spell keys
the Colossal way (`seed`, `gradient_clipping`, `zero = dict(level=2)`, and in the earliest
releases `model = dict(type=...)`, `optimizer = dict(...)`, `hooks = [...]`). This module makes
such a file mean in vitscale what it meant in Colossal-AI:

  * imports (`config_builtins`): `colossalai`, `titans` and `model_zoo` are never imported for
    real (vitscale does not need them installed, and importing them would start their CUDA
    set-up); they resolve to stand-ins that provide `AMP_TYPE` (TORCH, NAIVE, APEX, and the
    old PARALLEL = NAIVE) and `ParallelMode`. Any other name from them is a placeholder that may
    only reach keys vitscale ignores. `os.environ['NAME']` of an unset variable reads as the
    placeholder string "$NAME" instead of failing, so a file that builds paths from $DATA loads
    on a machine without it (the data path then comes from --data).
  * keys (`translate`): every Colossal key is translated to vitscale's (`seed` -> SEED), checked
    against the key it duplicates (TENSOR_PARALLEL_MODE against parallel['tensor']['mode']), or
    listed once as "ignored: KEY (why)" when it has no meaning here (LOG_PATH, built-in hooks).
    What vitscale cannot do is one line naming it. A key vitscale spells itself wins over a
    Colossal spelling of the same thing, and the loser is listed.

docs/configuration.md ("Coming from Colossal-AI") has the table this module implements.
"""

from __future__ import annotations

import builtins
import math
import os
import re
import sys
import types
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from .errors import ConfigError
from .precision import AMP_TYPE

# Packages a config file may import without having them: Colossal-AI itself, its model zoo
# package Titans, and the in-repository `model_zoo` of Colossal-AI's first releases.
STUB_PACKAGES = ("colossalai", "titans", "model_zoo")


# --------------------------------------------------------------------------------------------
# Imports


class _ParallelModeType(type):
    def __getattr__(cls, name: str) -> str:
        if name.startswith("_"):
            raise AttributeError(name)
        return f"ParallelMode.{name}"


class ParallelMode(metaclass=_ParallelModeType):
    """Colossal-AI's process-group names (`ParallelMode.PARALLEL_3D_INPUT`, ...). Configs pass
    them to layers, losses and hooks that vitscale replaces, so every member reads as its name."""


PROVIDED = {"AMP_TYPE": AMP_TYPE, "ParallelMode": ParallelMode}


class ColossalName:
    """A module or name from colossalai/titans that vitscale does not provide (a layer class, a
    shard strategy): fine inside a key vitscale ignores, an error in any key it uses."""

    def __init__(self, path: str):
        self._path = path

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return PROVIDED.get(name) or ColossalName(f"{self._path}.{name}")

    def __call__(self, *args, **kwargs) -> "ColossalName":
        return ColossalName(f"{self._path}(...)")

    def __repr__(self) -> str:
        return self._path


class Unset(str):
    """`os.environ['NAME']` of a variable that is not set: the string "$NAME"."""

    def __new__(cls, name: str):
        value = super().__new__(cls, f"${name}")
        value.variable = name
        return value


class _ConfigEnviron(MutableMapping):
    """os.environ as a config file sees it: an unset variable reads as Unset, not KeyError."""

    def __init__(self, unset: list[str]):
        self.unset = unset

    def __getitem__(self, key):
        if key in os.environ:
            return os.environ[key]
        if key not in self.unset:
            self.unset.append(key)
        return Unset(key)

    def get(self, key, default=None):  # keeps its meaning: the default when unset
        return os.environ.get(key, default)

    def __setitem__(self, key, value):
        os.environ[key] = value

    def __delitem__(self, key):
        del os.environ[key]

    def __iter__(self):
        return iter(os.environ)

    def __len__(self):
        return len(os.environ)

    def __contains__(self, key):
        return key in os.environ


class _ConfigOS(types.ModuleType):
    def __init__(self, environ: _ConfigEnviron):
        super().__init__("os")
        self.environ = environ

    def __getattr__(self, name: str):
        return getattr(os, name)


@dataclass
class Notes:
    """What loading did with the file's keys, listed at start and by --dry-run."""

    translated: list[str] = field(default_factory=list)   # "seed=42 -> SEED=42"
    checked: list[str] = field(default_factory=list)      # "SUMMA_DIM=2 (equals ...)"
    ignored: list[str] = field(default_factory=list)      # "LOG_PATH (why)"
    unset_env: list[str] = field(default_factory=list)    # variables read while unset

    def translate(self, source: str, target: str) -> None:
        self.translated.append(f"{source} -> {target}")

    def check(self, key: str, against: str) -> None:
        self.checked.append(f"{key} ({against})")

    def ignore(self, key: str, why: str) -> None:
        line = f"{key} ({why})"
        if line not in self.ignored:
            self.ignored.append(line)

    def lines(self) -> list[str]:
        out = [f"translated: {t}" for t in self.translated]
        out += [f"checked: {c}" for c in self.checked]
        out += [f"ignored: {i}" for i in self.ignored]
        out += [f"unset: ${name} was read by the file but is not set here (read as '${name}')"
                for name in self.unset_env]
        return out


def config_builtins(notes: Notes) -> dict[str, Any]:
    """The builtins a config file runs with: `__import__` serves the stand-ins above."""
    environ = _ConfigEnviron(notes.unset_env)
    config_os = _ConfigOS(environ)
    real_import = builtins.__import__

    def config_import(name, globals=None, locals=None, fromlist=(), level=0):
        top = name.split(".")[0]
        if level == 0 and top in STUB_PACKAGES:
            return ColossalName(name if fromlist else top)
        if level == 0 and (name == "os" or (top == "os" and not fromlist)):
            return config_os
        try:
            return real_import(name, globals, locals, fromlist, level)
        except ImportError:
            if level == 0 and top in sys.stdlib_module_names:
                # A standard-library module this Python was built without (tkinter is often
                # missing): its names become placeholders, harmless unless a used key needs them.
                notes.ignore(f"import {name}", "a standard-library module this Python lacks")
                return ColossalName(name if fromlist else top)
            raise

    return {**vars(builtins), "__import__": config_import}


# --------------------------------------------------------------------------------------------
# Keys

# Colossal-AI spellings and the names its example configs define for their own scripts
# (notes/colossal-ai-vit.md lists where each is read). Used by --set and by suggestions.
COLOSSAL_KEYS = {
    "seed", "num_epochs", "warmup_epochs", "clip_grad", "gradient_clipping", "num_microbatches",
    "schedule", "engine", "gradient_handler", "gradient_handlers", "torch_ddp", "logging",
    "log_path", "hooks", "lr_scheduler", "optimizer", "loss", "model", "train_data",
    "test_data", "dali", "USE_DDP", "NUM_CHUNKS", "TP_TYPE", "TP_WORLD_SIZE",
    "TENSOR_PARALLEL", "RANK", "DATA", "DATASET_PATH", "LOG_NAME", "DIM", "EMBED_SIZE",
    "NUM_ATTENTION_HEADS", "NUM_ATTN_HEADS", "NUM_BLOCKS",
}

_BUILT_IN = "vitscale's loop logs loss, accuracy, learning rate, time and memory itself"
_HOOKS_BUILT_IN = {
    "LogMetricByEpochHook", "LogMetricByStepHook", "LogTimingByEpochHook",
    "LogMemoryByEpochHook", "LossHook", "AccuracyHook", "Accuracy1DHook", "Accuracy2DHook",
    "Accuracy2p5DHook", "Accuracy3DHook", "ThroughputHook", "MemTraceHook",
    "TotalBatchsizeHook",
}
_NO_PIPELINE = "no pipeline: parallel['pipeline'] is 1"


def translate(values: dict[str, Any], tesseract_depth: bool = False,
              notes: Notes | None = None) -> tuple[dict[str, Any], Notes]:
    """`values` (a config file's names) in vitscale's keys, and what was done with each.

    `tesseract_depth`: the file passes its `DEPTH` as parallel['tensor']['depth'] (Colossal's
    CIFAR 2.5D benchmark, seed 000), so DEPTH is not the model's depth there.
    Keys that are neither vitscale's nor Colossal's are left in place for the caller to name.
    """
    t = _Translator(dict(values), notes or Notes())
    t.run(tesseract_depth)
    return t.out, t.notes


class _Translator:
    def __init__(self, values: dict[str, Any], notes: Notes):
        self.out = values
        self.notes = notes
        self.given = set(values)   # keys the file (or --set) spells the vitscale way

    # ---- helpers ----
    def pop(self, key: str, default=None):
        self.given.discard(key)
        return self.out.pop(key, default)

    def put(self, key: str, value: Any, source: str) -> None:
        """Set vitscale `key` from Colossal `source`, unless the file sets `key` itself."""
        if key in self.out:
            if _same(self.out[key], value):
                self.notes.translate(source, f"{key}={_show(value)}")
            else:
                self.notes.ignore(source, f"{key}={_show(self.out[key])} is set and wins")
            return
        self.out[key] = value
        self.notes.translate(source, f"{key}={_show(value)}")

    def put_section(self, section: str, key: str, value: Any, source: str) -> None:
        node = self.out.get(section)
        if node is None:
            node = self.out[section] = {}
        if not isinstance(node, dict):
            self.notes.ignore(source, f"{section} is set and wins")
            return
        if key in node and not _same(node[key], value):
            self.notes.ignore(source, f"{section}.{key}={_show(node[key])} is set and wins")
            return
        node[key] = value
        self.notes.translate(source, f"{section}.{key}={_show(value)}")

    # ---- the rules, in an order where the most specific source comes first ----
    def run(self, tesseract_depth: bool) -> None:
        if tesseract_depth and "DEPTH" in self.out:
            depth = self.pop("DEPTH")
            self.notes.translate(f"DEPTH={depth}", "the Tesseract depth parallel['tensor']['depth']"
                                 ", not the model's depth (Colossal's 2.5D benchmark config)")
        self.model()
        self.simple()
        self.fp16()
        self.zero()
        self.engine()
        self.optimizer()
        self.loss()
        self.schedule_and_hooks()
        self.data()
        self.parallel_names()
        self.aliases()

    def simple(self) -> None:
        for source, target in (("seed", "SEED"), ("num_epochs", "NUM_EPOCHS"),
                               ("warmup_epochs", "WARMUP_EPOCHS"), ("clip_grad", "clip_grad_norm"),
                               ("gradient_clipping", "clip_grad_norm"),
                               ("num_microbatches", "NUM_MICRO_BATCHES")):
            if source in self.out:
                value = self.pop(source)
                self.put(target, value, f"{source}={_show(value)}")
        for key, why in (("logging", "the run directory is runs/<config name> or --run-dir"),
                         ("log_path", "the run directory is runs/<config name> or --run-dir"),
                         ("LOG_PATH", "the run directory is runs/<config name> or --run-dir"),
                         ("LOG_NAME", "the run directory is runs/<config name> or --run-dir"),
                         ("gradient_handler", "vitscale reduces gradients over the data-parallel "
                                              "group itself (DDP or FSDP)"),
                         ("gradient_handlers", "vitscale reduces gradients over the "
                                               "data-parallel group itself (DDP or FSDP)"),
                         ("torch_ddp", "vitscale sets DDP's options itself"),
                         ("TP_TYPE", "ColoTensor's sharding spec; vitscale shards by "
                                     "parallel['tensor']['mode']"),
                         ("RANK", "vitscale takes each process's rank from the launcher"),
                         ("DATA", "Colossal's scripts read $DATA from the environment, not this "
                                  "name; vitscale reads --data, data.root or $DATA"),
                         ("DATASET_PATH", "the file's own name for the data path; vitscale "
                                          "reads --data, data.root or $DATA")):
            if key in self.out:
                value = self.pop(key)
                if key == "LOG_PATH":
                    self.out[key] = value  # a Config field: kept, with no effect
                self.notes.ignore(key, why)
        if "NUM_CHUNKS" in self.out:
            self.num_chunks(self.pop("NUM_CHUNKS"), "NUM_CHUNKS")
        if "USE_DDP" in self.out:
            use = self.pop("USE_DDP")
            if use and self.out.get("zero") is not None:
                raise ConfigError("USE_DDP = True and zero = dict(...) ask for two kinds of data "
                                  "parallelism: keep one (vitscale uses DDP when zero is unset)")
            if use:
                self.notes.translate("USE_DDP=True", "data parallel by DDP (vitscale's default "
                                     "without zero)")
            else:
                self.notes.ignore("USE_DDP", "vitscale always synchronises data-parallel "
                                  "gradients: DDP, or zero = dict(stage=...) to shard")

    def num_chunks(self, chunks: Any, source: str) -> None:
        """Colossal's interleaved pipeline: NUM_CHUNKS model chunks on every pipeline rank is
        vitscale's `pipeline_chunks` under the interleaved 1F1B schedule (Narayanan et al.
        2021), which is what Colossal-AI ran with more than one chunk."""
        if chunks in (None, 1):
            self.notes.ignore(source, "one model chunk per pipeline stage, as vitscale runs it")
            return
        if isinstance(chunks, bool) or not isinstance(chunks, int) or chunks < 1:
            raise ConfigError(f"{source}={chunks!r}: expected a whole number of model chunks "
                              "per pipeline rank (1, 2, ...)")
        parallel = self.out.get("parallel")
        if _pipeline_size(parallel) == 1:
            self.notes.ignore(source, "no pipeline (parallel['pipeline'] is 1), so nothing "
                              "to interleave")
            return
        parallel = dict(parallel) if isinstance(parallel, dict) else {}
        parallel.setdefault("pipeline_chunks", chunks)
        parallel.setdefault("pipeline_schedule", "interleaved_1f1b")
        self.out["parallel"] = parallel
        self.notes.translate(f"{source}={chunks}",
                             f"parallel.pipeline_chunks={parallel['pipeline_chunks']}, "
                             f"pipeline_schedule={parallel['pipeline_schedule']!r} "
                             "(Colossal's interleaved schedule)")

    def fp16(self) -> None:
        fp16 = self.out.get("fp16")
        if not isinstance(fp16, dict):
            return
        fp16 = dict(fp16)
        if "mode" in fp16 and fp16["mode"] is None:
            self.out["fp16"] = None
            self.notes.translate("fp16 = dict(mode=None)", "no mixed precision (fp32)")
            for key in fp16:
                if key != "mode":
                    self.notes.ignore(f"fp16.{key}", "no mixed precision: mode is None")
            return
        for source, target in (("initial_scale", "init_scale"),):
            if source in fp16:
                value = fp16.pop(source)
                fp16.setdefault(target, value)
                self.notes.translate(f"fp16.{source}={_show(value)}",
                                     f"fp16.{target}={_show(value)}")
        for key in ("min_scale", "max_scale"):
            if key in fp16 and fp16[key] is None:
                del fp16[key]
                self.notes.translate(f"fp16.{key}=None", f"vitscale's default bound "
                                     f"({'1' if key == 'min_scale' else '2**24'})")
        if fp16.pop("dynamic_grad_scale", True) is False:
            self.notes.ignore("fp16.dynamic_grad_scale", "vitscale's naive fp16 always scales "
                              "the loss dynamically")
        if "verbose" in fp16:
            fp16.pop("verbose")
            self.notes.ignore("fp16.verbose", "vitscale prints the precision policy at start")
        if "clip_grad_norm" in fp16:
            value = fp16.pop("clip_grad_norm")
            self.put("clip_grad_norm", value, f"fp16.clip_grad_norm={_show(value)}")
        for key in ("opt_level", "loss_scale", "keep_batchnorm_fp32", "master_weights",
                    "cast_model_type", "patch_torch_functions", "enabled"):
            if key in fp16:
                fp16.pop(key)
                self.notes.ignore(f"fp16.{key}", "vitscale runs torch AMP and apex O1 with their "
                                  "defaults")
        self.out["fp16"] = fp16

    def zero(self) -> None:
        zero = self.out.get("zero")
        if not isinstance(zero, dict):
            return
        zero = dict(zero)
        offload = "vitscale keeps ZeRO's shards on the device; it does not offload to CPU or NVMe"
        if "level" in zero:
            level = zero.pop("level")
            zero.setdefault("stage", level)
            self.notes.translate(f"zero.level={level}", f"zero.stage={level}")
        if "type" in zero:
            kind = str(zero.pop("type"))
            match = re.search(r"Level_(\d)", kind)
            if not match:
                raise ConfigError(f"zero.type={kind!r} is not a ZeRO level: use "
                                  "zero = dict(stage=1|2|3)")
            zero.setdefault("stage", int(match.group(1)))
            self.notes.translate(f"zero.type={kind!r}", f"zero.stage={match.group(1)}")
        if "model_config" in zero or "optimizer_config" in zero:
            # Colossal-AI 0.1's sharded model (ShardedModelV2) shards parameters: stage 3.
            if "model_config" in zero:
                zero.setdefault("stage", 3)
                self.notes.translate("zero.model_config", "zero.stage=3 (parameters sharded)")
            for key in ("model_config", "optimizer_config"):
                if key in zero:
                    zero.pop(key)
                    self.notes.ignore(f"zero.{key}", "vitscale's FSDP2 takes no placement or "
                                      "scaler options")
        if zero.pop("cpu_offload", False):
            self.notes.ignore("zero.cpu_offload", offload)
        for key in ("offload_optimizer_config", "offload_param_config"):
            if key in zero:
                placement = zero.pop(key)
                device = placement.get("device") if isinstance(placement, dict) else placement
                if device not in (None, "none"):
                    self.notes.ignore(f"zero.{key}", offload)
        for key, why in (("verbose", "vitscale prints the layout at start"),
                         ("dynamic_loss_scale", "vitscale's ZeRO 2/3 trains in fp32 or bf16, "
                                                "which need no loss scale")):
            if key in zero:
                zero.pop(key)
                self.notes.ignore(f"zero.{key}", why)
        if "clip_grad" in zero:
            value = zero.pop("clip_grad")
            self.put("clip_grad_norm", value, f"zero.clip_grad={_show(value)}")
        self.out["zero"] = zero

    def engine(self) -> None:
        if "schedule" in self.out:
            self.schedule(self.pop("schedule"), "schedule")
        engine = self.pop("engine")
        if engine is None:
            return
        if not isinstance(engine, dict):
            raise ConfigError(f"engine={engine!r}: expected dict(gradient_accumulation=..., "
                              "gradient_clipping=...)")
        for key, value in engine.items():
            if key == "gradient_accumulation":
                self.put("gradient_accumulation", value, f"engine.gradient_accumulation={value}")
            elif key == "gradient_clipping":
                self.put("clip_grad_norm", value, f"engine.gradient_clipping={value}")
            elif key == "schedule":
                self.schedule(value, "engine.schedule")
            elif key == "gradient_handlers":
                if value is not None:
                    self.notes.ignore("engine.gradient_handlers", "vitscale reduces gradients "
                                      "over the data-parallel group itself (DDP or FSDP)")
            else:
                self.notes.ignore(f"engine.{key}", "not an engine option vitscale has")

    def schedule(self, schedule: Any, source: str) -> None:
        if schedule is None:
            return
        if not isinstance(schedule, dict):
            raise ConfigError(f"{source}={schedule!r}: expected dict(num_microbatches=...)")
        for key, value in schedule.items():
            if key == "num_microbatches":
                self.put("NUM_MICRO_BATCHES", value, f"{source}.num_microbatches={value}")
            elif key == "tensor_shape":
                self.put("TENSOR_SHAPE", value, f"{source}.tensor_shape")
            elif key == "num_model_chunks":
                self.num_chunks(value, f"{source}.num_model_chunks")
            else:
                self.notes.ignore(f"{source}.{key}", "vitscale's pipeline schedule takes "
                                  "NUM_MICRO_BATCHES only")

    def optimizer(self) -> None:
        opt = self.pop("optimizer")
        if opt is None:
            return
        if not isinstance(opt, dict) or "type" not in opt:
            raise ConfigError(f"optimizer={_show(opt)}: expected dict(type='AdamW', lr=...), or "
                              "vitscale's OPTIMIZER, LEARNING_RATE and WEIGHT_DECAY")
        opt = dict(opt)
        kind = str(opt.pop("type")).rsplit(".", 1)[-1]
        # (vitscale optimizer, weight decay the Colossal/torch class defaults to)
        table = {"adam": ("adamw", 0.0), "adamw": ("adamw", 0.01), "fusedadam": ("adamw", 0.0),
                 "hybridadam": ("adamw", 0.0), "cpuadam": ("adamw", 0.0),
                 "lamb": ("lamb", 0.0), "fusedlamb": ("lamb", 0.01), "sgd": ("sgd", 0.0),
                 "fusedsgd": ("sgd", 0.0), "lars": ("lars", 0.0)}
        if kind.lower() not in table:
            raise ConfigError(f"optimizer type {kind!r} is not one vitscale has: use AdamW, Adam, "
                              "SGD, Lamb or Lars (OPTIMIZER = 'adamw' | 'sgd' | 'lamb' | 'lars')")
        name, decay = table[kind.lower()]
        self.put("OPTIMIZER", name, f"optimizer.type={kind!r}")
        opt.setdefault("weight_decay", decay)
        if kind.lower() in ("adam", "fusedadam", "hybridadam", "cpuadam") and \
                opt.get("adamw_mode", False) is False and opt["weight_decay"]:
            self.notes.translate(f"optimizer.type={kind!r} weight_decay", "AdamW's decoupled "
                                 "decay (Adam's L2 term added to the gradient differs)")
        if kind == "Lamb":  # Colossal-AI's Lamb has no bias correction ("paper v3")
            opt.setdefault("bias_correction", False)
        keys = {"lr": "LEARNING_RATE", "weight_decay": "WEIGHT_DECAY", "betas": "BETAS",
                "eps": "EPS", "momentum": "MOMENTUM", "nesterov": "NESTEROV", "eeta": "LARS_ETA",
                "bias_correction": "LAMB_BIAS_CORRECTION"}
        for key, value in opt.items():
            if key in keys:
                self.put(keys[key], tuple(value) if key == "betas" else value,
                         f"optimizer.{key}={_show(value)}")
            else:
                self.notes.ignore(f"optimizer.{key}", f"not an option of vitscale's {name}")

    def loss(self) -> None:
        loss = self.pop("loss")
        if loss is None:
            return
        kind = str(loss.get("type", "")) if isinstance(loss, dict) else ""
        if not kind.startswith(("CrossEntropyLoss", "VocabParallelCrossEntropyLoss")):
            raise ConfigError(f"loss={_show(loss)}: vitscale trains with cross-entropy only "
                              "(LABEL_SMOOTHING sets its smoothing); remove the loss key")
        for key, value in loss.items():
            if key == "label_smoothing":
                self.put("LABEL_SMOOTHING", value, f"loss.label_smoothing={value}")
            elif key == "type":
                self.notes.ignore("loss.type", "vitscale's cross-entropy follows the layout: "
                                  "its tensor-parallel form is chosen by parallel['tensor']")
            else:
                self.notes.ignore(f"loss.{key}", "vitscale's cross-entropy takes the mean over "
                                  "the global batch")

    def schedule_and_hooks(self) -> None:
        hooks = self.pop("hooks")
        by_epoch_hook = None
        if hooks is not None:
            ignored = []
            for hook in hooks if isinstance(hooks, (list, tuple)) else [hooks]:
                kind = str(hook.get("type")) if isinstance(hook, dict) else str(hook)
                if kind == "LRSchedulerHook" and isinstance(hook, dict):
                    by_epoch_hook = hook
                elif kind == "TensorboardHook":
                    self.put("tensorboard", True, "hooks TensorboardHook")
                elif kind == "SaveCheckpointHook" and isinstance(hook, dict):
                    interval = hook.get("interval", 1)
                    key = "every_steps" if hook.get("save_by_iter") else "every_epochs"
                    self.put_section("checkpoints", key, interval,
                                     f"hooks SaveCheckpointHook(interval={interval})")
                elif kind == "LoadCheckpointHook":
                    self.notes.ignore("hooks LoadCheckpointHook", "vitscale resumes from the run "
                                      "directory's last checkpoint by itself")
                elif kind in _HOOKS_BUILT_IN:
                    ignored.append(kind)
                else:
                    self.notes.ignore(f"hooks {kind}", "not a hook vitscale has: see "
                                      "vitscale.Hook for your own")
            if ignored:
                self.notes.ignore(f"hooks {', '.join(ignored)}", _BUILT_IN)
        scheduler = self.pop("lr_scheduler")
        if by_epoch_hook is not None:
            cfg = by_epoch_hook.get("lr_scheduler_cfg")
            if cfg is not None:
                self.lr_schedule(cfg, "hooks LRSchedulerHook.lr_scheduler_cfg",
                                 by_epoch=bool(by_epoch_hook.get("by_epoch", True)))
            elif scheduler is not None:
                self.lr_schedule(scheduler, "lr_scheduler",
                                 by_epoch=bool(by_epoch_hook.get("by_epoch", True)))
                scheduler = None
        if scheduler is not None:
            self.lr_schedule(scheduler, "lr_scheduler", by_epoch=None)

    def lr_schedule(self, sched: Any, source: str, by_epoch: bool | None) -> None:
        if not isinstance(sched, dict) or "type" not in sched:
            raise ConfigError(f"{source}={_show(sched)}: expected "
                              "dict(type='CosineAnnealingWarmupLR', warmup_steps=...)")
        sched = dict(sched)
        kind = str(sched.pop("type")).rsplit(".", 1)[-1]
        epochs = self.out.get("NUM_EPOCHS")
        total = sched.pop("total_steps", None)
        if by_epoch is None:
            # The earliest configs stepped the scheduler once per epoch (total_steps=num_epochs).
            by_epoch = total is None or total == epochs
        if total is not None:
            self.notes.ignore(f"{source}.total_steps", "vitscale schedules over NUM_EPOCHS x "
                              "steps per epoch")
        schedules = {"LinearWarmupLR": "linear", "CosineAnnealingWarmupLR": "cosine",
                     "CosineAnnealingLR": "cosine", "MultiStepWarmupLR": "multistep",
                     "MultiStepLR": "multistep", "ConstantLR": "constant"}
        if kind not in schedules:
            raise ConfigError(f"{source} type {kind!r} is not a schedule vitscale has: use "
                              "LR_SCHEDULE = 'cosine' | 'linear' | 'multistep' | 'constant' with "
                              "WARMUP_EPOCHS")
        self.put("LR_SCHEDULE", schedules[kind], f"{source}.type={kind!r}")
        unit = "epoch" if by_epoch else "step"
        for key, value in sched.items():
            if key == "warmup_epochs":
                self.put("WARMUP_EPOCHS", value, f"{source}.warmup_epochs={value}")
            elif key == "warmup_steps":
                target = "WARMUP_EPOCHS" if by_epoch else "WARMUP_STEPS"
                self.put(target, value, f"{source}.warmup_steps={value} (stepped per {unit})")
            elif key == "eta_min":
                self.put("MIN_LR", value, f"{source}.eta_min={value}")
            elif key == "milestones":
                if not by_epoch:
                    raise ConfigError(f"{source}.milestones are in steps; vitscale's LR_MILESTONES"
                                      " are epochs: convert them and set LR_MILESTONES")
                self.put("LR_MILESTONES", tuple(value), f"{source}.milestones")
            elif key == "gamma":
                self.put("LR_GAMMA", value, f"{source}.gamma={value}")
            else:
                self.notes.ignore(f"{source}.{key}", "not an option of vitscale's schedules")

    # ---- data ----
    def data(self) -> None:
        dali = self.pop("dali")
        if dali is not None:
            if not isinstance(dali, dict):
                raise ConfigError(f"dali={dali!r}: expected dict(root=..., gpu_aug=..., "
                                  "mixup_alpha=...)")
            self.put_section("data", "pipeline", "dali", "dali = dict(...)")
            for key, value in dali.items():
                if key == "root":
                    self.data_root(value, "dali.root")
                elif key == "gpu_aug":
                    self.put_section("data", "dali_device", "gpu" if value else "cpu",
                                     f"dali.gpu_aug={value}")
                elif key == "mixup_alpha":
                    self.put("MIXUP_ALPHA", value, f"dali.mixup_alpha={value}")
                elif key == "cutmix_alpha":
                    self.put("CUTMIX_ALPHA", value, f"dali.cutmix_alpha={value}")
                else:
                    self.notes.ignore(f"dali.{key}", "not an option of vitscale's DALI pipeline")
        for split in ("train_data", "test_data"):
            section = self.pop(split)
            if section is not None:
                self.old_data(section, split)

    def data_root(self, root: Any, source: str) -> None:
        text = str(root)
        variable = text[1:].split("/")[0] if text.startswith("$") else None
        if variable in self.notes.unset_env:  # built from an unset variable: --data says it
            self.notes.ignore(source, f"it reads ${variable}, which is not set here")
            return
        self.put_section("data", "root", text, f"{source}={text!r}")

    def old_data(self, section: Any, split: str) -> None:
        if not isinstance(section, dict):
            raise ConfigError(f"{split}={section!r}: expected dict(dataset=..., dataloader=...)")
        train = split == "train_data"
        dataset = section.get("dataset") or {}
        loader = section.get("dataloader") or {}
        kinds = {"CIFAR10Dataset": "cifar10", "CIFAR10": "cifar10", "CIFAR100Dataset": "cifar100",
                 "CIFAR100": "cifar100", "ImageNetDataset": "imagenet1k",
                 "Caltech101": "caltech101"}
        kind = dataset.get("type")
        if kind in kinds:
            self.put("DATASET", kinds[kind], f"{split}.dataset.type={kind!r}")
        elif kind is not None:
            self.notes.ignore(f"{split}.dataset.type", f"{kind!r} is not a dataset vitscale "
                              "knows: the dataset follows from --data (DATASET names one)")
        if "root" in dataset:
            self.data_root(dataset["root"], f"{split}.dataset.root")
        for key in dataset:
            if key not in ("type", "root", "transform_pipeline", "train", "download"):
                self.notes.ignore(f"{split}.dataset.{key}", "not an option vitscale has")
        if train:
            self.transforms(dataset.get("transform_pipeline"),
                            f"{split}.dataset.transform_pipeline")
        elif dataset.get("transform_pipeline"):
            self.notes.ignore(f"{split}.dataset.transform_pipeline", "evaluation resizes and "
                              "centre-crops by EVAL_CROP_PCT and normalises with the dataset's "
                              "statistics")
        for key, value in loader.items():
            if key == "batch_size":
                self.put("BATCH_SIZE" if train else "EVAL_BATCH_SIZE", value,
                         f"{split}.dataloader.batch_size={value}")
            elif key == "num_workers":
                self.put_section("data", "num_workers", value,
                                 f"{split}.dataloader.num_workers={value}")
            else:
                self.notes.ignore(f"{split}.dataloader.{key}", "vitscale's loaders shuffle, "
                                  "pin and drop the last partial training batch themselves")

    def transforms(self, pipeline: Any, source: str) -> None:
        if not pipeline:
            return
        kinds = [t.get("type") if isinstance(t, dict) else type(t).__name__ for t in pipeline]
        ignored = []
        for t in pipeline:
            if not isinstance(t, dict):
                ignored.append(type(t).__name__)
                continue
            kind = t.get("type")
            if kind == "RandomCrop":
                self.put("TRAIN_CROP", "pad", f"{source} RandomCrop")
                self.put("CROP_PADDING", int(t.get("padding") or 0),
                         f"{source} RandomCrop(padding={t.get('padding')})")
            elif kind == "RandomResizedCrop":
                self.put("TRAIN_CROP", "rrc", f"{source} RandomResizedCrop")
                if "scale" in t:
                    self.put("RRC_SCALE", tuple(t["scale"]), f"{source} RandomResizedCrop.scale")
                if "ratio" in t:
                    self.put("RRC_RATIO", tuple(t["ratio"]), f"{source} RandomResizedCrop.ratio")
            elif kind == "AutoAugment":
                policy = getattr(t.get("policy"), "value", t.get("policy")) or "imagenet"
                self.put("AUTOAUGMENT", str(policy).lower(), f"{source} AutoAugment")
            elif kind == "RandAugment":
                ops = (t.get("num_ops", 2), t.get("magnitude", 9))
                self.put("RANDAUGMENT", ops, f"{source} RandAugment")
            elif kind != "RandomHorizontalFlip":
                ignored.append(str(kind))
        self.put("HFLIP", "RandomHorizontalFlip" in kinds, f"{source} "
                 f"{'with' if 'RandomHorizontalFlip' in kinds else 'without'} RandomHorizontalFlip")
        if ignored:
            self.notes.ignore(f"{source} {', '.join(ignored)}", "vitscale resizes to IMG_SIZE, "
                              "makes tensors and normalises with the dataset's statistics itself")

    # ---- model ----
    def model(self) -> None:
        model = self.pop("model")
        if model is None:
            return
        if not isinstance(model, dict) or "type" not in model:
            raise ConfigError(f"model={_show(model)}: expected dict(type=...), or vitscale's MODEL "
                              "and size keys")
        model = dict(model)
        kind = str(model.pop("type")).rsplit(".", 1)[-1]
        src = "model"
        if kind == "VisionTransformerFromConfig":
            self.model_from_parts(model)
            return
        size = zoo_model(kind)
        if size is None:
            raise ConfigError(f"model type {kind!r} is not a Vision Transformer vitscale knows: "
                              "set MODEL (see `vitscale models`) or the size keys IMG_SIZE, "
                              "PATCH_SIZE, HIDDEN_SIZE, DEPTH, NUM_HEADS")
        for key, value in size.items():
            self.put(key, value, f"{src}.type={kind!r}")
        self.model_kwargs(model, src)

    def model_kwargs(self, kwargs: dict, src: str) -> None:
        keys = {"img_size": "IMG_SIZE", "patch_size": "PATCH_SIZE", "num_classes": "NUM_CLASSES",
                "drop_rate": "DROP_RATE", "drop_path_rate": "DROP_PATH_RATE",
                "depth": "DEPTH", "embed_dim": "HIDDEN_SIZE", "dim": "HIDDEN_SIZE",
                "num_heads": "NUM_HEADS", "mlp_ratio": "MLP_RATIO", "qkv_bias": "QKV_BIAS",
                "checkpoint": "CHECKPOINT", "use_checkpoint": "CHECKPOINT"}
        for key, value in kwargs.items():
            if key in keys:
                self.put(keys[key], value, f"{src}.{key}={_show(value)}")
            elif key == "num_chunks":
                self.num_chunks(value, f"{src}.num_chunks")
            else:
                self.notes.ignore(f"{src}.{key}", "not a size or option of vitscale's ViT")

    def model_from_parts(self, model: dict) -> None:
        """Colossal-AI 0.0's `VisionTransformerFromConfig`: the model as layer configs."""
        src = "model"
        parts: dict[str, Any] = {}
        embed = model.pop("embedding_cfg", {}) or {}
        fuser = model.pop("token_fusion_cfg", {}) or {}
        block = model.pop("block_cfg", {}) or {}
        head = model.pop("head_cfg", {}) or {}
        attention = block.get("attention_cfg", {}) or {}
        mlp = block.get("mlp_cfg", {}) or {}
        for d in (embed, fuser):
            for key, target in (("img_size", "IMG_SIZE"), ("patch_size", "PATCH_SIZE"),
                                ("embed_dim", "HIDDEN_SIZE"), ("embed_size", "HIDDEN_SIZE"),
                                ("drop_rate", "DROP_RATE"), ("drop_prob", "DROP_RATE")):
                if key in d:
                    parts.setdefault(target, d[key])
            if d.get("in_chans", 3) != 3:
                raise ConfigError(f"model: in_chans={d['in_chans']}: vitscale trains on RGB images")
        for key, target in (("hidden_size", "HIDDEN_SIZE"), ("dim", "HIDDEN_SIZE"),
                            ("num_attention_heads", "NUM_HEADS"), ("num_heads", "NUM_HEADS"),
                            ("qkv_bias", "QKV_BIAS"), ("hidden_dropout_prob", "DROP_RATE"),
                            ("proj_drop", "DROP_RATE")):
            if key in attention:
                parts.setdefault(target, attention[key])
        width = parts.get("HIDDEN_SIZE") or model.get("embed_dim")
        if "mlp_ratio" in mlp:
            parts["MLP_RATIO"] = mlp["mlp_ratio"]
        elif "hidden_features" in mlp and width:
            parts["MLP_RATIO"] = mlp["hidden_features"] / width
        for key in ("dropout_prob", "hidden_dropout_prob", "drop"):
            if key in mlp:
                parts.setdefault("DROP_RATE", mlp[key])
        if any(d.get("checkpoint") for d in (block, attention, mlp)):
            parts["CHECKPOINT"] = True
        for key in ("num_classes", "out_features"):
            if key in head:
                parts["NUM_CLASSES"] = head[key]
        if head.get("intermediate_features"):
            self.notes.ignore("model.head_cfg.intermediate_features", "vitscale's head is one "
                              "Linear from the class token (no pre-logits layer)")
        for key, target in (("depth", "DEPTH"), ("embed_dim", "HIDDEN_SIZE"),
                            ("drop_path_rate", "DROP_PATH_RATE")):
            if key in model:
                parts.setdefault(target, model.pop(key))
        for key, value in parts.items():
            self.put(key, value, f"{src} (VisionTransformerFromConfig) {key.lower()}="
                     f"{_show(value)}")
        self.notes.ignore("model layer types (tensor_splitting_cfg, norm_cfg, droppath_cfg, ...)",
                          "vitscale builds its own ViT; the tensor-parallel layers follow "
                          "parallel['tensor']")
        for key in model:
            if key not in ("tensor_splitting_cfg", "norm_cfg"):
                self.notes.ignore(f"{src}.{key}", "not a size or option of vitscale's ViT")

    # ---- names that duplicate the layout, and the old format's size names ----
    def parallel_names(self) -> None:
        mode, size, depth = _tensor_layout(self.out.get("parallel"))
        for key in ("TENSOR_PARALLEL", "TP_WORLD_SIZE"):
            if key in self.out:
                value = self.pop(key)
                if value != size:
                    raise ConfigError(f"{key}={value} differs from parallel.tensor.size={size}: "
                                      "make them agree")
                self.notes.check(f"{key}={value}", "equals parallel['tensor']['size']")
        declared = self.out.get("TENSOR_PARALLEL_MODE")
        if declared is not None and _mode(declared) != _mode(mode):
            raise ConfigError(f"TENSOR_PARALLEL_MODE={declared!r} differs from parallel['tensor']"
                              f"['mode']={mode!r}: make them agree")
        if declared is not None:
            self.notes.check(f"TENSOR_PARALLEL_MODE={declared!r}", "equals parallel['tensor']"
                             "['mode']")
        if self.out.get("TENSOR_PARALLEL_SIZE") is not None:
            self.notes.check(f"TENSOR_PARALLEL_SIZE={self.out['TENSOR_PARALLEL_SIZE']}",
                             "must equal parallel['tensor']['size']")
        if self.out.get("SEQ_LENGTH") is not None:
            self.notes.check(f"SEQ_LENGTH={self.out['SEQ_LENGTH']}", "must equal the model's "
                             "(IMG_SIZE // PATCH_SIZE) ** 2 + 1")
        if size == 1:  # no tensor parallelism: the grid names describe nothing
            for key in ("TESSERACT_DEPTH", "SUMMA_DIM"):
                if self.out.get(key) is not None:
                    self.notes.ignore(key, "no tensor parallelism: parallel['tensor']['size'] "
                                      "is 1")
            mode = None
        tesseract = self.out.get("TESSERACT_DEPTH") if size > 1 else None
        if tesseract is not None and (tesseract != depth or _mode(mode) != "2.5d"):
            raise ConfigError(f"TESSERACT_DEPTH={tesseract} but parallel['tensor'] is "
                              f"mode={mode!r}, depth={depth}: TESSERACT_DEPTH is the 2.5D depth; "
                              "make them agree")
        if tesseract is not None:
            self.notes.check(f"TESSERACT_DEPTH={tesseract}", "equals parallel['tensor']['depth']")
        summa = self.out.get("SUMMA_DIM")
        if summa is not None and size > 1:
            if _mode(mode) in ("2d", "2.5d"):
                q = math.isqrt(max(size // max(depth, 1), 0))
                if summa != q or q * q * max(depth, 1) != size:
                    raise ConfigError(f"SUMMA_DIM={summa} but parallel['tensor'] (mode={mode!r}, "
                                      f"size={size}, depth={depth}) has q={q}: make them agree")
                self.notes.check(f"SUMMA_DIM={summa}", f"the {_mode(mode)} grid side q of "
                                 f"parallel['tensor'] (size {size})")
            else:
                self.notes.ignore("SUMMA_DIM",
                                  f"the 2D/2.5D grid side; the tensor mode is {mode!r}")
        pipeline = _pipeline_size(self.out.get("parallel"))
        for key, against in (("NUM_MICRO_BATCHES", "must divide the per-device batch; the "
                                                   "pipeline's micro-batches per step"),
                             ("TENSOR_SHAPE", "must equal the activations a pipeline stage sends "
                                              "in this layout")):
            if self.out.get(key) is not None:
                if pipeline == 1:
                    self.notes.ignore(key, _NO_PIPELINE)
                else:
                    self.notes.check(f"{key}={_show(self.out[key])}", against)

    def aliases(self) -> None:
        for source, target in (("DIM", "HIDDEN_SIZE"), ("EMBED_SIZE", "HIDDEN_SIZE"),
                               ("NUM_ATTENTION_HEADS", "NUM_HEADS"),
                               ("NUM_ATTN_HEADS", "NUM_HEADS"), ("NUM_BLOCKS", "DEPTH")):
            if source in self.out:
                value = self.pop(source)
                self.put(target, value, f"{source}={_show(value)}")


def _tensor_layout(parallel: Any) -> tuple[Any, int, int]:
    """(mode, size, depth) of a raw `parallel` section (a dict, or a ParallelConfig)."""
    if parallel is None:
        return None, 1, 1
    tensor = parallel.get("tensor") if isinstance(parallel, dict) else getattr(parallel, "tensor")
    if tensor is None:
        return None, 1, 1
    if isinstance(tensor, dict):
        return tensor.get("mode"), tensor.get("size", 1), tensor.get("depth", 1)
    return tensor.mode, tensor.size, tensor.depth


def _pipeline_size(parallel: Any) -> Any:
    if parallel is None:
        return 1
    pipe = parallel.get("pipeline", 1) if isinstance(parallel, dict) else parallel.pipeline
    return pipe.get("size", 1) if isinstance(pipe, dict) else pipe


def _mode(mode: Any) -> Any:
    return {"2p5d": "2.5d"}.get(mode, mode)


_ZOO = re.compile(r"^vit_(lite|tiny|small|base|large|huge)(?:_depth7|_7)?"
                  r"(?:_(1d|2d|2p5d|2\.5d|3d))?_patch(\d+)_(\d+)$")
_FAMILIES = {"tiny": (192, 12, 3), "small": (384, 12, 6), "base": (768, 12, 12),
             "large": (1024, 24, 16), "huge": (1280, 32, 16)}


def zoo_model(name: str) -> dict[str, Any] | None:
    """Size keys of a Colossal-AI model_zoo / Titans ViT name (`vit_tiny_3d_patch4_32`,
    `vit_lite_depth7_patch4_32`, `vit_base_patch16_384`), or None if it names no ViT."""
    match = _ZOO.match(name)
    if not match:
        return None
    family, _, patch, img = match.groups()
    patch, img = int(patch), int(img)
    if family == "lite":  # ViT-Lite-7/4 (Hassani et al. 2021): vitscale's vit_lite_7_4
        return {"MODEL": "vit_lite_7_4"}
    if family == "tiny" and patch == 4:  # Colossal's CIFAR test model: width 512, depth 6
        return {"IMG_SIZE": img, "PATCH_SIZE": 4, "HIDDEN_SIZE": 512, "DEPTH": 6,
                "NUM_HEADS": 8, "MLP_RATIO": 1}
    if patch in (16, 32) and family in _FAMILIES:
        out: dict[str, Any] = {"MODEL": f"vit_{family}_patch{patch}_224"}
        if img != 224:
            out["IMG_SIZE"] = img
        return out
    return None


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return list(a) == list(b)
    return a == b


def _show(value: Any) -> str:
    if isinstance(value, PurePath):
        return repr(str(value))
    if isinstance(value, dict):
        return "dict(...)"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


__all__ = ["AMP_TYPE", "COLOSSAL_KEYS", "ColossalName", "Notes", "ParallelMode", "Unset",
           "config_builtins", "translate", "zoo_model"]
