"""Initial weights, one full parameter at a time, from one seeded generator.

Every layout must start from the weights one process starts from (the parity tests compare
them), and a sharded rank must never hold the whole model. So initialisation is a stream:
`initial_parameters(model, generator)` walks the parameters in `named_parameters` order and
yields each one's full-size initial value, drawn from `generator` alone. One process copies
each value in; a tensor-parallel or FSDP rank copies in only its own slice and drops the rest
(vitscale/parallel/materialize.py), so it holds at most one full parameter beyond its shards.

The rules (ViT/DeiT practice): Linear weights truncated normal(0, 0.02) and zero biases;
LayerNorm ones and zeros; the patch-embedding convolution PyTorch's default (Kaiming-uniform
with a = sqrt(5), bias uniform in +-1/sqrt(fan_in)). A module with other parameters defines
`init_parameter(name, tensor, generator)` for its own (direct) parameters, as
VisionTransformer does for the class token and position embedding.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import nn


@torch.no_grad()
def init_parameter(module: nn.Module, name: str, tensor: torch.Tensor,
                   generator: torch.Generator) -> None:
    """Fill `tensor`, the full value of `module`'s direct parameter `name`, in place."""
    own = getattr(module, "init_parameter", None)
    if own is not None:
        own(name, tensor, generator)
    elif isinstance(module, nn.Linear):
        if name == "weight":
            nn.init.trunc_normal_(tensor, std=0.02, generator=generator)
        else:
            tensor.zero_()
    elif isinstance(module, nn.LayerNorm):
        tensor.fill_(1.0) if name == "weight" else tensor.zero_()
    elif isinstance(module, nn.Conv2d):
        fan_in = module.in_channels // module.groups * math.prod(module.kernel_size)
        if name == "weight":
            nn.init.kaiming_uniform_(tensor, a=math.sqrt(5), generator=generator)
        else:
            bound = 1 / math.sqrt(fan_in)
            nn.init.uniform_(tensor, -bound, bound, generator=generator)
    else:
        raise TypeError(f"no initialisation rule for parameter {name!r} of "
                        f"{type(module).__name__}: give the module an init_parameter method")


def initial_parameters(model: nn.Module, generator: torch.Generator, shape_of=None
                       ) -> Iterator[tuple[str, nn.Parameter, torch.Tensor]]:
    """(name, parameter, full fp32 initial value on the CPU) in `named_parameters` order.

    The parameter may be a shard (a DTensor, or on the meta device): its global shape is used,
    or `shape_of(param)` where a parallel layout keeps the whole shape elsewhere.
    """
    shape_of = shape_of or (lambda p: tuple(p.shape))
    for prefix, module in model.named_modules():
        for name, param in module.named_parameters(recurse=False):
            full = torch.empty(shape_of(param), dtype=torch.float32)
            init_parameter(module, name, full, generator)
            yield (f"{prefix}.{name}" if prefix else name), param, full


@torch.no_grad()
def reset_parameters(model: nn.Module, generator: torch.Generator | None = None) -> None:
    """Initialise an unsharded model in place (the single-process path). A model on the meta
    device holds nothing to fill: parallel/materialize.py draws its values from the same
    stream once it is sharded. (Drawing them on meta would still run the random ops' Python
    decompositions, which import torch._dynamo: ~0.7 s of start-up in every process.)"""
    if any(p.is_meta for p in model.parameters()):
        return
    generator = generator or torch.Generator().manual_seed(torch.initial_seed())
    for _, param, full in initial_parameters(model, generator):
        param.copy_(full)
