"""The one table of model sizes: name -> width, depth, heads, MLP ratio, patch, image size.

ViT-Ti/S/B/L/H follow Dosovitskiy et al. 2021 (Table 1) and DeiT (Touvron et al. 2021) for
Tiny; ViT-Lite-7/4 follows Hassani et al. 2021, "Escaping the Big Data Paradigm with Compact
Transformers" (arXiv 2104.05704): width 256, depth 7, 4 heads, MLP ratio 2, patch 4, 32 px,
no bias in the attention projections, 3.72M parameters with a 10-class head.

Published parameter counts (1000 classes unless noted), checked by tests/test_models.py:
ViT-S/16 22.1M, ViT-B/16 86.6M, ViT-Lite-7/4 (10 classes) 3.72M.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class ViTSize:
    width: int          # HIDDEN_SIZE: token embedding dimension D
    depth: int          # DEPTH: number of transformer blocks
    heads: int          # NUM_HEADS: attention heads; D % heads == 0
    mlp_ratio: float    # MLP_RATIO: hidden width of the MLP is mlp_ratio * D
    patch: int          # PATCH_SIZE: square patches, no overlap
    img_size: int       # IMG_SIZE: square input images
    num_classes: int = 1000
    qkv_bias: bool = True

    @property
    def num_patches(self) -> int:
        return (self.img_size // self.patch) ** 2

    @property
    def seq_length(self) -> int:
        return self.num_patches + 1  # + class token


_FAMILIES = {  # (width, depth, heads) at MLP ratio 4
    "tiny": (192, 12, 3),
    "small": (384, 12, 6),
    "base": (768, 12, 12),
    "large": (1024, 24, 16),
    "huge": (1280, 32, 16),
}

VARIANTS: dict[str, ViTSize] = {
    "vit_lite_7_4": ViTSize(width=256, depth=7, heads=4, mlp_ratio=2.0, patch=4, img_size=32,
                            num_classes=10, qkv_bias=False),
}
for _family, (_w, _d, _h) in _FAMILIES.items():
    for _patch in (16, 32):
        VARIANTS[f"vit_{_family}_patch{_patch}_224"] = ViTSize(
            width=_w, depth=_d, heads=_h, mlp_ratio=4.0, patch=_patch, img_size=224)


def get_variant(name: str) -> ViTSize:
    return VARIANTS[name]


def with_overrides(size: ViTSize, **overrides) -> ViTSize:
    """A copy of `size` with the given fields replaced (None values are ignored)."""
    return replace(size, **{k: v for k, v in overrides.items() if v is not None})
