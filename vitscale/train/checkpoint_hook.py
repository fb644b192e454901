"""The hook that makes a run durable: resume at start, save on schedule and on signals."""

from __future__ import annotations

from pathlib import Path

from .checkpoint import CheckpointManager
from .hooks import Hook


class CheckpointHook(Hook):
    def __init__(self, run_dir: Path, settings):
        self.settings = settings
        self.manager = CheckpointManager(Path(run_dir) / "checkpoints", keep=settings.keep)

    def on_run_start(self, trainer) -> None:
        state = self.manager.load_latest(trainer.engine)
        if state is None:
            return
        trainer.load_state_dict(state["trainer"])
        trainer.resumed_from = state["checkpoint"]  # ConsoleLog says so (it runs after us)

    def on_step_end(self, trainer, output) -> None:
        every = self.settings.every_steps
        if every and trainer.state.step % every == 0:
            self.save(trainer)

    def on_epoch_end(self, trainer) -> None:
        every, done = self.settings.every_epochs, trainer.state.epochs_done
        last = done == trainer.cfg.NUM_EPOCHS or trainer.should_stop or \
            trainer.selection.should_stop
        if (every and done % every == 0) or last:
            self.save(trainer)

    def on_interrupt(self, trainer, signum: int) -> None:
        self.save(trainer)

    def save(self, trainer) -> None:
        path = self.manager.save(trainer.engine, {"step": trainer.state.step,
                                                  "trainer": trainer.state_dict()})
        trainer.last_checkpoint = str(path)
