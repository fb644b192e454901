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


def initial_state(path: str, shapes: dict[str, tuple[int, ...]]
                  ) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Weights from `path` adapted to a model whose parameters have the (global) `shapes`:
    (name -> full tensor for every parameter the file provides, notes on what was adapted).
    Works from shapes alone, so a sharded model on the meta device can be initialised from it
    one parameter at a time (parallel/materialize.py)."""
    state = read_weights(path)
    if any(".attn.qkv." in k for k in state):
        state = from_timm(state)
    notes = []
    unknown = sorted(set(state) - set(shapes))
    if unknown:
        raise VitscaleError(f"{path}: weights {unknown[:3]} have no place in this model: "
                            "INIT_FROM must come from a ViT of the same width and depth")
    for key in ("head.weight", "head.bias"):
        if key in state and tuple(state[key].shape) != tuple(shapes[key]):
            del state[key]
            notes.append(f"{key} has another class count: left at its initialisation")
    if "pos_embed" in state and tuple(state["pos_embed"].shape) != tuple(shapes["pos_embed"]):
        state["pos_embed"] = _resize_pos_embed(state["pos_embed"], shapes["pos_embed"][1])
        notes.append(f"pos_embed resized to {tuple(shapes['pos_embed'])}")
    bad = [k for k in state if tuple(state[k].shape) != tuple(shapes[k])]
    if bad:
        raise VitscaleError(f"{path}: {bad[0]} is {tuple(state[bad[0]].shape)}, the model's is "
                            f"{tuple(shapes[bad[0]])}: INIT_FROM must match the model size")
    missing = sorted(set(shapes) - set(state))
    if missing:
        notes.append(f"not in the file, left at initialisation: {', '.join(missing)}")
    return state, notes


def initialize_from(model: nn.Module, path: str) -> list[str]:
    """Load weights from `path` into an unsharded `model`; returns notes on what was adapted."""
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    state, notes = initial_state(path, shapes)
    model.load_state_dict(state, strict=False)
    return notes
