"""`vitscale plan`: every layout of N processes, costed and ranked before any GPU is used.

    hardware.py   the device and link table, with sources
    layouts.py    candidates, their costs (parallel/costs.py) and estimated step times
"""

from .hardware import DEVICES, Device, device
from .layouts import (Candidate, Estimate, candidates, config_layout, estimate, global_batch,
                      plan_layouts)

__all__ = ["Candidate", "DEVICES", "Device", "Estimate", "candidates", "config_layout",
           "device", "estimate", "global_batch", "plan_layouts"]
