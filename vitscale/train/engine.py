"""The engine: model, optimizer, LR schedule, precision and data built from one config.

Seed 003's `train_with_engine` way in: build an Engine, then step it in a loop of your own.

    engine = vitscale.build_engine(vitscale.load_config("configs/cifar10/quick_cpu.py"),
                                   data="../shared/datasets/cifar10")
    for epoch in range(engine.cfg.NUM_EPOCHS):
        engine.train_loader.set_epoch(epoch)
        for images, labels in engine.train_loader:
            out = engine.train_step(images, labels)       # one optimizer step
        print(engine.evaluate())                          # {'loss': ..., 'acc1': ..., ...}

The Trainer (trainer.py) is the same engine stepped by a loop with hooks.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import Config
from ..data import build_loaders, find_splits, resolve_data_root
from ..data.mix import classification_loss
from ..evaluate import evaluate_model
from ..io import initialize_from
from ..models import build_model, count_parameters
from ..optim import build_optimizer, build_schedule, param_groups
from ..parallel import parallelize
from ..parallel.data import apply_data_parallel, gradient_sync
from ..plan import Plan, make_plan
from ..precision import Precision, ScalerSettings, build_precision


@dataclass
class StepOutput:
    """What one optimizer step produced. Tensors stay on the device: reading them syncs."""

    loss: torch.Tensor      # mean training loss over the step's images
    correct: torch.Tensor   # top-1 hits among them
    images: int


def pick_device(name: str | None = None) -> torch.device:
    if name:
        device = torch.device(name)
        if device.type == "cuda" and not torch.cuda.is_available():
            from ..errors import ConfigError
            raise ConfigError("--device cuda was given but no CUDA GPU is visible: "
                              "use --device cpu or check CUDA_VISIBLE_DEVICES")
        return device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class Engine:
    def __init__(self, cfg: Config, plan: Plan, model: nn.Module, device: torch.device,
                 train_loader=None, eval_loader=None, classes: list[str] | None = None,
                 val_loader=None, mesh=None, data_description: str = ""):
        self.cfg, self.plan, self.device, self.mesh = cfg, plan, device, mesh
        fp16 = cfg.fp16
        scaler = None if fp16 is None else ScalerSettings(
            init_scale=fp16.init_scale, growth_factor=fp16.growth_factor,
            backoff_factor=fp16.backoff_factor, growth_interval=fp16.growth_interval,
            hysteresis=fp16.hysteresis, min_scale=fp16.min_scale, max_scale=fp16.max_scale)
        data_parallel = mesh is not None and plan.dims.data > 1
        stage = cfg.zero.stage if (cfg.zero is not None and data_parallel) else None
        sharded = stage in (2, 3)
        # The precision policy decides dtypes: it may cast the model and give the optimizer
        # fp32 master copies instead of the model's own parameters. Under FSDP2 the sharded
        # fp32 parameters are the masters and FSDP's MixedPrecisionPolicy does the casting.
        self.precision: Precision = build_precision(plan.precision, device, scaler, sharded)
        model = self.precision.prepare_model(model)
        # FSDP2 must shard before the optimizer sees the parameters; DDP (and apex, which
        # must see the bare model) wrap after.
        if sharded:
            model = apply_data_parallel(model, stage, mesh, device, plan.precision)
        groups = self.precision.optimizer_groups(param_groups(model, cfg.WEIGHT_DECAY))
        optimizer = build_optimizer(groups, cfg, plan.peak_lr, device,
                                    zero_mesh=mesh if stage == 1 else None)
        model, self.optimizer = self.precision.attach(model, optimizer)
        if data_parallel and not sharded:
            model = apply_data_parallel(model, stage, mesh, device, plan.precision)
        self.model = model
        self.scheduler = build_schedule(self.optimizer, cfg, plan)
        self.train_loader, self.eval_loader = train_loader, eval_loader
        self.val_loader = val_loader
        self.classes = classes
        self.data_description = data_description
        self.num_parameters = count_parameters(model)

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Cross-entropy against class indices (with label smoothing) or, after Mixup/CutMix,
        against soft targets (b, classes) that already carry the smoothing."""
        return classification_loss(logits, labels, self.cfg.LABEL_SMOOTHING)

    def train_step(self, images: torch.Tensor, labels: torch.Tensor) -> StepOutput:
        """One optimizer step over `images`, split into `accumulation` micro-batches."""
        self.model.train()
        accum = self.plan.accumulation
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.int64)
        for i, (x, y) in enumerate(zip(images.chunk(accum), labels.chunk(accum))):
            # Gradients cross the network once per optimizer step: on the last micro-batch.
            with gradient_sync(self.model, enabled=i == accum - 1):
                with self.precision.autocast():
                    logits = self.model(self.precision.cast_input(x))
                loss = self.loss(logits, y)
                # Each backward adds to .grad: weight so the sum over micro-batches is the mean.
                self.precision.backward(loss * (len(y) / len(labels)) if accum > 1 else loss)
            loss_sum += loss.detach() * len(y)
            # With soft targets a hit is the class with the largest target weight.
            hard = y.argmax(-1) if y.ndim == 2 else y
            correct += (logits.detach().argmax(-1) == hard).sum()
        self.precision.step(self.optimizer, self.cfg.clip_grad_norm)
        with warnings.catch_warnings():
            # The schedule advances per optimizer step also when a loss scaler skipped one
            # (an fp16 overflow); torch warns about that order, which is intended here.
            warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)`")
            self.scheduler.step()
        return StepOutput(loss=loss_sum / len(labels), correct=correct, images=len(labels))

    def eval_loaders(self) -> dict:
        """The splits evaluated every EVAL_EVERY epochs: validation (if carved), then test."""
        loaders = {"val": self.val_loader} if self.val_loader is not None else {}
        return {**loaders, self.plan.dataset.eval_split: self.eval_loader}

    def evaluate(self, loader=None, per_class: bool = False) -> dict:
        """Loss and top-1/top-5 accuracy (in %) over `loader` (default: the test split)."""
        return evaluate_model(self.model, loader or self.eval_loader, self.plan.model.num_classes,
                              autocast=self.precision.autocast,
                              cast_input=self.precision.cast_input, per_class=per_class)


def build_engine(cfg: Config, data=None, device: str | torch.device | None = None, *,
                 with_data: bool = True, world_size: int = 1) -> Engine:
    """Everything a run needs, checked before any of it is built (bad input fails here).

    With `world_size` > 1 the process group must already be up (distributed/group.py): the
    device mesh is built from the plan's ParallelDims and each data-parallel rank reads its
    slice of every global batch.
    """
    plan = make_plan(cfg, world_size=world_size)
    device = device if isinstance(device, torch.device) else pick_device(device)
    mesh = plan.dims.build_mesh(device.type) if world_size > 1 else None
    dp_rank = mesh["dp"].get_local_rank() if mesh is not None else 0
    loaders = None
    if with_data:  # read data before building anything big: a bad --data fails fast
        splits = find_splits(cfg, resolve_data_root(data, cfg.DATASET))
        # The plan's step counts follow the images actually found (less VAL_SPLIT).
        train_size = len(splits.train.labels) - cfg.VAL_SPLIT
        plan = make_plan(cfg, world_size=world_size, train_size=train_size)
        loaders = build_loaders(cfg, splits, img_size=plan.model.img_size,
                                train_batch=plan.per_device_batch * plan.accumulation,
                                eval_batch=plan.eval_batch, device=device, rank=dp_rank,
                                world_size=plan.dims.data, num_classes=plan.model.num_classes)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = cfg.cudnn_benchmark
        torch.backends.cudnn.deterministic = cfg.cudnn_deterministic
        # TF32 runs fp32 matmuls on tensor cores (10-bit mantissa products, fp32 accumulate).
        torch.backends.cuda.matmul.allow_tf32 = cfg.tf32
        torch.backends.cudnn.allow_tf32 = cfg.tf32
    torch.manual_seed(cfg.SEED)  # the same initial weights on every rank
    model = build_model(plan.model, cfg.DROP_RATE, cfg.DROP_PATH_RATE).to(device)
    if cfg.INIT_FROM:
        for note in initialize_from(model, cfg.INIT_FROM):
            print(f"INIT_FROM {cfg.INIT_FROM}: {note}")
    model = parallelize(model, cfg)  # steps 1-3; data parallelism (step 4) is in Engine
    if loaders is None:
        return Engine(cfg, plan, model, device, mesh=mesh)
    return Engine(cfg, plan, model, device, loaders.train, loaders.evaluation, loaders.classes,
                  loaders.val, mesh, loaders.description)
