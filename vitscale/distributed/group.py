"""Joining the process group: one call turns a LaunchInfo into a device and a running group.

    device = init_distributed(detect_launch(...), timeout=300)
    ...
    shutdown_distributed()

`timeout` bounds every wait: the rendezvous, every collective (torch raises after it) and the
failure watchdog (watchdog.py), so no rank waits forever on another.
"""

from __future__ import annotations

from datetime import timedelta

import torch
import torch.distributed as dist

from . import watchdog
from .launch import LaunchError, LaunchInfo


def init_distributed(info: LaunchInfo, timeout: float) -> torch.device:
    """Set the device, join the group (when there is more than one process), start the watchdog."""
    if info.backend == "nccl":
        if not torch.cuda.is_available():
            raise LaunchError("--backend nccl needs CUDA GPUs, and none is visible: use "
                              "--backend gloo on CPUs")
        device = torch.device("cuda", info.local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if not info.distributed:
        return device
    init_method = "env://" if info.launcher == "torchrun" else \
        f"tcp://{info.master_addr}:{info.master_port}"
    try:
        dist.init_process_group(info.backend, init_method=init_method, rank=info.rank,
                                world_size=info.world_size, timeout=timedelta(seconds=timeout))
    except Exception as e:  # DistStoreError and friends: nobody answered in time
        raise LaunchError(f"rank {info.rank} could not join the {info.world_size}-process group "
                          f"at {info.master_addr}:{info.master_port} within {timeout:.0f} s "
                          f"({type(e).__name__}): check --host/--port, the firewall, and that "
                          "every rank was started") from None
    watchdog.start(info.rank, info.world_size, timeout)
    return device


def shutdown_distributed() -> None:
    """Leave together: wait for every rank (bounded by the group timeout), then tear down."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    dog = watchdog.active()
    if dog is not None:
        dog.stopping.set()  # a rank that leaves first must not look dead to the others
    dist.barrier()
    watchdog.stop()
    dist.destroy_process_group()
