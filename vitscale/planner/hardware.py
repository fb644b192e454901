"""The devices and links the planner estimates step times for: one table, with its sources.

Peak FLOP/s are dense (no sparsity) tensor-core figures from the vendors' datasheets; the
planner multiplies them by an attainable fraction (`efficiency`), the share of peak a tuned
transformer step reaches (MFU; Korthikanti et al. 2022 report 40-56% at scale, vitscale's own
ViT-B/16 bf16 step ran at 25% on an H100: benchmarks/README.md). Link bandwidths are per
GPU and per direction, as a ring collective uses them ("bus bandwidth" in NCCL's terms).

| device   | source |
|----------|--------|
| h100     | NVIDIA H100 SXM5 datasheet: 989 TFLOP/s bf16 dense, 80 GB HBM3; NVLink 4: 900 GB/s per GPU (450 each way); 8x 400 Gb/s InfiniBand NDR per 8-GPU node (50 GB/s per GPU) |
| h200     | NVIDIA H200 SXM datasheet: as H100 with 141 GB HBM3e |
| a100-80  | NVIDIA A100 SXM4 80GB datasheet: 312 TFLOP/s bf16 dense; NVLink 3: 600 GB/s per GPU (300 each way); 8x 200 Gb/s HDR per node (25 GB/s per GPU) |
| a100-40  | as a100-80 with 40 GB |
| v100     | NVIDIA V100 SXM2 32GB: 125 TFLOP/s fp16 tensor; NVLink 2: 300 GB/s (150 each way); 100 Gb/s EDR per node shared by 8 (1.6 GB/s per GPU) |
| cpu      | vitscale's 2-core development machine, measured by benchmarks/cpu_profile.py (results/2026-12-03-cpu-profile.json): fp32 matmul 189 GFLOP/s for the node (shared by its processes); a ViT-Lite-7/4 training step reaches 86% of a core's matmul rate; gloo all-reduce over loopback on 4 processes 1.36 GB/s per rank, 0.22 ms per call |
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError


@dataclass(frozen=True)
class Device:
    name: str
    peak_flops: float          # dense bf16 (fp32 for the CPU) FLOP/s of one device
    memory: float              # bytes of device memory
    intra_node: float          # bytes/s per device per direction within a node
    inter_node: float          # bytes/s per device per direction between nodes
    latency: float             # seconds per collective call (launch and synchronisation)
    efficiency: float = 0.4    # attainable share of peak_flops for a transformer step
    shared_node: bool = False  # the node's FLOP/s are shared by its processes (CPUs)
    # Whether data-parallel traffic runs beside backward (NCCL on its own engines) or takes
    # the cores that compute (gloo on a CPU node: measured, bench step's dp vs zero=3).
    overlaps_communication: bool = True


DEVICES = {
    "h100": Device("h100", 989e12, 80e9, 450e9, 50e9, 15e-6),
    "h200": Device("h200", 989e12, 141e9, 450e9, 50e9, 15e-6),
    "a100-80": Device("a100-80", 312e12, 80e9, 300e9, 25e9, 15e-6),
    "a100-40": Device("a100-40", 312e12, 40e9, 300e9, 25e9, 15e-6),
    "v100": Device("v100", 125e12, 32e9, 150e9, 1.6e9, 20e-6),
    "cpu": Device("cpu", 189e9, 24e9, 1.36e9, 1.36e9, 2.2e-4, efficiency=0.86,
                  shared_node=True, overlaps_communication=False),
}


def row_for_gpu_name(name: str) -> Device | None:
    """The row of a GPU by its `torch.cuda.get_device_name()`, or None for a GPU not in the
    table. The rows are SXM parts: an H100 PCIe (756 TFLOP/s bf16 dense) or NVL part has another
    peak and matches none (train/mfu.py then reports no MFU rather than a guessed one). The
    A100's bf16 peak is 312 TFLOP/s in both forms, so its rows go by memory size only."""
    upper = name.upper()
    if "PCIE" in upper or " NVL" in upper:
        return DEVICES["a100-80" if "80GB" in upper else "a100-40"] if "A100" in upper else None
    for key, row in (("H200", "h200"), ("H100", "h100"), ("V100-SXM2", "v100")):
        if key in upper:
            return DEVICES[row]
    if "A100" in upper:
        return DEVICES["a100-80" if "80GB" in upper else "a100-40"]
    return None


def device(name: str) -> Device:
    if name not in DEVICES:
        from ..config import suggest
        raise ConfigError(f"--device {name!r} is not in the planner's table"
                          f"{suggest(name, DEVICES)}: choose one of {', '.join(DEVICES)}")
    return DEVICES[name]
