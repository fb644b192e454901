"""The Trainer: seed 003's `train_with_trainer` way in. The loop reads top to bottom.

    trainer = Trainer(build_engine(cfg, data=...), run_dir="runs/quick_cpu")
    summary = trainer.fit()      # {'best_acc1': ..., 'final_acc1': ..., 'wall_seconds': ...}

Each epoch: train (one Engine.train_step per optimizer step), evaluate every EVAL_EVERY
epochs (the validation split, when there is one, then the test split), and call the hooks
(hooks.py) at the named points. Train metrics stay on the device between logging points, so
the loop syncs with the device only every LOG_EVERY steps.

With a run directory the run is durable (checkpoint.py): it resumes from the directory's last
checkpoint, saves every `checkpoints['every_epochs']` epochs / `['every_steps']` steps, and on
SIGTERM or SIGINT (a SLURM preemption, Ctrl-C) saves at the next step boundary before exiting.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import platform
import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist

from .. import __version__
from ..distributed import watchdog
from ..errors import VitscaleError
from ..logs import is_rank0
from .engine import Engine, StepOutput
from .hooks import ConsoleLog, Hook, ProgressBar
from .mfu import utilisation
from .selection import Selection

log = logging.getLogger(__name__)


class Interrupted(VitscaleError):
    """A signal stopped the run after its state was saved; the same command resumes it."""

    def __init__(self, signum: int, checkpoint: str | None):
        self.signum = signum
        where = f"state saved in {checkpoint}; " if checkpoint else ""
        super().__init__(f"stopped by {signal.Signals(signum).name}: {where}run the same "
                         "command again to resume")


@dataclass
class TrainState:
    epoch: int = 0              # 1-based number of the epoch in progress (or last one run)
    epochs_done: int = 0        # epochs finished, evaluation included
    position: int = 0           # optimizer steps done in the epoch in progress
    step: int = 0               # optimizer steps taken so far
    images_seen: int = 0
    elapsed: float = 0.0        # wall seconds spent by earlier processes of this run
    selection: dict = field(default_factory=dict)
    final_eval: dict | None = None


class TrainMeter:
    """Sums loss, hits and images on the device; `flush` reads them (one sync) and resets.

    The sums add up over the ranks the batch is split across (`layout.sum_over_batch`: the
    data-parallel group), not over tensor-parallel peers, which hold the same images.
    """

    def __init__(self, device: torch.device, layout):
        self.device = device
        self.layout = layout
        self.reset()

    def reset(self) -> None:
        self.loss = torch.zeros((), device=self.device)
        self.correct = torch.zeros((), device=self.device, dtype=torch.int64)
        self.images = 0
        self.started = time.perf_counter()

    def add(self, out: StepOutput) -> None:
        self.loss += out.loss * out.images
        self.correct += out.correct
        self.images += out.images

    def flush(self) -> dict:
        """Loss and accuracy over every rank's images since the last flush (one sync)."""
        totals = torch.stack([self.loss, self.correct.to(self.loss.dtype),
                              torch.tensor(float(self.images), device=self.device)])
        self.layout.sum_over_batch(totals)  # sums: the global mean, not a mean of means
        loss, correct, images = totals.tolist()
        seconds = time.perf_counter() - self.started
        record = {"loss": loss / images, "acc1": 100.0 * correct / images,
                  "images_per_s": images / max(seconds, 1e-9)}
        self.reset()
        return record


