"""One precision policy: the single place that maps a precision mode to autocast and scaler.

Modes (seed 002 compares them on ViT-B/16):
  fp32   everything in float32.
  fp16   torch AMP: autocast to float16 plus a dynamic GradScaler ("AMP_TYPE.TORCH").
  bf16   autocast to bfloat16; no scaler is needed (bf16 has fp32's exponent range).

A config chooses one with the seeds' syntax, `fp16 = dict(mode=AMP_TYPE.TORCH)`, or with
`precision = 'bf16'`. The policy in force is printed at start.
"""

from __future__ import annotations

import contextlib
import enum
from dataclasses import dataclass

import torch

from .errors import ConfigError


class AMP_TYPE(str, enum.Enum):  # noqa: N801 - the seeds' spelling, available inside config files
    """Mixed-precision back ends, as named by Colossal-AI configs (`fp16 = dict(mode=...)`)."""

    TORCH = "torch"
    NAIVE = "naive"
    APEX = "apex"

    def __repr__(self) -> str:  # printed in resolved configs
        return f"AMP_TYPE.{self.name}"


PRECISIONS = ("fp32", "fp16", "bf16")


@dataclass(frozen=True)
class PrecisionPolicy:
    """How the forward pass computes and whether the loss is scaled.

    `autocast_dtype` is None for fp32. `scaler` is a torch.amp.GradScaler for fp16, else None.
    """

    name: str
    device_type: str
    autocast_dtype: torch.dtype | None

    def autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.autocast_dtype)

    def make_scaler(self, init_scale: float = 2.0**16, growth_factor: float = 2.0,
                    backoff_factor: float = 0.5, growth_interval: int = 2000):
        if self.name != "fp16":
            return None
        return torch.amp.GradScaler(self.device_type, init_scale=init_scale,
                                    growth_factor=growth_factor, backoff_factor=backoff_factor,
                                    growth_interval=growth_interval)

    def describe(self) -> str:
        if self.name == "fp32":
            return "fp32: float32 weights, activations and gradients"
        if self.name == "bf16":
            return "bf16: float32 weights, autocast matmuls to bfloat16, no loss scaling"
        return "fp16 (torch AMP): float32 weights, autocast to float16, dynamic loss scaling"


def resolve_precision_name(precision: str | None, fp16_mode: AMP_TYPE | None) -> str:
    """The precision name from `precision = ...` and `fp16 = dict(mode=...)` (checked to agree)."""
    if fp16_mode is not None:
        if fp16_mode in (AMP_TYPE.NAIVE, AMP_TYPE.APEX):
            raise ConfigError(
                f"fp16.mode={fp16_mode!r} is not available in this version of vitscale: "
                "use fp16 = dict(mode=AMP_TYPE.TORCH) or precision = 'bf16'")
        if precision not in (None, "fp16"):
            raise ConfigError(
                f"fp16 = dict(mode={fp16_mode!r}) conflicts with precision = {precision!r}: "
                "keep one of the two")
        return "fp16"
    return precision or "fp32"


def build_policy(name: str, device: torch.device) -> PrecisionPolicy:
    dtype = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}[name]
    return PrecisionPolicy(name=name, device_type=device.type, autocast_dtype=dtype)
