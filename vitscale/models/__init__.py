"""Model zoo: a pure ViT and the one table of sizes."""

from .fff import FFF
from .ffn import FEED_FORWARDS, build_feed_forward, describe_feed_forward
from .mlp import MLP
from .variants import VARIANTS, ViTSize, get_variant, with_overrides
from .vit import VisionTransformer


def build_model(size: ViTSize, drop_rate: float = 0.0, drop_path_rate: float = 0.0):
    return VisionTransformer(size, drop_rate=drop_rate, drop_path_rate=drop_path_rate)


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = ["FEED_FORWARDS", "FFF", "MLP", "VARIANTS", "ViTSize", "VisionTransformer",
           "build_feed_forward", "build_model", "count_parameters", "describe_feed_forward",
           "get_variant", "with_overrides"]
