"""Training: the Engine (build + step) and the Trainer (the loop with hooks)."""

from .engine import Engine, StepOutput, build_engine, pick_device
from .hooks import ConsoleLog, Hook, ProgressBar
from .rundir import RunFiles, default_run_dir
from .trainer import Trainer, TrainState

__all__ = ["ConsoleLog", "Engine", "Hook", "ProgressBar", "RunFiles", "StepOutput",
           "TrainState", "Trainer", "build_engine", "default_run_dir", "pick_device"]
