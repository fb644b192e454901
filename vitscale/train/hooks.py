"""Hooks: code the Trainer calls at named points of the loop.

    on_run_start -> [on_epoch_start -> on_step_end* -> on_eval_end* -> on_epoch_end]* -> on_run_end

`on_interrupt(trainer, signum)` is called instead of the rest when SIGTERM/SIGINT stops a run
(after the step in progress).

Subclass Hook and override what you need. `trainer.state` holds the counters; on a step that
closes a logging interval `trainer.log_record` holds the train metrics (else it is None), so
hooks never force a device sync of their own. Built-in hooks: the progress bar, the console
epoch lines and the run directory's files (rundir.py).
"""

from __future__ import annotations

import sys

from tqdm import tqdm


class Hook:
    def on_run_start(self, trainer) -> None: ...
    def on_epoch_start(self, trainer) -> None: ...
    def on_step_end(self, trainer, output) -> None: ...
    def on_eval_end(self, trainer, record: dict) -> None: ...
    def on_epoch_end(self, trainer) -> None: ...
    def on_run_end(self, trainer, summary: dict) -> None: ...
    def on_interrupt(self, trainer, signum: int) -> None: ...


class ProgressBar(Hook):
    """A tqdm bar per epoch with loss, accuracy, LR and images/s (on a terminal only)."""

    def __init__(self, enabled: bool | None = None):
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.bar = None

    def on_epoch_start(self, trainer) -> None:
        if self.enabled:
            s = trainer.state
            self.bar = tqdm(total=len(trainer.engine.train_loader), unit="step", leave=False,
                            desc=f"epoch {s.epoch}/{trainer.cfg.NUM_EPOCHS}", dynamic_ncols=True)

    def on_step_end(self, trainer, output) -> None:
        if self.bar is None:
            return
        self.bar.update()
        r = trainer.log_record
        if r is not None:
            self.bar.set_postfix(loss=f"{r['loss']:.3f}", acc=f"{r['acc1']:.1f}%",
                                 lr=f"{r['lr']:.2e}", img_s=f"{r['images_per_s']:.0f}",
                                 refresh=False)

    def on_epoch_end(self, trainer) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class ConsoleLog(Hook):
    """The console lines (rank 0, stdout): where a resumed run picks up, one line per
    evaluation, and the summary at the end."""

    def on_run_start(self, trainer) -> None:
        if trainer.resumed_from:
            s = trainer.state
            tqdm.write(f"resuming from {trainer.resumed_from}: epoch {s.epochs_done + 1}, "
                       f"step {s.step} (batch {s.position} of the epoch)", file=sys.stdout)

    def on_eval_end(self, trainer, record: dict) -> None:
        train = trainer.last_train_record or {}
        parts = [f"epoch {record['epoch']:>3}/{trainer.cfg.NUM_EPOCHS}"]
        if train:
            parts.append(f"train loss {train['loss']:.4f} acc {train['acc1']:5.2f}%")
        parts.append(f"{record['split']} loss {record['loss']:.4f} acc {record['acc1']:5.2f}%")
        if train:
            parts.append(f"{train['images_per_s']:.0f} img/s")
            if train.get("mfu") is not None:
                parts.append(f"MFU {100 * train['mfu']:.1f}%")
        parts.append(f"{record['wall_s']:.0f}s")
        tqdm.write("  ".join(parts), file=sys.stdout)

    def on_run_end(self, trainer, summary: dict) -> None:
        where = f" -> {trainer.run_dir}" if trainer.run_dir else ""
        early = " (stopped early)" if summary["stopped_early"] else ""
        final = summary["final_acc1"]
        tqdm.write(f"done{early}: best {summary['best_split']} {summary['best_metric']} "
                   f"{summary['best_value']:.4g} (epoch {summary['best_epoch']}), final "
                   f"{summary['final_split']} acc1 {final:.2f}%, "
                   f"{summary['wall_seconds']:.0f}s{where}"
                   if final is not None else f"done: no evaluation ran{where}", file=sys.stdout)
