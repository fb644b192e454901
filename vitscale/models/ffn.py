"""The feed-forward sublayer of a block, built from the model size: one interface, no strings
in the block.

Every builder here returns a module that maps (B, N, D) tokens to (B, N, D); the block adds it
to the residual stream after its own LayerNorm (FFN_PER_BLOCK times). Which builder runs is
`ViTSize.ffn` (config key FFN), looked up once in FEED_FORWARDS:

    'mlp'  MLP(D, MLP_DIM or MLP_RATIO x D)                       (models/mlp.py)
    'fff'  FFF(D, FFF_DEPTH, FFF_TREES, FFF_FANOUT, FFF_DENSE, ...) (models/fff.py)

A new sublayer is a builder plus one entry in FEED_FORWARDS (and its keys in the config).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from .fff import FFF, tree_neurons
from .mlp import MLP
from .variants import ViTSize


def _mlp(size: ViTSize, drop: float) -> nn.Module:
    return MLP(size.width, size.mlp_hidden, drop=drop)


def _fff(size: ViTSize, drop: float) -> nn.Module:
    return FFF(size.width, depth=size.fff_depth, trees=size.fff_trees, fanout=size.fff_fanout,
               dense=size.fff_dense, lr_depth=size.fff_lr_depth,
               conditional=size.fff_eval == "conditional", drop=drop)


FEED_FORWARDS: dict[str, Callable[[ViTSize, float], nn.Module]] = {"mlp": _mlp, "fff": _fff}


def build_feed_forward(size: ViTSize, drop: float = 0.0) -> nn.Module:
    """One feed-forward sublayer for a block of a model of this size."""
    return FEED_FORWARDS[size.ffn](size, drop)


def describe_feed_forward(size: ViTSize) -> str:
    """One line for logs and dry runs, e.g. 'fff depth 7 x 1 tree, fan-out 2: 255 neurons, 8
    per token' or 'mlp 256'."""
    if size.ffn == "fff":
        per_tree = tree_neurons(size.fff_depth, size.fff_fanout)
        width = 1 if size.fff_fanout == 2 else size.fff_fanout
        text = (f"fff depth {size.fff_depth} x {size.fff_trees} tree"
                f"{'s' if size.fff_trees > 1 else ''}, fan-out {size.fff_fanout}: "
                f"{per_tree * size.fff_trees} neurons, "
                f"{(size.fff_depth + 1) * width * size.fff_trees} per token")
        if size.fff_dense:
            text += f", + dense {size.fff_dense}"
        if size.fff_lr_depth:
            text += f", LR x {tuple(size.fff_lr_depth)} root..leaves"
        if size.fff_eval == "conditional":
            text += ", conditional eval"
    else:
        text = f"mlp {size.mlp_hidden}"
    return text + (f", {size.ffn_per_block} per block" if size.ffn_per_block > 1 else "")
