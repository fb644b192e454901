"""Feed-forward variants (models/ffn.py, mlp.py, fff.py): MLP_DIM, FFN_PER_BLOCK, FFF trees.

FFF is checked against a token-by-token walk down the trees written from the paper's
definition (Belcak & Wattenhofer 2023), in float64 so that no routing decision flips on
rounding; its conditional evaluation must equal its dense evaluation.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from vitscale import Trainer, build_engine, load_config
from vitscale.errors import ConfigError
from vitscale.models import FFF, MLP, ViTSize, VisionTransformer, count_parameters
from vitscale.models.fff import expand_lr_depth, tree_neurons
from vitscale.models.init import reset_parameters
from vitscale.plan import make_plan

from conftest import TINY, run_cli
from test_distributed import assert_same_model, train_args


def small(**kw) -> ViTSize:
    args = dict(width=16, depth=2, heads=2, mlp_ratio=2.0, patch=8, img_size=32, num_classes=10)
    return ViTSize(**{**args, **kw})


def fff(dim=8, seed=0, **kw) -> FFF:
    """An FFF in float64 with random biases, so that routing is not decided by the weights
    alone (a zero-initialised bias would make every test start from sign(w . x))."""
    layer = FFF(dim, **kw).double()
    reset_parameters(layer, torch.Generator().manual_seed(seed))
    with torch.no_grad():
        for name, p in layer.named_parameters():
            if name.startswith("b_in_"):
                p.normal_(generator=torch.Generator().manual_seed(seed + 1))
    return layer


def walk(layer: FFF, x: torch.Tensor) -> torch.Tensor:
    """Reference: for each token and tree, visit one node per level; a node's neurons add
    GELU(logit) * their output rows; fan-out 2 goes right when the logit is positive, fan-out
    k to the child whose neuron has the largest logit."""
    k, w = layer.fanout, layer.node_width
    out = torch.zeros_like(x)
    for t in range(x.shape[0]):
        for p in range(layer.trees):
            node = 0
            for level in range(layer.depth + 1):
                rows = range(node * w, node * w + w)
                w_in = getattr(layer, f"w_in_{level}")[p]
                bias = getattr(layer, f"b_in_{level}").view(layer.trees, -1)[p]
                logits = torch.stack([x[t] @ w_in[r] + bias[r] for r in rows])
                for r, z in zip(rows, logits):
                    out[t] += F.gelu(z) * getattr(layer, f"w_out_{level}")[p, r]
                node = node * 2 + int(logits[0] > 0) if k == 2 else node * k + int(logits.argmax())
    if layer.dense is not None:
        out += layer.dense(x)
    return out


@pytest.mark.parametrize("kw", [dict(depth=3), dict(depth=2, trees=3), dict(depth=2, fanout=4),
                                dict(depth=1, fanout=3, trees=2, dense=4), dict(depth=0)])
def test_fff_dense_and_conditional_equal_the_tree_walk(kw):
    layer = fff(**kw).eval()
    x = torch.randn(40, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    expected = walk(layer, x)
    torch.testing.assert_close(layer.forward_dense(x) + (layer.dense(x) if layer.dense else 0),
                               expected, rtol=1e-10, atol=1e-12)
    layer.conditional = True
    torch.testing.assert_close(layer(x), expected, rtol=1e-10, atol=1e-12)


def test_fff_conditional_evaluation_equals_dense_in_a_model():
    """FFF_EVAL='conditional' changes how evaluation computes, not what: the same weights give
    the same logits as the dense form (fp32, whole model); training always runs dense."""
    size = small(ffn="fff", fff_depth=4, fff_trees=2)
    torch.manual_seed(0)
    dense = VisionTransformer(size).eval()
    cond = VisionTransformer(dataclasses.replace(size, fff_eval="conditional")).eval()
    cond.load_state_dict(dense.state_dict())
    x = torch.randn(6, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(cond(x), dense(x), rtol=1e-5, atol=1e-6)
    cond.train()
    calls = []
    cond.blocks[0].mlp.forward_conditional = lambda t: calls.append(t)
    cond(x)
    assert not calls


def test_fff_training_uses_only_path_nodes():
    """The dense training form zeroes the activations off each token's path: a tree of depth d
    uses d + 1 nodes per token, and a node no token reaches gets no gradient."""
    layer = fff(depth=5, trees=2).train()
    x = torch.randn(3, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    w_in = layer._all_levels("w_in")
    logits = (x @ w_in.reshape(-1, 8).t()).view(3, 2, -1) + layer._all_levels("b_in")
    mask = layer.path_mask(logits)
    assert mask.sum(-1).eq(layer.depth + 1).all()
    layer(x).sum().backward()
    leaves = layer.w_in_5.grad.abs().sum(-1)          # (trees, 32 leaves)
    assert int((leaves > 0).sum()) <= 3 * 2           # at most one leaf per token and tree
    assert layer.w_in_0.grad.abs().sum() > 0          # the root always learns


def test_feed_forward_variants_keep_mlp_names_and_count_parameters():
    D = 16
    plain = VisionTransformer(small())
    block = plain.blocks[0]
    assert isinstance(block.mlp, MLP) and block.mlp.fc1.out_features == 32
    width = VisionTransformer(small(mlp_dim=24)).blocks[0]
    assert isinstance(width.mlp, MLP) and width.mlp.fc1.out_features == 24
    pairs = VisionTransformer(small(ffn_per_block=2))
    assert isinstance(pairs.blocks[0].mlp2, MLP) and hasattr(pairs.blocks[0], "norm3")
    # Each extra sublayer: an MLP (2 D h + h + D) and a LayerNorm (2 D), in each of 2 blocks.
    assert count_parameters(pairs) - count_parameters(plain) == 2 * (2 * D * 32 + 32 + D + 2 * D)
    names = [n for n, _ in plain.named_parameters()]
    assert "blocks.0.norm2.weight" in names and "blocks.1.mlp.fc2.bias" in names
    # FFF: per tree N neurons, each with an input row, a bias and an output row.
    tree = VisionTransformer(small(ffn="fff", fff_depth=3, fff_trees=2, fff_fanout=3,
                                   fff_dense=4))
    N = tree_neurons(3, 3)
    assert N == 3 * (1 + 3 + 9 + 27)
    mlp_part = 2 * D * 32 + 32 + D
    fff_part = 2 * N * (2 * D + 1) + (2 * D * 4 + 4 + D)
    assert count_parameters(tree) - count_parameters(plain) == 2 * (fff_part - mlp_part)
    assert isinstance(tree.blocks[0].mlp, FFF) and isinstance(tree.blocks[0].mlp.dense, MLP)


def test_fff_initialisation_is_one_seeded_stream():
    size = small(ffn="fff", fff_depth=2, fff_fanout=4, fff_dense=3)
    a, b = VisionTransformer(size), VisionTransformer(size)
    a.reset_parameters(torch.Generator().manual_seed(7))
    b.reset_parameters(torch.Generator().manual_seed(7))
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(p, q, msg=name)
    layer = a.blocks[0].mlp
    assert layer.b_in_1.abs().sum() == 0 and 0 < layer.w_in_1.std() < 0.03


def test_per_depth_learning_rates_are_optimizer_groups():
    """FFF_LR_DEPTH=(root, leaves) gives each tree level its own group at peak LR x the
    level's multiplier, spaced geometrically; the schedule keeps the ratios."""
    assert expand_lr_depth((0.1, 1.0), 2) == pytest.approx((0.1, 0.1 ** 0.5, 1.0))
    cfg = load_config("configs/cifar10/quick_cpu.py", TINY + [
        "FFN='fff'", "FFF_DEPTH=2", "FFF_LR_DEPTH=(0.1, 1.0)", "WARMUP_STEPS=2"])
    engine = build_engine(cfg, with_data=False)
    layer = engine.model.blocks[0].mlp
    groups = engine.optimizer.param_groups
    peak = engine.plan.peak_lr
    by_param = {id(p): g for g in groups for p in g["params"]}
    for level, scale in enumerate((0.1, 0.1 ** 0.5, 1.0)):
        for kind in ("w_in", "b_in", "w_out"):
            group = by_param[id(getattr(layer, f"{kind}_{level}"))]
            assert group.get("lr_scale", 1.0) == pytest.approx(scale)
        # Weights decay, biases do not, whatever their LR.
        assert by_param[id(getattr(layer, f"w_in_{level}"))]["weight_decay"] == cfg.WEIGHT_DECAY
        assert by_param[id(getattr(layer, f"b_in_{level}"))]["weight_decay"] == 0.0
    assert "lr_scale" not in groups[0] and "lr_scale" not in groups[1]
    images = torch.randn(32, 3, 32, 32)
    labels = torch.arange(32) % 10
    for _ in range(2):
        engine.train_step(images, labels)
    root = by_param[id(layer.w_in_0)]
    assert root["lr"] == pytest.approx(0.1 * groups[0]["lr"]) and groups[0]["lr"] == peak


