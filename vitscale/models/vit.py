"""A pure Vision Transformer (Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words").

Pure means: no process groups, no device calls, no precision casts. Tensor, pipeline and data
parallelism and activation checkpointing are applied from outside (vitscale/parallel/apply.py),
so this file is written for that:
  * q, k and v are separate nn.Linear layers, so a column-wise shard of each holds whole heads;
  * the number of heads is derived from local shapes at run time (`view(B, N, -1, head_dim)`),
    so sharded projections stay correct without touching the module;
  * `blocks` is a plain ModuleList and `forward` is a straight pipeline of named stages
    (patch_embed -> blocks -> norm -> head), which pipeline splitting cuts between;
  * the feed-forward sublayer is built by models/ffn.py from the size (an MLP of any width,
    several per block, or FFF trees); dense widths stay `MLP` modules with `fc1`/`fc2`.

Shapes: B batch, C channels, H/W image size, P patch, N = (H/P)(W/P) patches, D width.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from .ffn import build_feed_forward
from .mlp import MLP  # noqa: F401  (vitscale.models.vit.MLP: tensor parallelism looks for it)
from .variants import ViTSize


class PatchEmbed(nn.Module):
    """(B, C, H, W) -> (B, N, D): a P x P convolution with stride P is a per-patch Linear."""

    def __init__(self, img_size: int, patch_size: int, in_chans: int, dim: int):
        super().__init__()
        if img_size % patch_size:
            raise ValueError(f"IMG_SIZE={img_size} is not divisible by PATCH_SIZE={patch_size}")
        self.num_patches = (img_size // patch_size) ** 2
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention with separate q, k, v projections and torch's SDPA."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True, attn_drop: float = 0.0):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"HIDDEN_SIZE={dim} is not divisible by NUM_HEADS={num_heads}")
        self.head_dim = dim // num_heads
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.k = nn.Linear(dim, dim, bias=qkv_bias)
        self.v = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.attn_drop = attn_drop

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, _ = x.shape
        # -1, not num_heads: under tensor parallelism q/k/v hold only this rank's heads.
        q, k, v = (lin(x).view(B, N, -1, self.head_dim).transpose(1, 2)
                   for lin in (self.q, self.k, self.v))                      # (B, h, N, hd)
        out = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.attn_drop if self.training else 0.0)
        return self.proj(out.transpose(1, 2).reshape(B, N, -1))             # (B, N, D)


class DropPath(nn.Module):
    """Stochastic depth (Huang et al. 2016): drop a residual branch per sample."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.empty(x.shape[0], *([1] * (x.dim() - 1)), device=x.device, dtype=x.dtype)
        return x * keep.bernoulli_(1.0 - self.p) / (1.0 - self.p)


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm1(x)), then x + mlp(norm2(x)) and, with
    `ffn_per_block` > 1, x + mlp2(norm3(x)) and so on, each sublayer with its own norm and
    residual. `make_ffn()` builds one feed-forward sublayer (models/ffn.py): the block does not
    know which kind. The first keeps the names `norm2` and `mlp` of every ViT (timm weights)."""

    def __init__(self, dim: int, num_heads: int, make_ffn: Callable[[], nn.Module],
                 ffn_per_block: int = 1, qkv_bias: bool = True, drop_path: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias)
        self.ffn_names = [(f"norm{i + 2}", "mlp" if i == 0 else f"mlp{i + 1}")
                          for i in range(ffn_per_block)]
        for norm, ffn in self.ffn_names:
            self.add_module(norm, nn.LayerNorm(dim, eps=1e-6))
            self.add_module(ffn, make_ffn())
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        for norm, ffn in self.ffn_names:
            x = x + self.drop_path(getattr(self, ffn)(getattr(self, norm)(x)))
        return x


class VisionTransformer(nn.Module):
    """Class-token ViT: patch embedding, learned position embedding, blocks, norm, linear head."""

    def __init__(self, size: ViTSize, in_chans: int = 3, drop_rate: float = 0.0,
                 drop_path_rate: float = 0.0):
        super().__init__()
        self.size = size
        D = size.width
        self.patch_embed = PatchEmbed(size.img_size, size.patch, in_chans, D)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, D))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.patch_embed.num_patches + 1, D))
        self.pos_drop = nn.Dropout(drop_rate)
        # Stochastic depth grows linearly with depth (Huang et al. 2016; DeiT).
        rates = [drop_path_rate * i / max(1, size.depth - 1) for i in range(size.depth)]
        make_ffn = partial(build_feed_forward, size, drop_rate)
        self.blocks = nn.ModuleList(
            Block(D, size.heads, make_ffn, size.ffn_per_block, size.qkv_bias, rates[i])
            for i in range(size.depth))
        self.norm = nn.LayerNorm(D, eps=1e-6)
        self.head = nn.Linear(D, size.num_classes)
        self.reset_parameters()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """ViT/DeiT initialisation, one parameter at a time (see models/init.py)."""
        from .init import reset_parameters
        reset_parameters(self, generator)

    def init_parameter(self, name: str, tensor: torch.Tensor, generator: torch.Generator) -> None:
        """The model's own parameters: position embedding truncated normal(0.02), class
        token normal(1e-6) (the rules for Linear, LayerNorm and Conv2d are in models/init.py)."""
        if name == "pos_embed":
            nn.init.trunc_normal_(tensor, std=0.02, generator=generator)
        elif name == "cls_token":
            nn.init.normal_(tensor, std=1e-6, generator=generator)
        else:
            raise KeyError(f"no initialisation rule for VisionTransformer.{name}")

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) images -> (B, N + 1, D) tokens with the class token first."""
        x = self.patch_embed(x)
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        return self.pos_drop(torch.cat([cls, x], dim=1) + self.pos_embed)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N + 1, D) tokens -> (B, num_classes) logits from the class token."""
        return self.head(self.norm(x)[:, 0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x)
        for block in self.blocks:
            x = block(x)
        return self.forward_head(x)

    def no_weight_decay_names(self) -> set[str]:
        """Parameters that weight decay must skip: biases, norms and embeddings."""
        return {n for n, p in self.named_parameters()
                if p.ndim <= 1 or n in ("cls_token", "pos_embed")}
