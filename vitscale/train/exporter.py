"""Exports the best model (on the selection split) and the final model as safetensors files.

    <run>/model_best.safetensors + model_best.json     rewritten at each new best evaluation
    <run>/model_final.safetensors + model_final.json   at the end of the run

The weights are gathered into one fp32 state dict whatever the layout (a collective under
FSDP: every rank takes part, rank 0 writes); with EMA_DECAY they are the moving average.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import get_model_state_dict

from ..io import export_model
from .hooks import Hook


def full_state_dict(engine) -> dict:
    """Every parameter whole, on the CPU (a collective when any is sharded: all ranks call)."""
    from ..optim.norms import DTensor
    module = engine.precision.state_module(engine.model)
    with engine.ema_weights() if hasattr(engine, "ema_weights") else contextlib.nullcontext():
        state = engine.parallel.to_global(get_model_state_dict(module))
        state = {k: (v.full_tensor() if isinstance(v, DTensor) else v).detach().cpu().clone()
                 for k, v in state.items()}
    if getattr(engine, "pipeline", None) is not None:
        # Each pipeline rank holds its stages' parameters: gather them over the pipeline group
        # (object all-gather of CPU tensors: every rank ends with the whole model).
        parts = [None] * dist.get_world_size(engine.pipeline.group)
        dist.all_gather_object(parts, state, group=engine.pipeline.group)
        state = {k: v for part in parts for k, v in part.items()}
    return state


class ExportHook(Hook):
    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)

    def on_eval_end(self, trainer, record: dict) -> None:
        if record["split"] == trainer.selection_split and trainer.improved:
            self.export(trainer, "model_best", record)

    def on_run_end(self, trainer, summary: dict) -> None:
        self.export(trainer, "model_final", trainer.state.final_eval or {})

    def export(self, trainer, name: str, record: dict) -> None:
        state = full_state_dict(trainer.engine)
        if dist.is_available() and dist.is_initialized() and dist.get_rank() != 0:
            return
        engine = trainer.engine
        export_model(state, engine.plan.model, self.run_dir / name,
                     classes=engine.classes, dataset=engine.plan.dataset.name,
                     mean=list(engine.plan.dataset.mean), std=list(engine.plan.dataset.std),
                     epoch=record.get("epoch"), step=record.get("step"),
                     metrics={k: record[k] for k in ("split", "loss", "acc1", "acc5")
                              if k in record},
                     config=data_keys(trainer.cfg))


def data_keys(cfg) -> dict:
    """The config keys that decide which images `vitscale eval` reads and how it sees them."""
    keys = ("DATASET", "VAL_SPLIT", "SEED", "EVAL_CROP_PCT", "IMG_SIZE", "TTA_FLIP")
    return {**{k: getattr(cfg, k) for k in keys},
            "data": {"test_fraction": cfg.data.test_fraction,
                     "on_bad_image": cfg.data.on_bad_image}}
