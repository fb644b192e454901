"""The one table of model sizes: name -> width, depth, heads, MLP ratio, patch, image size.

ViT-Ti/S/B/L/H follow Dosovitskiy et al. 2021 (Table 1) and DeiT (Touvron et al. 2021) for
Tiny; ViT-Lite-7/4 follows Hassani et al. 2021, "Escaping the Big Data Paradigm with Compact
Transformers" (arXiv 2104.05704): width 256, depth 7, 4 heads, MLP ratio 2, patch 4, 32 px,
no bias in the attention projections, 3.72M parameters with a 10-class head.

Published parameter counts (1000 classes unless noted), checked by tests/test_models.py:
ViT-S/16 22.1M, ViT-B/16 86.6M, ViT-Lite-7/4 (10 classes) 3.72M.

A size also says which feed-forward sublayer the blocks use (the `mlp_dim`, `ffn*` and `fff*`
fields, config keys MLP_DIM, FFN, FFN_PER_BLOCK, FFF_*): models/ffn.py builds it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional


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
    # ---- the feed-forward sublayer (models/ffn.py; docs/experiments.md) ----
    mlp_dim: Optional[int] = None   # MLP_DIM: hidden width of the MLP, instead of mlp_ratio * D
    ffn: str = "mlp"                # FFN: 'mlp' (dense) or 'fff' (fast feed-forward trees)
    ffn_per_block: int = 1          # FFN_PER_BLOCK: feed-forward sublayers per block
    fff_depth: Optional[int] = None  # FFF_DEPTH: tree depth d (levels 0..d)
    fff_trees: int = 1              # FFF_TREES: parallel trees
    fff_fanout: int = 2             # FFF_FANOUT: children per node
    fff_dense: int = 0              # FFF_DENSE: width of a dense MLP beside the trees (0: none)
    fff_lr_depth: Optional[tuple[float, ...]] = None  # FFF_LR_DEPTH: LR multipliers root..leaves
    fff_eval: str = "dense"         # FFF_EVAL: 'dense' or 'conditional' evaluation

    def __post_init__(self):
        # Exports store the size as JSON, which has lists only: keep the field hashable.
        if isinstance(self.fff_lr_depth, list):
            object.__setattr__(self, "fff_lr_depth", tuple(self.fff_lr_depth))

    @property
    def mlp_hidden(self) -> int:
        """Hidden width of each MLP: MLP_DIM when set, else MLP_RATIO x width."""
        return self.mlp_dim if self.mlp_dim is not None else int(self.width * self.mlp_ratio)

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
    # Seed 004's FFF experiment at ViT-Lite-7/4 scale: the MLP of width 512 replaced by one
    # binary tree of depth 8 (511 neurons, 9 per token): 0.15% fewer parameters.
    "vit_lite_7_4_fff": ViTSize(width=256, depth=7, heads=4, mlp_ratio=2.0, patch=4,
                                img_size=32, num_classes=10, qkv_bias=False, ffn="fff",
                                fff_depth=8),
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
