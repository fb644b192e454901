"""Tensor parallelism, step 1 of apply.py's order. One module per mode:

    onedim.py    1D (Megatron-LM): a DTensor plan through `parallelize_module`
    twod.py      2D (SUMMA) and 2.5D (Tesseract): hand-written layers on a q x q grid
    threed.py    3D: hand-written layers on a q x q x q cube
    grid.py      what the grid modes share: blocks, their global view, partial gradients
    norm.py      LayerNorm over a split width;  collectives.py: differentiable collectives
"""

from .onedim import apply_1d
from .threed import apply_3d
from .twod import apply_2d

__all__ = ["apply_1d", "apply_2d", "apply_3d"]
