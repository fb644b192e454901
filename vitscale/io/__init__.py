"""Model files: single-device safetensors exports, and weights from timm, loaded safely."""

from .export import export_model, load_exported, read_weights
from .init import initialize_from

__all__ = ["export_model", "initialize_from", "load_exported", "read_weights"]
