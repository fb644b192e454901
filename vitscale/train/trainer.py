"""The Trainer: seed 003's `train_with_trainer` way in. The loop reads top to bottom.

    trainer = Trainer(build_engine(cfg, data=...), run_dir="runs/quick_cpu")
    summary = trainer.fit()      # {'best_acc1': ..., 'final_acc1': ..., 'wall_seconds': ...}

Each epoch: train (one Engine.train_step per optimizer step), evaluate every EVAL_EVERY
epochs, and call the hooks (hooks.py) at the named points. Train metrics stay on the device
between logging points, so the loop syncs with the device only every LOG_EVERY steps.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import __version__
from .engine import Engine, StepOutput
from .hooks import ConsoleLog, Hook, ProgressBar
from .rundir import RunFiles


@dataclass
class TrainState:
    epoch: int = 0          # 1-based number of the current epoch
    step: int = 0           # optimizer steps taken so far
    images_seen: int = 0
    best_acc1: float = float("-inf")
    best_epoch: int = 0
    final_eval: dict | None = None


class TrainMeter:
    """Sums loss, hits and images on the device; `flush` reads them (one sync) and resets."""

    def __init__(self, device: torch.device):
        self.device = device
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
        loss, correct = self.loss.item(), self.correct.item()  # the sync point
        seconds = time.perf_counter() - self.started
        record = {"loss": loss / self.images, "acc1": 100.0 * correct / self.images,
                  "images_per_s": self.images / max(seconds, 1e-9)}
        self.reset()
        return record


class Trainer:
    def __init__(self, engine: Engine, run_dir: str | os.PathLike | None = None,
                 hooks: list[Hook] | None = None, progress: bool | None = None,
                 console: bool = True):
        self.engine, self.cfg = engine, engine.cfg
        self.run_dir = Path(run_dir) if run_dir is not None else None
        builtin: list[Hook] = [ProgressBar(progress)]
        if console:
            builtin.append(ConsoleLog())
        if self.run_dir is not None:
            builtin.append(RunFiles(self.run_dir))
        self.hooks = builtin + list(hooks or [])
        self.state = TrainState()
        self.log_record: dict | None = None         # set on steps that close a log interval
        self.last_train_record: dict | None = None
        self.environment = describe_environment(engine.device)
        self._start = 0.0

    def fit(self) -> dict:
        self._start = time.perf_counter()
        self._call("on_run_start")
        for epoch in range(1, self.cfg.NUM_EPOCHS + 1):
            self.state.epoch = epoch
            self._call("on_epoch_start")
            self.train_epoch()
            if epoch % self.cfg.EVAL_EVERY == 0 or epoch == self.cfg.NUM_EPOCHS:
                self.evaluate()
            self._call("on_epoch_end")
        summary = self.summary()
        self._call("on_run_end", summary)
        return summary

    def train_epoch(self) -> None:
        loader, meter = self.engine.train_loader, TrainMeter(self.engine.device)
        loader.set_epoch(self.state.epoch - 1)
        last = len(loader)
        for i, (images, labels) in enumerate(loader, start=1):
            out = self.engine.train_step(images, labels)
            self.state.step += 1
            self.state.images_seen += out.images
            meter.add(out)
            self.log_record = None
            if self.state.step % self.cfg.LOG_EVERY == 0 or i == last:
                self.log_record = self.last_train_record = {
                    "split": "train", "epoch": self.state.epoch, "step": self.state.step,
                    **meter.flush(), "lr": self.engine.lr, "wall_s": self.wall_seconds}
            self._call("on_step_end", out)
        self.log_record = None

    def evaluate(self) -> dict:
        metrics = self.engine.evaluate()
        record = {"split": self.engine.plan.dataset.eval_split, "epoch": self.state.epoch,
                  "step": self.state.step, **metrics, "lr": self.engine.lr,
                  "wall_s": self.wall_seconds}
        if record["acc1"] > self.state.best_acc1:
            self.state.best_acc1, self.state.best_epoch = record["acc1"], self.state.epoch
        self.state.final_eval = record
        self._call("on_eval_end", record)
        return record

    @property
    def wall_seconds(self) -> float:
        return time.perf_counter() - self._start

    def summary(self) -> dict:
        final = self.state.final_eval or {}
        return {
            "best_acc1": self.state.best_acc1, "best_epoch": self.state.best_epoch,
            "best_split": self.engine.plan.dataset.eval_split,
            "final_acc1": final.get("acc1"), "final_acc5": final.get("acc5"),
            "final_loss": final.get("loss"), "epochs": self.state.epoch,
            "steps": self.state.step, "images_seen": self.state.images_seen,
            "wall_seconds": self.wall_seconds, "model": self.engine.plan.model_name,
            "num_parameters": self.engine.num_parameters, **self.environment,
        }

    def _call(self, point: str, *args) -> None:
        for hook in self.hooks:
            getattr(hook, point)(self, *args)


def describe_environment(device: torch.device) -> dict:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    return {"device": f"{device} ({name})", "vitscale_version": __version__,
            "torch_version": torch.__version__, "python_version": platform.python_version(),
            "hostname": platform.node()}