@pytest.mark.parametrize("overrides, message", [
    (["FFF_DEPTH=7"], "FFF_DEPTH is set but FFN is 'mlp': set FFN = 'fff'"),
    (["FFN='fff'"], "FFN='fff' needs FFF_DEPTH"),
    (["FFN='fff'", "FFF_DEPTH=3", "MLP_DIM=64"], "MLP_DIM sizes a dense MLP but FFN is 'fff'"),
    (["FFN='fff'", "FFF_DEPTH=3", "FFF_LR_DEPTH=(1, 2, 3)"], "needs 4 positive multipliers"),
    (["FFN='fff'", "FFF_DEPTH=3", "FFF_FANOUT=1"], "FFF_FANOUT=1 must be at least 2"),
    (["MLP_DIM=0"], "MLP_DIM=0 must be at least 1"),
    (["FFN='fff'", "FFF_DEPTH=40"], "lower FFF_DEPTH"),
    (["FFN='fff'", "FFF_DEPTH=3", "parallel.tensor.mode='1d'", "parallel.tensor.size=2"],
     "FFN='fff' (FFF_DEPTH=3) cannot run with tensor parallelism"),
])
def test_bad_feed_forward_keys_stop_with_one_line(overrides, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")) as e:
        make_plan(load_config("configs/cifar10/quick_cpu.py", overrides), world_size=2)
    assert "\n" not in str(e.value)


VARIANTS = {
    "mlp_dim": ["MLP_DIM=24"],
    "ffn_pairs": ["FFN_PER_BLOCK=2", "MLP_DIM=16"],
    "fff": ["FFN='fff'", "FFF_DEPTH=3", "FFF_EVAL='conditional'"],
    "fff_fanout_dense_lr": ["FFN='fff'", "FFF_DEPTH=2", "FFF_FANOUT=4", "FFF_TREES=2",
                            "FFF_DENSE=4", "FFF_LR_DEPTH=(0.5, 1.0)"],
}


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_trains_on_real_data_saves_and_reloads(variant, cifar_dir, tmp_path):
    from vitscale.io import initialize_from, load_exported

    cfg = load_config("configs/cifar10/quick_cpu.py", TINY + VARIANTS[variant] + [
        "NUM_EPOCHS=1", "tensorboard=False", "report=False"])
    engine = build_engine(cfg, data=cifar_dir)
    before = [p.detach().clone() for p in engine.model.parameters()]
    summary = Trainer(engine, run_dir=tmp_path / "run", progress=False, console=False).fit()
    assert summary["steps"] == 3 and summary["final_acc1"] is not None
    assert all(not torch.equal(a, b) for a, b in zip(before, engine.model.parameters()))
    model, meta = load_exported(tmp_path / "run" / "model_final.safetensors")
    assert meta["model"]["ffn"] == engine.plan.model.ffn
    x = torch.randn(4, 3, 32, 32)
    engine.model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), engine.model(x))
    # INIT_FROM: a new model of the same size starts from the export.
    fresh = VisionTransformer(engine.plan.model)
    initialize_from(fresh, str(tmp_path / "run" / "model_final.safetensors"))
    for (name, a), b in zip(fresh.named_parameters(), engine.model.parameters()):
        torch.testing.assert_close(a, b, msg=name)


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_cost_model_counts_every_variant_and_a_dry_run_plans_it(variant, quick_config):
    """`--dry-run` and `vitscale plan` cost every layout from parameters_held; FFF trees, which
    1D has no split for, are whole on every rank (tensor parallelism refuses them anyway)."""
    from vitscale.distributed.mesh import ParallelDims
    from vitscale.parallel.costs import parameters_held

    cfg = load_config(quick_config, TINY + VARIANTS[variant])
    size = make_plan(cfg).model
    dims = ParallelDims.from_config(cfg, 1, size.heads, size.width, size.depth)
    assert parameters_held(size, dims) == count_parameters(VisionTransformer(size))
    if variant == "fff":
        dry = run_cli("train", str(quick_config), "--dry-run",
                      *[a for kv in VARIANTS[variant] for a in ("--set", kv)])
        assert dry.returncode == 0, dry.stderr
        assert "fff depth 3 x 1 tree" in dry.stdout and "per rank" in dry.stdout


FFF_KEYS = ["FFN='fff'", "FFF_DEPTH=3", "FFF_TREES=2", "FFF_LR_DEPTH=(0.5, 1.0)"]


@pytest.fixture(scope="module")
def fff_one_process(cifar_dir, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("fff_one") / "run"
    one = run_cli(*train_args(run_dir, cifar_dir, FFF_KEYS))
    assert one.returncode == 0, one.stderr
    return run_dir


@pytest.mark.slow  # a launch of 2 processes each
@pytest.mark.parametrize("extra", [[], ["zero.stage=3"]], ids=["ddp", "fsdp2-zero3"])
def test_fff_data_parallel_matches_one_process(extra, fff_one_process, cifar_dir, tmp_path):
    """FFF trees (with per-depth LR groups) are ordinary parameters to DDP and FSDP2: two
    processes reach the weights one process reaches at the same global batch."""
    two = run_cli("run", "--nproc-per-node", "2",
                  *train_args(tmp_path / "two", cifar_dir, [*FFF_KEYS, *extra]))
    assert two.returncode == 0, two.stdout + two.stderr
    assert_same_model(tmp_path / "two", fff_one_process)
