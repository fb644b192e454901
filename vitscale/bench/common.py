"""Pieces shared by the benchmarks: an Engine for a named model without data, and timing."""

from __future__ import annotations

import dataclasses
import time

import torch

from ..config import config_from_dict
from ..models import get_variant
from ..plan import make_plan
from ..train.engine import Engine, engine_from_plan


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(step, n: int, device: torch.device) -> float:
    """Seconds for `n` calls of `step`, with the device drained before and after."""
    sync(device)
    start = time.perf_counter()
    for _ in range(n):
        step()
    sync(device)
    return time.perf_counter() - start


def bench_engine(model: str, batch: int, device: torch.device, seed: int = 0,
                 world_size: int = 1, **config) -> Engine:
    """vitscale's Engine for variant `model` (its own class count), AdamW, no data loaders.
    With `world_size` > 1 (a process group is up), `batch` is the global batch and `config`
    may give the layout (`parallel`, `zero`)."""
    batch_key = "TOTAL_BATCH_SIZE" if world_size > 1 else "BATCH_SIZE"
    values = {"MODEL": model, batch_key: batch, "LEARNING_RATE": 1e-4, "WEIGHT_DECAY": 0.05,
              "NUM_EPOCHS": 1, "SEED": seed, "DATASET": "synthetic", **config}
    cfg = config_from_dict(values, source="bench")
    size = get_variant(model)
    plan = dataclasses.replace(make_plan(cfg, world_size=world_size), model=size,
                               model_name=model)
    mesh = plan.dims.build_mesh(device.type) if world_size > 1 else None
    return engine_from_plan(cfg, plan, device, mesh)


def random_batch(model: str, batch: int, device: torch.device, seed: int = 0):
    size = get_variant(model)
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(batch, 3, size.img_size, size.img_size, generator=g).to(device)
    labels = torch.randint(0, size.num_classes, (batch,), generator=g).to(device)
    return images, labels