class Trainer:
    def __init__(self, engine: Engine, run_dir: str | os.PathLike | None = None,
                 hooks: list[Hook] | None = None, progress: bool | None = None,
                 console: bool = True):
        self.engine, self.cfg = engine, engine.cfg
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.state = TrainState()
        self.selection = Selection(self.cfg.SELECTION_METRIC, self.cfg.EARLY_STOPPING_PATIENCE)
        self.selection_split = "val" if engine.val_loader is not None else \
            engine.plan.dataset.eval_split
        self.log_record: dict | None = None         # set on steps that close a log interval
        self.last_train_record: dict | None = None
        self.improved = False                       # the last evaluation set a new best
        self.should_stop = False                    # hooks set it to end the run early
        self.resumed_from: str | None = None
        self.last_checkpoint: str | None = None     # set by the checkpoint hook
        self.environment = describe_environment(engine.device)
        # MFU beside images/s in every train record (mfu.py: the planner's FLOP formula and
        # hardware.py's peak); arithmetic on the logged images/s, no extra device sync.
        self.utilisation = utilisation(engine.plan.model, engine.device, engine.plan.dims.world)
        log.info("MFU: %s GFLOP per training image, against %s",
                 f"{self.utilisation.flops_per_image / 1e9:.4g}"
                 if self.utilisation.flops_per_image else "?", self.utilisation.peak)
        self.hooks = self._builtin_hooks(progress, console) + list(hooks or [])
        self._stop_signal: int | None = None
        self._start = 0.0

    def _builtin_hooks(self, progress, console) -> list[Hook]:
        rank0 = is_rank0()
        hooks: list[Hook] = [ProgressBar(progress)] if rank0 else []
        if console and rank0:
            hooks.append(ConsoleLog())
        if self.run_dir is not None:
            from .checkpoint_hook import CheckpointHook
            from .exporter import ExportHook
            from .rundir import RunFiles
            hooks = [CheckpointHook(self.run_dir, self.cfg.checkpoints)] + hooks
            hooks += [RunFiles(self.run_dir), ExportHook(self.run_dir)]
            if self.cfg.tensorboard:
                from .tensorboard import TensorBoardHook
                hooks.append(TensorBoardHook(self.run_dir / "tensorboard"))
        return hooks

    # ---- the loop -------------------------------------------------------------------------

    def fit(self) -> dict:
        self._start = time.perf_counter()
        with self._signals_caught():
            self._call("on_run_start")  # may resume: restores engine and self.state
            for epoch in range(self.state.epochs_done + 1, self.cfg.NUM_EPOCHS + 1):
                self.state.epoch = epoch
                self._call("on_epoch_start")
                self.train_epoch()
                if self._stop_signal is not None:
                    self._call("on_interrupt", self._stop_signal)
                    raise Interrupted(self._stop_signal, self.last_checkpoint)
                if epoch % self.cfg.EVAL_EVERY == 0 or epoch == self.cfg.NUM_EPOCHS:
                    self.evaluate()
                self.state.epochs_done, self.state.position = epoch, 0
                self._call("on_epoch_end")
                if self.should_stop or self.selection.should_stop:
                    break
        summary = {**self.summary(), "accounting_per_rank": self.gather_accounting()}
        self._call("on_run_end", summary)
        return summary

    def train_epoch(self) -> None:
        loader = self.engine.train_loader
        meter = TrainMeter(self.engine.device, self.engine.layout)
        loader.set_epoch(self.state.epoch - 1)
        last = len(loader)
        for images, labels in skip_batches(loader, self.state.position):
            out = self.engine.train_step(images, labels)
            self.state.step += 1
            watchdog.note_step(self.state.step)
            self.state.position += 1
            self.state.images_seen += out.images
            meter.add(out)
            self.log_record = None
            if self.state.step % self.cfg.LOG_EVERY == 0 or self.state.position == last:
                train = meter.flush()
                self.log_record = self.last_train_record = {
                    "split": "train", "epoch": self.state.epoch, "step": self.state.step,
                    **train, **self.utilisation.record(train["images_per_s"]),
                    "lr": self.engine.lr, "wall_s": self.wall_seconds,
                    **self.engine.pipeline_log()}   # pipeline: busy, idle, bubble
            self._call("on_step_end", out)
            if self._stop_requested():
                return
        self.log_record = None

    def evaluate(self) -> list[dict]:
        records = []
        for split, loader in self.engine.eval_loaders().items():
            metrics = self.engine.evaluate(loader)
            record = {"split": split, "epoch": self.state.epoch, "step": self.state.step,
                      **metrics, "lr": self.engine.lr, "wall_s": self.wall_seconds}
            if split == self.selection_split:
                self.improved = self.selection.update(record)
            if split == self.engine.plan.dataset.eval_split:
                self.state.final_eval = record
            records.append(record)
            self._call("on_eval_end", record)
        return records

    # ---- signals: save and stop at a step boundary ----------------------------------------

    @contextlib.contextmanager
    def _signals_caught(self):
        """SIGTERM and SIGINT ask the loop to save and stop after the step in progress."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handle(signum, frame):
            if self._stop_signal is not None and signum == signal.SIGINT:
                raise KeyboardInterrupt  # a second Ctrl-C stops at once
            self._stop_signal = signum

        saved = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for sig, handler in saved.items():
                signal.signal(sig, handler)

    def _stop_requested(self) -> bool:
        """True on every rank if any rank got a stop signal (ranks must stop at one step)."""
        flag = self._stop_signal is not None
        if dist.is_available() and dist.is_initialized():
            t = torch.tensor([self._stop_signal or 0], device=self.engine.device)
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
            self._stop_signal = int(t.item()) or None
            flag = self._stop_signal is not None
        return flag

    # ---- bookkeeping ------------------------------------------------------------------------

    @property
    def wall_seconds(self) -> float:
        return self.state.elapsed + time.perf_counter() - self._start

    def state_dict(self) -> dict:
        self.state.selection = self.selection.state_dict()
        return {**asdict(self.state), "elapsed": self.wall_seconds}

    def load_state_dict(self, state: dict) -> None:
        known = TrainState.__dataclass_fields__
        self.state = TrainState(**{k: v for k, v in state.items() if k in known})
        if self.state.selection:
            self.selection.load_state_dict(self.state.selection)
        self._start = time.perf_counter()

    def summary(self) -> dict:
        final = self.state.final_eval or {}
        return {
            "best_metric": self.selection.metric, "best_split": self.selection_split,
            "best_value": self.selection.best, "best_epoch": self.selection.best_epoch,
            "best_acc1": self.selection.best if self.selection.metric == "acc1" else None,
            "final_acc1": final.get("acc1"), "final_acc5": final.get("acc5"),
            "final_loss": final.get("loss"), "final_split": final.get("split"),
            "epochs": self.state.epochs_done, "steps": self.state.step,
            "images_seen": self.state.images_seen,
            "stopped_early": self.selection.should_stop or self.should_stop,
            "resumed_from": self.resumed_from,
            "wall_seconds": self.wall_seconds, "model": self.engine.plan.model_name,
            "num_parameters": self.engine.num_parameters,
            "ema_decay": self.cfg.EMA_DECAY, "tta_flip": self.cfg.TTA_FLIP,
            **self.utilisation.summary(), **self.environment,
        }

    def gather_accounting(self) -> list[dict] | None:
        """Every rank's measured parameters, activations and communication (rank order)."""
        mine = self.engine.accounting
        if not (dist.is_available() and dist.is_initialized()):
            return None if mine is None else [mine]
        every = [None] * dist.get_world_size()
        dist.all_gather_object(every, mine)
        return None if any(a is None for a in every) else every

    def _call(self, point: str, *args) -> None:
        for hook in self.hooks:
            getattr(hook, point)(self, *args)


def skip_batches(loader, position: int):
    """Iterate `loader` from batch `position` on (resume in the middle of an epoch)."""
    if position and hasattr(loader, "load_state_dict"):
        loader.load_state_dict({**loader.state_dict(), "position": position})
        return iter(loader)
    # Deterministic loaders replay the skipped batches' random draws, so the rest is exact.
    return itertools.islice(iter(loader), position, None)


def describe_environment(device: torch.device) -> dict:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    return {"device": f"{device} ({name})", "vitscale_version": __version__,
            "torch_version": torch.__version__, "python_version": platform.python_version(),
            "hostname": platform.node()}
