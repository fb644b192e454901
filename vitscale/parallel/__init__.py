"""Parallelism applied from outside the pure model, in one documented order (apply.py)."""

from .apply import Parallelized, parallelize
from .layout import OutputLayout

__all__ = ["OutputLayout", "Parallelized", "parallelize"]
