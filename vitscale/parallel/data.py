"""Data parallelism, step 4 of apply.py's order: DDP or FSDP2, chosen by `zero`.

| config                     | what each rank holds                         | wrapper                            |
|----------------------------|----------------------------------------------|------------------------------------|
| no `zero` ("vanilla")      | everything                                   | DDP: all-reduce of gradients       |
| zero = dict(stage=1)       | model, gradients; 1/N of the optimizer state  | DDP + ZeroRedundancyOptimizer      |
| zero = dict(stage=2)       | 1/N of gradients and optimizer state; params gathered from forward to backward | FSDP2, reshard_after_forward=False |
| zero = dict(stage=3)       | 1/N of everything outside a block's compute  | FSDP2, reshard_after_forward=True  |

(Rajbhandari et al. 2020, "ZeRO"). Communication per step, for P parameters over N ranks:
DDP all-reduces 2P(N-1)/N values; stage 2 reduce-scatters the gradients and all-gathers the
parameters once (the same volume); stage 3 all-gathers them again in backward (1.5x).

FSDP2 shards each block, then the root (torchtitan's order). With bf16 or pure_bf16
precision, FSDP2's MixedPrecisionPolicy computes in bf16 and reduces gradients in fp32: the
sharded fp32 parameters are the master weights.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn


def apply_data_parallel(model: nn.Module, stage: int | None, mesh, device: torch.device,
                        precision: str) -> nn.Module:
    """Wrap `model` for data parallelism over the mesh's "dp" dimension."""
    if stage in (None, 1):
        from torch.nn.parallel import DistributedDataParallel as DDP
        kwargs = {"device_ids": [device.index]} if device.type == "cuda" else {}
        return DDP(model, process_group=mesh["dp"].get_group(), **kwargs)
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
    policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) \
        if precision in ("bf16", "pure_bf16") else MixedPrecisionPolicy()
    reshard = stage == 3
    for block in model.blocks:
        fully_shard(block, mesh=mesh["dp"], mp_policy=policy, reshard_after_forward=reshard)
    fully_shard(model, mesh=mesh["dp"], mp_policy=policy, reshard_after_forward=reshard)
    return model


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


def zero_optimizer(optimizer_cls, groups: list[dict], mesh, **kwargs):
    """ZeRO stage 1: each rank keeps and updates 1/N of the optimizer state."""
    from torch.distributed.optim import ZeroRedundancyOptimizer
    params = [p for g in groups for p in g["params"]]
    opt = ZeroRedundancyOptimizer(params, optimizer_class=optimizer_cls,
                                  process_group=mesh["dp"].get_group(), **kwargs)
    return opt
