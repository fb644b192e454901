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

import contextlib
import logging
import warnings
from contextlib import nullcontext
from dataclasses import dataclass, fields

import torch

from ..config import Config
from ..data import build_loaders, find_splits, resolve_data_root
from ..data.infer import infer_dataset
from ..evaluate import evaluate_model
from ..models import build_model
from ..optim import build_optimizer, build_schedule, param_groups
from ..parallel import Parallelized, parallelize
from ..parallel.accounting import (ActivationMeter, CommLedger, mesh_group_names,
                                   parameter_footprint)
from ..parallel.data import gradient_sync
from ..plan import Plan, make_plan
from ..precision import Precision, ScalerSettings, build_precision

log = logging.getLogger(__name__)


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
    """Model, optimizer, schedule, precision and loaders of one run, and its optimizer step.

    `parallel` is the model after vitscale.parallel.parallelize (sharded, wrapped, with its
    weights) together with the OutputLayout that says how loss and metrics reduce.
    """

    def __init__(self, cfg: Config, plan: Plan, parallel: Parallelized, precision: Precision,
                 device: torch.device, train_loader=None, eval_loader=None,
                 classes: list[str] | None = None, val_loader=None, mesh=None,
                 data_description: str = ""):
        self.cfg, self.plan, self.device, self.mesh = cfg, plan, device, mesh
        self.parallel, self.layout, self.precision = parallel, parallel.layout, precision
        module = getattr(parallel.model, "module", parallel.model)  # DDP keeps names inside
        groups = precision.optimizer_groups(param_groups(module, cfg.WEIGHT_DECAY))
        zero_group = plan.dims.data_mesh(mesh).get_group() \
            if plan.dims.data_parallel == "ddp_zero1" else None
        optimizer = build_optimizer(groups, cfg, plan.peak_lr, device, zero_group=zero_group)
        self.model, self.optimizer = precision.attach(parallel.model, optimizer)
        self.scheduler = build_schedule(self.optimizer, cfg, plan)
        self.train_loader, self.eval_loader = train_loader, eval_loader
        self.val_loader = val_loader
        self.classes = classes
        self.data_description = data_description
        self.footprint = parameter_footprint(precision.state_module(self.model))
        self.num_parameters = self.footprint["parameters_total"]
        self.accounting: dict | None = None   # measured on the first optimizer step
        self.ema = None  # the weights' moving average when EMA_DECAY is set (ema.py)
        if cfg.EMA_DECAY:
            from .ema import WeightEMA
            self.ema = WeightEMA(self._evaluated_module, cfg.EMA_DECAY, cfg.EMA_WARMUP)
        self.pipeline = parallel.pipeline
        if self.pipeline is not None:
            self._setup_pipeline()

    # ---- pipeline parallelism (parallel/pipeline.py) -------------------------------------------

    def _setup_pipeline(self) -> None:
        """The schedule of A x M micro-batches per optimizer step; clipping's norm adds up over
        the pipeline group too (its other ranks hold the other stages)."""
        from ..plan import pipeline_micro_batches
        micro = pipeline_micro_batches(self.cfg, self.plan.dims) * self.plan.accumulation
        # This rank's images per step: a grid rank reads 1/s of its data-parallel rank's batch
        # (s = batch_split) and cuts that share into the micro-batches.
        per_rank = self.plan.per_device_batch * self.plan.accumulation // \
            self.plan.dims.batch_split
        self.precision.norm_groups = (self.pipeline.group,)
        # The model's size is the sum over the pipeline ranks (each holds its stages).
        import torch.distributed as dist
        total = torch.tensor(float(self.footprint["parameters_total"]))
        dist.all_reduce(total, group=self.pipeline.group)
        self.footprint["parameters_total"] = self.num_parameters = int(total.item())
        self._pipe_totals = torch.zeros(2, device=self.device)   # loss x images, hits
        self.pipeline.build_schedule(self._pipeline_loss, micro, per_rank // micro)
        from ..parallel.costs import StepShape, bubble_fraction
        self._bubble_theory = bubble_fraction(StepShape(
            self.plan.model, self.plan.dims, micro_batch=per_rank // micro, accumulation=micro))
        self._pipe_busy = self._pipe_seconds = 0.0
        self._pipe_steps = 0
        log.info("pipeline: %d micro-batches of %d images per step (%d x NUM_MICRO_BATCHES=%d), "
                 "%s schedule, theoretical bubble %.3f", micro, per_rank // micro,
                 self.plan.accumulation, micro // self.plan.accumulation,
                 self.plan.dims.pipeline_schedule, self._bubble_theory)

    def _pipeline_loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The schedule's loss_fn, on the last stage for each micro-batch: the mean loss,
        weighted by 1/(A M) before its backward (the schedule does not scale gradients), so
        that the gradients add up to those of the whole batch's mean; loss and hits summed."""
        loss = self.layout.loss(logits, y, self.cfg.LABEL_SMOOTHING)
        hard = y.argmax(-1) if y.ndim == 2 else y
        self._pipe_totals += torch.stack([loss.detach().float() * len(y),
                                          (logits.detach().argmax(-1) == hard).sum().float()])
        return loss * (self.layout.grad_scale / self.pipeline.micro_batches)

    def _pipeline_step(self, images, labels, meter=None) -> StepOutput:
        """One optimizer step as one pipeline schedule: images enter the first stage, labels
        the last; loss and hits of the whole batch are broadcast from the last stage."""
        self.model.train()
        pipe = self.pipeline
        self._pipe_totals.zero_()
        x = self.precision.cast_input(images) if pipe.has_first else None
        with self.precision.autocast(), meter.measure() if meter else nullcontext():
            pipe.step(x, labels if pipe.has_last else None)
        totals = pipe.broadcast_from_last(self._pipe_totals)
        self._pipe_busy += pipe.busy
        self._pipe_seconds += pipe.step_seconds
        self._pipe_steps += 1
        self.parallel.finish_gradients()
        self.precision.step(self.optimizer, self.cfg.clip_grad_norm)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)`")
            self.scheduler.step()
        n = self.plan.per_device_batch * self.plan.accumulation // self.plan.dims.batch_split
        return StepOutput(loss=totals[0] / n, correct=totals[1].round().long(), images=n)

    def pipeline_log(self) -> dict:
        """Each pipeline rank's figures averaged over the steps since the last call (for the
        training log, metrics.jsonl and TensorBoard): busy and idle seconds per step, the
        measured idle share over all of them, and the schedule's theoretical bubble
        (parallel/costs.py). A collective over the pipeline group (2 values per rank)."""
        if self.pipeline is None or not self._pipe_steps:
            return {}
        import torch.distributed as dist
        n = self._pipe_steps
        mine = torch.tensor([self._pipe_busy / n, self._pipe_seconds / n])
        self._pipe_busy = self._pipe_seconds = 0.0
        self._pipe_steps = 0
        stages = [torch.zeros(2) for _ in range(self.plan.dims.pipeline)]
        dist.all_gather(stages, mine, group=self.pipeline.group)   # 2 values per pipeline rank
        busy = [round(b.item(), 6) for b, _ in stages]
        idle = [round(max(t.item() - b.item(), 0.0), 6) for b, t in stages]
        total = sum(t.item() for _, t in stages)
        return {"pp_busy_s": busy, "pp_idle_s": idle,
                "pp_bubble": max(0.0, sum(idle) / total) if total else 0.0,
                "pp_bubble_theory": self._bubble_theory}

    @property
    def bubble(self) -> dict:
        """This rank's busy and idle seconds in the last pipeline step, and the idle share."""
        pipe = self.pipeline
        return {"busy_s": pipe.busy, "idle_s": max(pipe.step_seconds - pipe.busy, 0.0),
                "bubble": pipe.measured_bubble}

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def train_step(self, images: torch.Tensor, labels: torch.Tensor) -> StepOutput:
        """One optimizer step over `images`, split into `accumulation` micro-batches. The
        first step also measures what this rank holds and sends (self.accounting)."""
        out = self._measured_step(images, labels) if self.accounting is None else \
            self._step(images, labels)
        if self.ema is not None:  # the schedule counts optimizer steps, resumes included
            self.ema.update(self._evaluated_module, self.scheduler.last_epoch)
        return out

    @property
    def _evaluated_module(self):
        return getattr(self.model, "module", self.model)  # DDP keeps the model inside

    @contextlib.contextmanager
    def ema_weights(self):
        """The moving average in the model (and in the fp32 masters that exports read) for
        the duration, when EMA_DECAY is set; the trained weights again after."""
        if self.ema is None:
            yield
            return
        modules = {id(m): m for m in (self._evaluated_module,
                                      self.precision.state_module(self.model))}
        with contextlib.ExitStack() as stack:
            for module in modules.values():
                stack.enter_context(self.ema.swapped(module))
            yield

    def _step(self, images, labels, meter=None) -> StepOutput:
        if self.pipeline is not None:
            return self._pipeline_step(images, labels, meter)
        self.model.train()
        accum = self.plan.accumulation
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.int64)
        for i, (x, y) in enumerate(zip(images.chunk(accum), labels.chunk(accum))):
            # Gradients cross the network once per optimizer step: on the last micro-batch.
            with gradient_sync(self.model, enabled=i == accum - 1):
                with self.precision.autocast(), meter.measure() if meter else nullcontext():
                    logits = self.model(self.precision.cast_input(x))
                with self.layout.loss_context():
                    loss = self.layout.loss(logits, y, self.cfg.LABEL_SMOOTHING)
                    # Each backward adds to .grad: weight so the sum over micro-batches (and, in
                    # a grid mode, over the grid's batch shares) is the mean.
                    weight = (len(y) / len(labels) if accum > 1 else 1.0) * self.layout.grad_scale
                    self.precision.backward(loss * weight if weight != 1.0 else loss)
            loss_sum += self.layout.full(loss.detach()) * len(y)
            # With soft targets a hit is the class with the largest target weight.
            hard = y.argmax(-1) if y.ndim == 2 else y
            correct += (self.layout.full(logits.detach()).argmax(-1) == hard).sum()
            meter = None  # activations of one micro-batch
        self.parallel.finish_gradients()
        self.precision.step(self.optimizer, self.cfg.clip_grad_norm)
        with warnings.catch_warnings():
            # The schedule advances per optimizer step also when a loss scaler skipped one
            # (an fp16 overflow); torch warns about that order, which is intended here.
            warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)`")
            self.scheduler.step()
        return StepOutput(loss=loss_sum / len(labels), correct=correct, images=len(labels))

    def _measured_step(self, images, labels) -> StepOutput:
        """The step, with every collective counted and the activations of one micro-batch."""
        meter = ActivationMeter(self.model)
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        with CommLedger(mesh_group_names(self.mesh)) as ledger:
            out = self._step(images, labels, meter)
        self.ledger = ledger  # its ordered events help to read a layout's traffic
        micro = self.pipeline.micro_batches if self.pipeline is not None else \
            self.plan.accumulation
        self.accounting = {
            **self.footprint, "activation_bytes_per_micro_batch": meter.bytes // (
                micro if self.pipeline is not None else 1),
            "micro_batch": out.images // micro,
            "comm_bytes_per_step": ledger.summary(),
            **({"cuda_max_memory_allocated": torch.cuda.max_memory_allocated(self.device)}
               if self.device.type == "cuda" else {})}
        log.info("rank holds %s of %s parameters (%.1f MB); first step: %.2f MB of activations "
                 "per micro-batch, %.3f MB communicated (%s)",
                 f"{self.footprint['parameters_per_rank']:,}",
                 f"{self.footprint['parameters_total']:,}",
                 self.footprint["parameter_bytes_per_rank"] / 1e6,
                 self.accounting["activation_bytes_per_micro_batch"] / 1e6,
                 ledger.summary()["total_bytes"] / 1e6, describe_comm(ledger.summary()))
        return out

    def eval_loaders(self) -> dict:
        """The splits evaluated every EVAL_EVERY epochs: validation (if carved), then test."""
        loaders = {"val": self.val_loader} if self.val_loader is not None else {}
        return {**loaders, self.plan.dataset.eval_split: self.eval_loader}

    def evaluate(self, loader=None, per_class: bool = False) -> dict:
        """Loss and top-1/top-5 accuracy (in %) over `loader` (default: the test split), of
        the moving average when EMA_DECAY is set, flip-averaged when TTA_FLIP is."""
        with self.ema_weights():
            return evaluate_model(self.model, loader or self.eval_loader,
                                  self.plan.model.num_classes, autocast=self.precision.autocast,
                                  cast_input=self.precision.cast_input, per_class=per_class,
                                  layout=self.layout, tta_flip=self.cfg.TTA_FLIP)


def build_engine(cfg: Config, data=None, device: str | torch.device | None = None, *,
                 with_data: bool = True, world_size: int = 1) -> Engine:
    """Everything a run needs, checked before any of it is built (bad input fails here).

    With `world_size` > 1 the process group must already be up (distributed/group.py): the
    device mesh is built from the plan's ParallelDims and each data-parallel rank reads its
    slice of every global batch (tensor-parallel peers read the same slice).
    """
    if cfg.DATASET in (None, "folder"):  # which dataset the data or keys describe (data/infer.py)
        cfg = infer_dataset(cfg, data, scan=with_data).config
    plan = make_plan(cfg, world_size=world_size)
    device = device if isinstance(device, torch.device) else pick_device(device)
    mesh = plan.dims.build_mesh(device.type) if world_size > 1 else None
    data_rank = plan.dims.data_mesh(mesh).get_local_rank() if mesh is not None else 0
    # Training: each rank reads its own images (a grid mode splits the data-parallel rank's
    # batch over its grid too). Evaluation: per data-parallel rank; a grid splits each batch.
    train_rank, train_world = plan.dims.loader_shard(mesh)
    loaders = None
    if with_data:  # read data before building anything big: a bad --data fails fast
        splits = find_splits(cfg, resolve_data_root(data or cfg.data.root, cfg.DATASET))
        # The plan's step counts follow the images actually found (less VAL_SPLIT).
        train_size = len(splits.train.labels) - cfg.VAL_SPLIT
        plan = make_plan(cfg, world_size=world_size, train_size=train_size)
        loaders = build_loaders(cfg, splits, img_size=plan.model.img_size,
                                train_batch=plan.per_device_batch * plan.accumulation
                                // plan.dims.batch_split,
                                eval_batch=plan.eval_batch, device=device, rank=train_rank,
                                world_size=train_world, num_classes=plan.model.num_classes,
                                eval_rank=data_rank, eval_world_size=plan.dims.data)
        if plan.dims.pipeline > 1:
            loaders = _stage_loaders(loaders, plan, mesh)
    return engine_from_plan(cfg, plan, device, mesh, loaders)


def _stage_loaders(loaders, plan: Plan, mesh):
    """Under pipeline parallelism only the first stage needs images and the last labels.
    Training: a rank with the first stage reads both, one with only the last reads labels
    (data/base.py LabelsOnly: no image decoded or augmented), any other reads nothing (its
    loader yields (None, None)). Evaluation: every pipeline rank computes the metrics from the
    broadcast logits, so each reads labels; only the first stage's rank reads images."""
    from ..data.mix import labels_only
    from ..parallel.pipeline import stage_ids
    dims = plan.dims
    ids = stage_ids(mesh["pp"].get_local_rank(), dims.pipeline, dims.pipeline_chunks,
                    dims.pipeline_schedule)
    if 0 in ids:
        return loaders
    side = plan.model.img_size
    train = loaders.train
    if train is not None:
        last = dims.pipeline * dims.pipeline_chunks - 1 in ids
        train = labels_only(train, side) if last else NoData(len(train))
    import dataclasses
    return dataclasses.replace(
        loaders, train=train, evaluation=labels_only(loaders.evaluation, side),
        val=labels_only(loaders.val, side) if loaders.val is not None else None)


class NoData:
    """The training loader of a middle pipeline stage: as many batches, none of them read."""

    def __init__(self, batches: int):
        self.batches = batches

    def __len__(self) -> int:
        return self.batches

    def set_epoch(self, epoch: int) -> None:
        pass

    def __iter__(self):
        return iter([(None, None)] * self.batches)


def engine_from_plan(cfg: Config, plan: Plan, device: torch.device, mesh=None, loaders=None
                     ) -> Engine:
    """The model built, parallelized and initialised for `plan`, with its optimizer;
    `loaders` is what data.build_loaders returned (None: an engine without data)."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = cfg.cudnn_benchmark
        torch.backends.cudnn.deterministic = cfg.cudnn_deterministic
        # TF32 runs fp32 matmuls on tensor cores (10-bit mantissa products, fp32 accumulate).
        torch.backends.cuda.matmul.allow_tf32 = cfg.tf32
        torch.backends.cudnn.allow_tf32 = cfg.tf32
    # One random stream for dropout and DropPath, the same on every rank: tensor-parallel
    # peers must drop the same units of the activations they share.
    torch.manual_seed(cfg.SEED)
    precision = build_precision(plan.precision, device, scaler_settings(cfg.fp16),
                                sharded=plan.dims.uses_fsdp)
    with torch.device("meta"):  # no memory until parallelize has sharded it
        model = build_model(plan.model, cfg.DROP_RATE, cfg.DROP_PATH_RATE)
    parallel = parallelize(model, cfg, plan.dims, mesh, device, precision)
    data = {} if loaders is None else dict(
        train_loader=loaders.train, eval_loader=loaders.evaluation, classes=loaders.classes,
        val_loader=loaders.val, data_description=loaders.description)
    return Engine(cfg, plan, parallel, precision, device, mesh=mesh, **data)


def scaler_settings(fp16) -> ScalerSettings | None:
    """The loss-scaler options of `fp16 = dict(...)`, or None when the config has none."""
    if fp16 is None:
        return None
    return ScalerSettings(**{f.name: getattr(fp16, f.name) for f in fields(ScalerSettings)})


def describe_comm(summary: dict) -> str:
    """'tp all_reduce 1.2 MB x 28, dp ...' from CommLedger.summary()."""
    parts = [f"{dim} {kind} {v['bytes'] / 1e6:.3f} MB x {v['calls']}"
             for dim, kinds in summary["by_dim"].items() for kind, v in kinds.items()]
    return ", ".join(parts) or "none"
