"""The run directory: everything a run leaves behind, readable without vitscale.

    runs/<name>/
      config.py        the resolved config as a config file: `vitscale train` it to reproduce
      config.json      the same, machine-readable, plus the derived plan and environment
      metrics.jsonl    one JSON object per logged train interval and per evaluation, and
                       one {"split": "accounting"} record of rank 0's parameters, activations
                       and communication bytes, measured on the first step
      checkpoints/     step-N/ folders (checkpoint.py): the run resumes from the newest
      model_best.*     the best model on the selection split (safetensors + json)
      model_final.*    the model at the end
      tensorboard/     TensorBoard events
      summary.json     best and final accuracy, epochs, wall time, device, versions (at the end)
      report.html, report/   plots (at the end; `vitscale report` redraws them)

Running the same command again resumes the run in its directory; `--reset` moves the old
directory aside (`<name>.reset-<time>`) and starts over: nothing is deleted.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from ..atomic import atomic_write_json, atomic_write_text
from ..errors import ConfigError
from ..logs import is_rank0
from .hooks import Hook

# Keys that may change between a run and its resumption (they do not change what is trained).
# The layout may change too (`parallel`, `zero`): data order and augmentation do not depend on
# the world size, and checkpoints hold global tensors that reshard (DDP <-> FSDP, 2 ranks ->
# 1 or 4, tensor size 2 -> 1 or 4).
RESUMABLE_CHANGES = {"NUM_EPOCHS", "LOG_EVERY", "EVAL_EVERY", "EVAL_BATCH_SIZE",
                     "LIMIT_EVAL_BATCHES", "EARLY_STOPPING_PATIENCE", "checkpoints",
                     "tensorboard", "report", "compile", "cudnn_benchmark", "zero", "parallel",
                     "dist_timeout"}


def default_run_dir(config_path: str | os.PathLike, root: str | os.PathLike = "runs") -> Path:
    return Path(root) / Path(config_path).stem


def has_checkpoint(run_dir: Path) -> bool:
    from .checkpoint import CheckpointManager
    return bool(CheckpointManager(Path(run_dir) / "checkpoints").complete())


def check_resumable(run_dir: Path, cfg) -> None:
    """Refuse to resume a run whose saved config differs in what it trains."""
    saved_path = Path(run_dir) / "config.json"
    if not saved_path.is_file():
        return
    saved = json.loads(saved_path.read_text())["config"]
    now = cfg.to_dict()
    changed = sorted(k for k in set(saved) | set(now)
                     if k not in RESUMABLE_CHANGES and saved.get(k) != now.get(k))
    if changed:
        k = changed[0]
        raise ConfigError(f"{run_dir} holds a run with {k}={saved.get(k)!r}, this config has "
                          f"{k}={now.get(k)!r}: pass --reset to start over (the old run is "
                          "kept aside) or --run-dir for a new directory")


def reset_run_dir(run_dir: Path) -> Path | None:
    """Move an existing run directory aside; returns where it went."""
    run_dir = Path(run_dir)
    if not run_dir.exists() or not any(run_dir.iterdir()):
        return None
    target = run_dir.with_name(f"{run_dir.name}.reset-{time.strftime('%Y%m%d-%H%M%S')}")
    os.replace(run_dir, target)
    return target


class RunFiles(Hook):
    """Writes config.*, metrics.jsonl and summary.json (rank 0)."""

    def __init__(self, run_dir: str | os.PathLike):
        self.run_dir = Path(run_dir)
        self.metrics = None

    def on_run_start(self, trainer) -> None:
        if not is_rank0():
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.run_dir / "config.py", trainer.cfg.to_python())
        atomic_write_json(self.run_dir / "config.json",
                          {"config": trainer.cfg.to_dict(), "plan": trainer.engine.plan.derived(),
                           "num_parameters": trainer.engine.num_parameters,
                           "environment": trainer.environment})
        path = self.run_dir / "metrics.jsonl"
        if path.is_file():
            # Records after the checkpoint (all of them, without one) belong to the lost part
            # of an interrupted run: they are written again as training repeats those steps.
            kept = [line for line in path.read_text().splitlines()
                    if line.strip() and json.loads(line)["step"] <= trainer.state.step]
            atomic_write_text(path, "".join(line + "\n" for line in kept))
        self.metrics = open(path, "a", buffering=1)

    def _write(self, record: dict) -> None:
        if self.metrics is not None:
            self.metrics.write(json.dumps(record) + "\n")

    def on_step_end(self, trainer, output) -> None:
        accounting = trainer.engine.accounting
        if accounting is not None and not getattr(self, "_accounted", False):
            self._accounted = True
            self._write({"split": "accounting", "epoch": trainer.state.epoch,
                         "step": trainer.state.step, "layout": trainer.engine.plan.dims.describe(),
                         **accounting})
        if trainer.log_record is not None:
            self._write(trainer.log_record)

    def on_eval_end(self, trainer, record: dict) -> None:
        self._write(record)

    def on_interrupt(self, trainer, signum: int) -> None:
        if self.metrics is not None:
            self.metrics.close()

    def on_run_end(self, trainer, summary: dict) -> None:
        if self.metrics is None:
            return
        self.metrics.close()
        atomic_write_json(self.run_dir / "summary.json", summary)
