"""Initialise a model from weights: a vitscale export, or a timm VisionTransformer state dict.

timm names match vitscale's except the attention input projection, which timm fuses:
`blocks.i.attn.qkv` ((3 D, D), rows ordered q, k, v) becomes `attn.q`, `attn.k`, `attn.v`.
For fine-tuning, a classifier head whose class count differs is left at its initialisation,
and a position embedding for another grid is resized bicubically (as timm and DeiT do).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import VitscaleError
from .export import read_weights


def from_timm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """timm VisionTransformer names -> vitscale names (q, k, v split out of qkv)."""
    out = {}
    for key, value in state.items():
        if ".attn.qkv." in key:
            q, k, v = value.chunk(3, dim=0)
            for name, part in (("q", q), ("k", k), ("v", v)):
                out[key.replace(".attn.qkv.", f".attn.{name}.")] = part
        else:
            out[key] = value
    return out


def _resize_pos_embed(pos: torch.Tensor, num_tokens: int) -> torch.Tensor:
    """(1, 1 + g*g, D) -> (1, num_tokens, D): class token kept, patch grid resized bicubically."""
    cls, grid = pos[:, :1], pos[:, 1:]
    old, new = math.isqrt(grid.shape[1]), math.isqrt(num_tokens - 1)
    grid = grid.reshape(1, old, old, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid.float(), size=(new, new), mode="bicubic", align_corners=False)
    return torch.cat([cls, grid.permute(0, 2, 3, 1).reshape(1, new * new, -1).to(pos.dtype)], 1)


def initialize_from(model: nn.Module, path: str) -> list[str]:
    """Load weights from `path` into `model`; returns notes on what was adapted."""
    state = read_weights(path)
    if any(".attn.qkv." in k for k in state):
        state = from_timm(state)
    own = model.state_dict()
    notes = []
    unknown = sorted(set(state) - set(own))
    if unknown:
        raise VitscaleError(f"{path}: weights {unknown[:3]} have no place in this model: "
                            "INIT_FROM must come from a ViT of the same width and depth")
    for key in ("head.weight", "head.bias"):
        if key in state and state[key].shape != own[key].shape:
            del state[key]
            notes.append(f"{key} has another class count: left at its initialisation")
    if "pos_embed" in state and state["pos_embed"].shape != own["pos_embed"].shape:
        state["pos_embed"] = _resize_pos_embed(state["pos_embed"], own["pos_embed"].shape[1])
        notes.append(f"pos_embed resized to {tuple(own['pos_embed'].shape)}")
    bad = [k for k in state if state[k].shape != own[k].shape]
    if bad:
        raise VitscaleError(f"{path}: {bad[0]} is {tuple(state[bad[0]].shape)}, the model's is "
                            f"{tuple(own[bad[0]].shape)}: INIT_FROM must match the model size")
    missing = sorted(set(own) - set(state))
    model.load_state_dict(state, strict=False)
    if missing:
        notes.append(f"not in the file, left at initialisation: {', '.join(missing)}")
    return notes
