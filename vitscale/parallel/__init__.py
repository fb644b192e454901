"""Parallelism applied from outside the pure model, in one documented order (apply.py)."""

from .apply import parallelize

__all__ = ["parallelize"]
