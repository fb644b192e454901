"""TensorBoard events: scalars at every logged step and evaluation, and a few input images.

    vitscale tensorboard runs/<name>        # serves <run>/tensorboard on localhost

Scalars: train/loss, train/acc1, train/lr, train/images_per_s, train/loss_scale (fp16 modes),
train/grad_norm (when clipping), train/memory_gb; <split>/loss, <split>/acc1, <split>/acc5.
The x axis is the optimizer step. Rank 0 writes.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed as dist

from .hooks import Hook


def _memory_gb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 1e9
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


class TensorBoardHook(Hook):
    def __init__(self, log_dir: Path, images: int = 16):
        self.log_dir, self.images, self.writer = Path(log_dir), images, None

    def on_run_start(self, trainer) -> None:
        if dist.is_available() and dist.is_initialized() and dist.get_rank() != 0:
            return
        from torch.utils.tensorboard import SummaryWriter
        self.writer = SummaryWriter(str(self.log_dir))
        self._write_inputs(trainer)

    def _write_inputs(self, trainer) -> None:
        loader = trainer.engine.train_loader
        if loader is None or trainer.state.step:
            return
        images, labels = next(iter(loader))
        x = images[: self.images].float().cpu()
        lo, hi = x.amin(dim=(1, 2, 3), keepdim=True), x.amax(dim=(1, 2, 3), keepdim=True)
        self.writer.add_images("inputs/train", (x - lo) / (hi - lo).clamp(min=1e-6), 0)
        classes = trainer.engine.classes or []
        if labels.ndim == 2:       # Mixup/CutMix soft targets: name the dominant class
            labels = labels.argmax(-1)
        names = [classes[i] if i < len(classes) else str(i) for i in labels[: self.images].tolist()]
        self.writer.add_text("inputs/train_labels", ", ".join(names), 0)

    def on_step_end(self, trainer, output) -> None:
        r = trainer.log_record
        if self.writer is None or r is None:
            return
        step = r["step"]
        for key in ("loss", "acc1", "lr", "images_per_s"):
            self.writer.add_scalar(f"train/{key}", r[key], step)
        precision = trainer.engine.precision
        if precision.loss_scale is not None:
            self.writer.add_scalar("train/loss_scale", precision.loss_scale, step)
        if precision.last_grad_norm is not None:
            self.writer.add_scalar("train/grad_norm", float(precision.last_grad_norm), step)
        self.writer.add_scalar("train/memory_gb", _memory_gb(trainer.engine.device), step)
        if "pp_bubble" in r:   # pipeline: measured idle share beside the schedule's formula
            self.writer.add_scalar("pipeline/bubble", r["pp_bubble"], step)
            self.writer.add_scalar("pipeline/bubble_theory", r["pp_bubble_theory"], step)
            for stage, (busy, idle) in enumerate(zip(r["pp_busy_s"], r["pp_idle_s"])):
                self.writer.add_scalar(f"pipeline/busy_s_rank{stage}", busy, step)
                self.writer.add_scalar(f"pipeline/idle_s_rank{stage}", idle, step)

    def on_eval_end(self, trainer, record: dict) -> None:
        if self.writer is None:
            return
        for key in ("loss", "acc1", "acc5"):
            self.writer.add_scalar(f"{record['split']}/{key}", record[key], record["step"])
        self.writer.flush()

    def on_run_end(self, trainer, summary: dict) -> None:
        if self.writer is not None:
            self.writer.close()
