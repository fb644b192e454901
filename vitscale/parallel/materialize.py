"""Materialise a model built on the meta device: allocate this rank's shards and fill them
with exactly the weights one process would start from.

The model is built on the meta device (no memory), sharded there by tensor parallelism and
FSDP2, and only then given storage: `to_empty` allocates each rank's local shards, and the
initial values arrive one full parameter at a time (models/init.py's stream, or INIT_FROM's
weights), each rank keeping its own slice. So every layout starts from the single-process
weights (the parity tests rely on it) and no rank holds more than one full parameter beyond
its shards. Slicing a full tensor into a DTensor's local shard needs no communication
(`distribute_tensor(..., src_data_rank=None)`: every rank has the same full value).
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from ..models.init import initial_parameters
from .tensor.grid import GRID_ATTRIBUTES, full_shape

log = logging.getLogger(__name__)


@torch.no_grad()
def assign_full(param: torch.Tensor, full: torch.Tensor) -> None:
    """Copy this rank's part of `full` (the whole parameter) into `param` (maybe a DTensor)."""
    from torch.distributed.tensor import DTensor, distribute_tensor
    full = full.to(device=param.device, dtype=param.dtype)
    layout = getattr(param, "grid_layout", None)
    if layout is not None:                      # a grid mode's block (tensor/grid.py)
        param.copy_(layout.slice(full))
    elif isinstance(param, DTensor):
        local = distribute_tensor(full, param.device_mesh, param.placements,
                                  src_data_rank=None).to_local()
        param.to_local().copy_(local)
    else:
        param.copy_(full)


@torch.no_grad()
def materialize(model: nn.Module, device: torch.device, seed: int,
                init_from: str | None = None, whole: nn.Module | None = None) -> None:
    """Give `model` (on meta, possibly sharded) storage on `device` and its initial weights:
    the seeded stream of models/init.py, or the file `init_from` where it has a tensor.

    `whole`: the unsplit model on the meta device, when `model` is one pipeline stage of it
    (parallel/pipeline.py): the stream is drawn over the whole model, so that a stage's
    parameters get the values one process gives them, and the stage keeps its own."""
    if any(True for _ in model.buffers()):
        raise TypeError("materialize() knows parameters only; this model has buffers")
    # to_empty makes new Parameter objects: carry the grid modes' layout attributes over.
    kept = {name: {a: getattr(p, a) for a in GRID_ATTRIBUTES if hasattr(p, a)}
            for name, p in model.named_parameters()}
    model.to_empty(device=device)
    for name, p in model.named_parameters():
        for attribute, value in kept[name].items():
            setattr(p, attribute, value)
    source: dict[str, torch.Tensor] = {}
    stream = whole if whole is not None else model
    if init_from:
        from ..io.init import initial_state
        shapes = {name: full_shape(p) for name, p in stream.named_parameters()}
        source, notes = initial_state(init_from, shapes)
        for note in notes:
            log.info("INIT_FROM %s: %s", init_from, note)
    generator = torch.Generator().manual_seed(seed)
    own = dict(model.named_parameters())
    for name, _, full in initial_parameters(stream, generator, shape_of=full_shape):
        # The stream is drawn in full also where the file has a value, so that parameters the
        # file lacks get the values they would get without INIT_FROM.
        if name in own:
            assign_full(own[name], source.get(name, full))
