"""Launching and joining a distributed run: launcher detection, process group, device mesh,
failure propagation, and `vitscale run` across hosts."""

from .launch import LaunchInfo, detect_launch
from .mesh import ParallelDims

__all__ = ["LaunchInfo", "ParallelDims", "detect_launch"]
