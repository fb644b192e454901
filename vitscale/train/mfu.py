"""Model FLOPs utilisation (MFU): the share of the devices' peak FLOP/s that the model's own
FLOPs use, as Chowdhery et al. 2022 define it (PaLM, arXiv 2204.02311, Appendix B):

    MFU = training FLOPs per image x images/s / (devices x peak FLOP/s of one device)

FLOPs per image are the planner's one formula, parallel/costs.forward_flops, times 3 (backward
costs twice the forward, as costs.step_flops counts it). Recomputation under activation
checkpointing is left out on purpose: MFU counts the model's FLOPs, not the hardware's
(Korthikanti et al. 2022 call the latter HFU), so that checkpointing cannot raise it.

The peak is planner/hardware.py's row for the device: dense bf16 tensor-core FLOP/s for a GPU
whatever the run's precision (PaLM also measures against the bf16 peak, so an fp32 run reads
low), the measured fp32 figure of vitscale's 2-core machine for a CPU. A GPU with no row (a PCIe
or NVL part, an unlisted model) gets no MFU: a guessed peak would make a wrong number look
measured. Nothing here syncs with the device: it is arithmetic on the images/s already logged.
"""

from __future__ import annotations

import logging
import os
import statistics
from dataclasses import dataclass, field

import torch

from ..models.variants import ViTSize
from ..parallel.costs import forward_flops
from ..planner.hardware import DEVICES, Device, row_for_gpu_name

log = logging.getLogger(__name__)


def training_flops_per_image(size: ViTSize) -> float | None:
    """Forward + backward FLOPs of one image, or None where costs.forward_flops does not count
    the model's feed-forward sublayers (fast feed-forward trees, several FFNs per block)."""
    if size.ffn != "mlp" or size.ffn_per_block != 1:
        return None
    flops = forward_flops(size)
    return 3 * (flops["blocks"] + flops["other"])


def peak_row(device: torch.device) -> Device | None:
    """hardware.py's row for `device`: the GPU's by its name, the `cpu` row on a CPU, or None."""
    if device.type == "cuda":
        return row_for_gpu_name(torch.cuda.get_device_name(device))
    if device.type == "cpu":
        return DEVICES["cpu"]
    return None


@dataclass
class Utilisation:
    """MFU of a run: `record(images_per_s)` gives the fields of one logged interval."""

    flops_per_image: float | None
    peak_flops: float | None            # all of the run's devices together
    peak: str                           # which row, or why there is no MFU
    values: list[float] = field(default_factory=list)   # every interval's MFU so far

    def mfu(self, images_per_s: float) -> float | None:
        if self.flops_per_image is None or not self.peak_flops:
            return None
        return self.flops_per_image * images_per_s / self.peak_flops

    def record(self, images_per_s: float) -> dict:
        """{'mfu': share of peak, or None}; remembered for `summary`."""
        value = self.mfu(images_per_s)
        if value is not None:
            self.values.append(value)
        return {"mfu": value}

    def summary(self) -> dict:
        """The median of the logged intervals (the first one carries start-up and compilation,
        the median is not moved by it), with the FLOPs and peak it was computed from."""
        return {"mfu": statistics.median(self.values) if self.values else None,
                "flops_per_image": self.flops_per_image, "peak_flops": self.peak_flops,
                "mfu_peak": self.peak}


def utilisation(size: ViTSize, device: torch.device, world_size: int = 1) -> Utilisation:
    """The MFU arithmetic of a run of `world_size` processes on devices like `device`.

    GPUs: world_size devices. The `cpu` row is a whole node, shared by its processes, so a run
    of N processes on one machine has one node's peak (LOCAL_WORLD_SIZE, set by torchrun and
    vitscale's launcher, says how many processes a node holds)."""
    flops = training_flops_per_image(size)
    row = peak_row(device)
    if row is None:
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
        reason = f"peak unknown for {name!r} (planner/hardware.py has no row): MFU not reported"
        return Utilisation(flops, None, reason)
    devices = world_size
    if row.shared_node:
        devices = max(1, world_size // int(os.environ.get("LOCAL_WORLD_SIZE", world_size)))
    what = "bf16 dense" if row.name != "cpu" else "fp32, measured"
    peak = f"{row.name}: {row.peak_flops / 1e12:g} TFLOP/s {what} x {devices}"
    if flops is None:
        peak = (f"{peak}; FLOPs of FFN={size.ffn!r} x {size.ffn_per_block} not counted: "
                "MFU not reported")
    return Utilisation(flops, row.peak_flops * devices, peak)
