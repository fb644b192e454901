"""Fast feed-forward (FFF) layers: neurons on trees, each token using one root-to-leaf path.

Belcak & Wattenhofer 2023, "Fast Feedforward Networks" (arXiv 2308.14711), in the form of
"Exponentially Faster Language Modelling" (UltraFastBERT, arXiv 2311.10770, its `FFF` module):
every tree node is a neuron of the layer, and a token's output is the sum, over the d + 1
nodes on its path, of GELU(node logit) x the node's output row. Seed 004 lists the variants
built here: depth 7 (255 nodes, about an MLP of width 256), fan-out 4 with a softmax, a smaller
learning rate at the root than at the leaves, a full dense multiply with the outputs selected
afterwards for training, and a few dense rows beside the tree.

    FFF(dim=128, depth=7)                     # one binary tree: 255 neurons, 8 used per token
    FFF(dim=128, depth=5, trees=4)            # 4 parallel trees (UltraFastBERT's parallel_size)
    FFF(dim=128, depth=2, fanout=4, trees=3)  # 21 nodes x 4 neurons per tree
    FFF(dim=128, depth=7, dense=8)            # + an MLP of width 8 beside the tree

Routing. At fan-out 2 a node is one neuron and the sign of its logit picks the child (logit > 0:
right), as in UltraFastBERT. At fan-out k > 2 a node holds k neurons, one per child: the softmax
over their k logits is the distribution over the children and the walk takes its argmax (the
hard form of the softmax, so no softmax is computed). Routing decisions carry no gradient; the
path's neurons learn through their activations, as in UltraFastBERT.

Training ("full dense multiply and select", seed 004): one matmul computes every node's logit,
the path is found from the logits without gradient, and the activations of the nodes off each
token's path are multiplied by zero before the output matmul. This costs a dense MLP of the
same width plus the path walk, and no gathers, which is fastest on CPUs and GPUs at training
batch sizes. Evaluation with `conditional=True` (FFF_EVAL='conditional') computes only the
d + 1 path nodes of each tree per token (gathering their rows); its output equals the dense
form's (tests/test_ffn.py). docs/experiments.md measures when it is faster.

Shapes: T tokens, D width, P trees, w neurons per node (1 at fan-out 2, else k), level l holds
k^l nodes, N = w (k^(d+1) - 1) / (k - 1) neurons per tree. Parameters are kept per level, so
that per-depth learning-rate multipliers (`lr_depth`, root to leaves) can be optimizer groups:
    w_in_l (P, w k^l, D), b_in_l (P w k^l,), w_out_l (P, w k^l, D)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .mlp import MLP


def tree_neurons(depth: int, fanout: int) -> int:
    """Neurons in one tree: nodes (k^(d+1) - 1) / (k - 1), times k neurons per node if k > 2."""
    nodes = sum(fanout ** level for level in range(depth + 1))
    return nodes * (1 if fanout == 2 else fanout)


def expand_lr_depth(lr_depth: Sequence[float] | None, depth: int) -> tuple[float, ...] | None:
    """Per-level LR multipliers, root first: d + 1 values as given, or (root, leaves) with the
    levels between spaced geometrically (a constant ratio from one level to the next)."""
    if lr_depth is None:
        return None
    values = tuple(float(v) for v in lr_depth)
    if len(values) == depth + 1:
        return values
    if len(values) != 2:
        raise ValueError(f"lr_depth needs {depth + 1} values (root to leaves) or 2 "
                         f"(root, leaves), got {len(values)}")
    root, leaves = values
    return tuple(root * (leaves / root) ** (level / max(depth, 1)) for level in range(depth + 1))


class FFF(nn.Module):
    """(..., D) -> (..., D) through `trees` parallel trees of depth `depth` (see module doc)."""

    def __init__(self, dim: int, depth: int, trees: int = 1, fanout: int = 2, dense: int = 0,
                 lr_depth: Sequence[float] | None = None, conditional: bool = False,
                 drop: float = 0.0):
        super().__init__()
        if depth < 0 or trees < 1 or fanout < 2 or dense < 0:
            raise ValueError(f"FFF needs depth >= 0, trees >= 1, fanout >= 2, dense >= 0; got "
                             f"depth={depth}, trees={trees}, fanout={fanout}, dense={dense}")
        self.dim, self.depth, self.trees, self.fanout = dim, depth, trees, fanout
        self.node_width = 1 if fanout == 2 else fanout
        self.lr_depth = expand_lr_depth(lr_depth, depth)
        self.conditional = conditional
        widths = [self.node_width * fanout ** level for level in range(depth + 1)]
        # Column where each level starts in the (P, N) logits of one tree.
        self.offsets = [sum(widths[:level]) for level in range(depth + 1)]
        self.neurons = trees * sum(widths)                           # in the layer
        self.active_neurons = trees * (depth + 1) * self.node_width  # used per token
        for level, n in enumerate(widths):
            self.register_parameter(f"w_in_{level}", nn.Parameter(torch.empty(trees, n, dim)))
            self.register_parameter(f"b_in_{level}", nn.Parameter(torch.empty(trees * n)))
            self.register_parameter(f"w_out_{level}", nn.Parameter(torch.empty(trees, n, dim)))
        self.drop = nn.Dropout(drop)
        # "Add 8 dense rows" (seed 004): a small MLP beside the trees, summed into the output.
        self.dense = MLP(dim, dense, drop) if dense else None

    def init_parameter(self, name: str, tensor: torch.Tensor, generator: torch.Generator) -> None:
        """Node weights as the Linear layers of the MLP they replace (truncated normal 0.02,
        models/init.py), so an FFF and an MLP of the same width start alike; zero biases."""
        if name.startswith("b_in_"):
            tensor.zero_()
        elif name.startswith(("w_in_", "w_out_")):
            nn.init.trunc_normal_(tensor, std=0.02, generator=generator)
        else:
            raise KeyError(f"no initialisation rule for FFF.{name}")

    def lr_scales(self) -> list[tuple[nn.Parameter, float]]:
        """(parameter, LR multiplier) for the tree nodes, root level first; read by
        vitscale/optim/lr_scale.py to give each level its own optimizer group."""
        if self.lr_depth is None:
            return []
        return [(getattr(self, f"{kind}_{level}"), scale)
                for level, scale in enumerate(self.lr_depth)
                for kind in ("w_in", "b_in", "w_out")]

    def _level(self, kind: str, level: int) -> torch.Tensor:
        return getattr(self, f"{kind}_{level}")

    def _all_levels(self, kind: str) -> torch.Tensor:
        """(P, N, D) weights or (P, N) biases of every level, root first."""
        parts = [self._level(kind, level) for level in range(self.depth + 1)]
        if kind == "b_in":
            parts = [p.view(self.trees, -1) for p in parts]
        return torch.cat(parts, dim=1)

    def _child(self, node: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """Index of the next node within its level: (T, P) nodes, (T, P, w) their logits."""
        if self.fanout == 2:
            return node * 2 + (logits[..., 0] > 0)
        return node * self.fanout + logits.argmax(-1)

    def _node_columns(self, node: torch.Tensor) -> torch.Tensor:
        """(T, P) node indices within a level -> (T, P, w) their neurons' columns in the level."""
        return node.unsqueeze(-1) * self.node_width + torch.arange(self.node_width,
                                                                   device=node.device)

    @torch.no_grad()
    def path_mask(self, logits: torch.Tensor) -> torch.Tensor:
        """(T, P, N) logits -> (T, P, N) mask: 1 at the neurons on each token's path, else 0."""
        T, P, _ = logits.shape
        node = torch.zeros(T, P, dtype=torch.long, device=logits.device)
        columns = []
        for level in range(self.depth + 1):
            cols = self.offsets[level] + self._node_columns(node)
            columns.append(cols)
            if level < self.depth:
                node = self._child(node, logits.gather(2, cols))
        return torch.zeros_like(logits).scatter_(2, torch.cat(columns, dim=2), 1.0)

    def forward_dense(self, x: torch.Tensor) -> torch.Tensor:
        """(T, D) -> (T, D): every node's logit in one matmul, off-path activations zeroed."""
        T, P = x.shape[0], self.trees
        w_in = self._all_levels("w_in")                                       # (P, N, D)
        logits = (x @ w_in.reshape(-1, self.dim).t()).view(T, P, -1) + self._all_levels("b_in")
        hidden = F.gelu(logits) * self.path_mask(logits)                      # (T, P, N)
        return hidden.reshape(T, -1) @ self._all_levels("w_out").reshape(-1, self.dim)

    def forward_conditional(self, x: torch.Tensor) -> torch.Tensor:
        """(T, D) -> (T, D) computing only the d + 1 path nodes of each tree per token: the
        logits of level l+1 are needed only for the child chosen at level l."""
        T, P = x.shape[0], self.trees
        tree = torch.arange(P, device=x.device).unsqueeze(-1)                 # (P, 1)
        node = torch.zeros(T, P, dtype=torch.long, device=x.device)
        out = None
        for level in range(self.depth + 1):
            cols = self._node_columns(node)                                   # (T, P, w)
            w_in = self._level("w_in", level)[tree, cols]                     # (T, P, w, D)
            bias = self._level("b_in", level).view(P, -1)[tree, cols]         # (T, P, w)
            logits = torch.einsum("td,tpwd->tpw", x, w_in) + bias
            w_out = self._level("w_out", level)[tree, cols]                   # (T, P, w, D)
            part = torch.einsum("tpw,tpwd->td", F.gelu(logits), w_out)
            out = part if out is None else out + part
            node = self._child(node, logits)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.dim)
        if self.conditional and not self.training:
            out = self.forward_conditional(flat)
        else:
            out = self.forward_dense(flat)
        out = self.drop(out).view(x.shape)
        return out if self.dense is None else out + self.dense(x)

    def extra_repr(self) -> str:
        return (f"dim={self.dim}, depth={self.depth}, trees={self.trees}, fanout={self.fanout}, "
                f"neurons={self.neurons}, active_per_token={self.active_neurons}, "
                f"eval={'conditional' if self.conditional else 'dense'}")
