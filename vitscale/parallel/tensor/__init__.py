"""Tensor parallelism, step 1 of apply.py's order. One module per mode:

    onedim.py   1D (Megatron-LM): a DTensor plan through `parallelize_module`

2D (SUMMA), 2.5D (Tesseract) and 3D are planned by `ParallelDims` and refused at start until
they land (distributed/mesh.py, `check_runnable`).
"""

from .onedim import apply_1d

__all__ = ["apply_1d"]
