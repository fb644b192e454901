"""Data parallelism, step 4 of apply.py's order: DDP or FSDP2, as ParallelDims.data_parallel says.

| dims.data_parallel | what each data-parallel rank holds               | how                              |
|--------------------|--------------------------------------------------|----------------------------------|
| ddp                | everything                                       | DDP: all-reduce of gradients     |
| ddp_zero1          | model, gradients; 1/N of the optimizer state      | DDP + ZeroRedundancyOptimizer    |
| fsdp_replicate     | everything (tensor parallelism: its DTensor shards) | FSDP2 on (dp_replicate, dp_shard of 1): all-reduce |
| fsdp_stage2        | 1/N of gradients and optimizer state; parameters gathered from forward to backward | FSDP2, reshard_after_forward=False |
| fsdp_stage3        | 1/N of everything outside a block's compute       | FSDP2, reshard_after_forward=True |

(Rajbhandari et al. 2020, "ZeRO"). Communication per optimizer step, for P parameter values
on each rank over N data-parallel ranks (parallel/costs.py has the formulas in bytes): DDP
all-reduces 2P(N-1)/N values; stage 2 reduce-scatters the gradients and all-gathers the
parameters once (the same volume); stage 3 all-gathers them again in backward (1.5x).

FSDP2 shards each block, then the root (torchtitan's order), and is applied on the meta device
before the weights exist (parallel/materialize.py); DDP wraps the materialised model. With
bf16 or pure_bf16 precision, FSDP2's MixedPrecisionPolicy computes in bf16 and reduces
gradients in fp32: the sharded fp32 parameters are the master weights.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn


def apply_fsdp(model: nn.Module, dims, mesh, precision: str) -> nn.Module:
    """FSDP2 over the data-parallel dimension(s) of `mesh` (any device, meta included)."""
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
    policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) \
        if precision in ("bf16", "pure_bf16") else MixedPrecisionPolicy()
    reshard = dims.data_parallel == "fsdp_stage3"
    fsdp_mesh = dims.fsdp_mesh(mesh)
    for block in model.blocks:
        fully_shard(block, mesh=fsdp_mesh, mp_policy=policy, reshard_after_forward=reshard)
    fully_shard(model, mesh=fsdp_mesh, mp_policy=policy, reshard_after_forward=reshard)
    return model


def apply_ddp(model: nn.Module, dims, mesh, device: torch.device) -> nn.Module:
    """DDP over the data-parallel ranks (plain parameters only: tensor size 1)."""
    from torch.nn.parallel import DistributedDataParallel as DDP
    kwargs = {"device_ids": [device.index]} if device.type == "cuda" else {}
    return DDP(model, process_group=dims.data_mesh(mesh).get_group(), **kwargs)


def gradient_sync(model: nn.Module, enabled: bool):
    """A context in which backward does (or skips) the gradient all-reduce/reduce-scatter.

    Gradient accumulation skips it on every micro-batch but the last: the gradients add up
    locally and cross the network once per optimizer step.
    """
    if enabled:
        return contextlib.nullcontext()
    if hasattr(model, "no_sync"):                          # DDP
        return model.no_sync()
    if hasattr(model, "set_requires_gradient_sync"):       # FSDP2
        return _fsdp_no_sync(model)
    return contextlib.nullcontext()


@contextlib.contextmanager
def _fsdp_no_sync(model):
    model.set_requires_gradient_sync(False)
    try:
        yield
    finally:
        model.set_requires_gradient_sync(True)
