"""The pure ViT: published sizes, shapes, head-local attention, activation checkpointing."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from vitscale.models import VARIANTS, ViTSize, VisionTransformer, build_model, count_parameters
from vitscale.models.vit import Attention
from vitscale.parallel.checkpointing import checkpoint_module, is_checkpointed


@pytest.mark.parametrize("name, millions", [
    ("vit_base_patch16_224", 86.6), ("vit_small_patch16_224", 22.1), ("vit_lite_7_4", 3.72),
    ("vit_tiny_patch16_224", 5.72), ("vit_large_patch16_224", 304.3),
])
def test_parameter_counts_match_published(name, millions):
    with torch.device("meta"):
        n = count_parameters(build_model(VARIANTS[name]))
    digits = 2 if millions < 10 else 1
    assert round(n / 1e6, digits) == millions


def test_every_variant_builds_and_classifies_an_image_of_its_size():
    """Every row of the table is a model that runs (shapes only: on the meta device)."""
    for name, size in VARIANTS.items():
        with torch.device("meta"):
            logits = build_model(size)(torch.empty(2, 3, size.img_size, size.img_size))
        assert logits.shape == (2, size.num_classes), name


def small(**kw) -> ViTSize:
    args = dict(width=32, depth=2, heads=4, mlp_ratio=2.0, patch=8, img_size=32, num_classes=10)
    return ViTSize(**{**args, **kw})


def test_forward_shape_and_gradients_reach_every_parameter():
    torch.manual_seed(0)
    model = VisionTransformer(small())
    logits = model(torch.randn(3, 3, 32, 32))
    assert logits.shape == (3, 10) and torch.isfinite(logits).all()
    logits.sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    assert not missing


def test_attention_projections_are_separate_and_heads_come_from_local_shapes():
    """Column-sharding q/k/v by heads and row-sharding proj, as tensor parallelism will, keeps
    the module correct: the shards' outputs add up to the full output."""
    torch.manual_seed(0)
    full = Attention(dim=32, num_heads=4)
    assert all(isinstance(getattr(full, n), nn.Linear) for n in ("q", "k", "v", "proj"))
    x = torch.randn(2, 5, 32)
    expected = full(x)
    total = torch.zeros_like(expected)
    for shard in range(2):  # two "ranks", two heads (16 features) each
        rows = slice(16 * shard, 16 * (shard + 1))
        part = Attention(dim=32, num_heads=4)
        part.q, part.k, part.v = (nn.Linear(32, 16) for _ in range(3))
        part.proj = nn.Linear(16, 32)
        with torch.no_grad():
            for name in ("q", "k", "v"):
                getattr(part, name).weight.copy_(getattr(full, name).weight[rows])
                getattr(part, name).bias.copy_(getattr(full, name).bias[rows])
            part.proj.weight.copy_(full.proj.weight[:, rows])
            part.proj.bias.copy_(full.proj.bias / 2)  # each rank adds half of the bias
        total += part(x)
    torch.testing.assert_close(total, expected, rtol=1e-5, atol=1e-6)


def test_activation_checkpointing_changes_memory_not_math():
    torch.manual_seed(0)
    plain = VisionTransformer(small())
    ckpt = VisionTransformer(small())
    ckpt.load_state_dict(plain.state_dict())
    for block in ckpt.blocks:
        checkpoint_module(block)
    assert all(is_checkpointed(b) for b in ckpt.blocks)
    assert list(ckpt.state_dict()) == list(plain.state_dict())  # names unchanged
    x = torch.randn(4, 3, 32, 32)
    out_plain, out_ckpt = plain(x), ckpt(x)
    torch.testing.assert_close(out_ckpt, out_plain)
    out_plain.square().sum().backward()
    out_ckpt.square().sum().backward()
    for (name, a), b in zip(plain.named_parameters(), ckpt.parameters()):
        torch.testing.assert_close(b.grad, a.grad, msg=name)


class _Ops(TorchDispatchMode):
    """Records every aten op a forward and backward run."""

    def __init__(self):
        super().__init__()
        self.ops: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.add(str(func.overloadpacket))
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("ffn", [{}, {"ffn": "fff", "fff_depth": 2}], ids=["mlp", "fff"])
def test_model_code_is_pure(ffn):
    """No process groups, device moves or precision casts inside vitscale/models: a float64
    model stays float64 end to end and runs no copy, cast or collective op."""
    source = "\n".join(p.read_text() for p in (Path(__file__).parents[1] / "vitscale" /
                                                 "models").glob("*.py"))
    assert "torch.distributed" not in source and "process_group" not in source
    torch.manual_seed(0)
    model = VisionTransformer(small(**ffn)).double()
    with _Ops() as seen:
        logits = model(torch.randn(2, 3, 32, 32, dtype=torch.float64))
        logits.sum().backward()
    assert logits.dtype == torch.float64
    assert all(p.grad.dtype == torch.float64 for p in model.parameters() if p.grad is not None)
    moves = {op for op in seen.ops if op.endswith(("_to_copy", "_copy_from")) or "c10d" in op}
    assert not moves


def test_weight_decay_skips_biases_norms_and_embeddings():
    from vitscale.optim import param_groups
    model = VisionTransformer(small())
    decay, no_decay = param_groups(model, 0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    skipped = {names[id(p)] for p in no_decay["params"]}
    assert {"cls_token", "pos_embed", "norm.weight", "head.bias"} <= skipped
    assert all(names[id(p)].endswith("weight") for p in decay["params"])
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
