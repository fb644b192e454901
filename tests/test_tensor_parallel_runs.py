"""Tensor parallelism through the CLI, as a user runs it: real CIFAR-10, real processes.

* configs/cifar10/vit_lite_7_4_{1d,2d,2p5d,3d}.py follow the vanilla config's per-step
  training loss (1e-4 relative over the first 20 steps) and test metrics, and each rank holds
  its share of the parameters;
* checkpoints move between layouts: saved at tensor size 2, resumed at 1 and at 4; saved in
  2D, resumed in 1D and 3D; each continues where the uninterrupted single-process run goes;
* the exported model of a tensor-parallel run (every mode) equals one process's; INIT_FROM
  loads into 1D and 2D;
* the pipeline 2 x tensor 2 x data 2 config follows the vanilla config too (8 processes).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import REPO, run_cli

pytestmark = pytest.mark.slow

# The recipe's first 20 steps at a CPU-sized batch: inside its warmup, as a run starts (at
# the full LR from step 1, training is chaotic and fp32 rounding differences grow ~10x a step).
LITE = ["TOTAL_BATCH_SIZE=16", "EVAL_BATCH_SIZE=16", "NUM_EPOCHS=1", "LIMIT_TRAIN_BATCHES=20", "LIMIT_EVAL_BATCHES=2",
        "LOG_EVERY=1", "WARMUP_EPOCHS=0", "WARMUP_STEPS=20", "precision='fp32'", "tensorboard=False",
        "report=False", "checkpoints.every_epochs=None"]
# A tiny model with 4 heads (one per rank at tensor size 4); 4 steps an epoch. No q/k/v bias:
# softmax ignores a bias added to every key, so its true gradient is 0 and Adam turns rounding
# noise into unit steps there; no two layouts can agree on it. Adam's eps at 1e-6 for the same
# reason (coordinates whose gradient is at rounding level step by +-lr on noise otherwise).
TINY = ["DATASET='cifar10'", "IMG_SIZE=32", "PATCH_SIZE=8", "HIDDEN_SIZE=32", "DEPTH=2",
        "NUM_HEADS=4", "MLP_RATIO=2", "QKV_BIAS=False", "EPS=1e-6", "TOTAL_BATCH_SIZE=32",
        "BATCH_SIZE=None",
        "LIMIT_TRAIN_BATCHES=4", "LIMIT_EVAL_BATCHES=2", "LOG_EVERY=1", "WARMUP_EPOCHS=0",
        "LR_SCHEDULE='constant'", "tensorboard=False", "report=False", "dist_timeout=120"]
QUICK = str(REPO / "configs/cifar10/quick_cpu.py")


def sets(values) -> list[str]:
    return [a for kv in values for a in ("--set", kv)]


def train(config: str, run_dir: Path, cifar_dir: Path, extra=(), nproc: int = 1):
    args = ["train", config, "--data", str(cifar_dir), "--run-dir", str(run_dir),
            "--no-progress", "--device", "cpu", *sets(extra)]
    if nproc > 1:
        args = ["run", "--nproc-per-node", str(nproc), *args]
    result = run_cli(*args)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result


def records(run_dir: Path, split: str) -> list[dict]:
    return [r for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
            if r["split"] == split]


def same_weights(a: Path, b: Path, atol=1e-5) -> None:
    x, y = load_file(str(a)), load_file(str(b))
    assert x.keys() == y.keys()
    for k in x:
        torch.testing.assert_close(x[k], y[k], rtol=0, atol=atol, msg=k)


@pytest.fixture(scope="module")
def vanilla(cifar_dir, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("vanilla") / "run"
    train(str(REPO / "configs/cifar10/vit_lite_7_4_vanilla.py"), run_dir, cifar_dir, LITE)
    return run_dir


@pytest.mark.parametrize("mode, nproc, layout", [
    ("1d", 4, "tensor 4 (1d) x data 1"), ("2d", 4, "tensor 4 (2d) x data 1"),
    ("2p5d", 8, "tensor 8 (2.5d, depth 2) x data 1"), ("3d", 8, "tensor 8 (3d) x data 1")])
def test_each_mode_config_trains_like_the_vanilla_config(mode, nproc, layout, vanilla,
                                                         cifar_dir, tmp_path):
    run = tmp_path / mode
    out = train(str(REPO / f"configs/cifar10/vit_lite_7_4_{mode}.py"), run, cifar_dir, LITE,
                nproc=nproc)
    assert layout in out.stdout and "rank 0 holds" in out.stdout
    a = [r["loss"] for r in records(run, "train")]
    b = [r["loss"] for r in records(vanilla, "train")]
    assert len(a) == len(b) == 20
    assert a == pytest.approx(b, rel=1e-4)
    # Evaluation reduces over the ranks that split the batch only: each image counted once.
    [ta], [tb] = records(run, "test"), records(vanilla, "test")
    assert ta["images"] == tb["images"] and ta["acc1"] == pytest.approx(tb["acc1"], abs=0.01)
    assert ta["loss"] == pytest.approx(tb["loss"], rel=1e-4)
    # The run's export is one plain model, equal to the vanilla run's after the same 20 steps
    # (largest difference 5.0e-6, 2.5D, 2026-12-03).
    same_weights(run / "model_final.safetensors", vanilla / "model_final.safetensors")
    # Each rank holds its share of the blocks' matrices, as the cost model says.
    from vitscale.config import load_config
    from vitscale.parallel.costs import parameters_per_rank
    from vitscale.plan import make_plan
    plan = make_plan(load_config(REPO / f"configs/cifar10/vit_lite_7_4_{mode}.py", LITE),
                     world_size=nproc)
    ranks = json.loads((run / "summary.json").read_text())["accounting_per_rank"]
    assert len(ranks) == nproc
    for rank in ranks:
        assert rank["parameters_per_rank"] == parameters_per_rank(plan.model, plan.dims)
        assert rank["parameters_per_rank"] < 0.4 * rank["parameters_total"]


def test_hybrid_pipeline_config_trains_like_the_vanilla_config(vanilla, cifar_dir, tmp_path):
    """Issue 13's 8-process run: pipeline 2 x tensor 2 (1D) x data 2 follows the vanilla
    config's per-step loss; the evaluation batch is per data-parallel rank (EVAL_BATCH_SIZE
    halves so that both read the same 32 test images)."""
    run = tmp_path / "pp2_tp2_dp2"
    out = train(str(REPO / "configs/cifar10/hybrid/vit_lite_pp2_tp2_dp2.py"), run, cifar_dir,
                LITE + ["EVAL_BATCH_SIZE=8"], nproc=8)
    assert "pipeline 2" in out.stdout and "micro-batches" in out.stdout
    a = [r["loss"] for r in records(run, "train")]
    b = [r["loss"] for r in records(vanilla, "train")]
    assert len(a) == len(b) == 20
    assert a == pytest.approx(b, rel=1e-4)
    [ta], [tb] = records(run, "test"), records(vanilla, "test")
    assert ta["images"] == tb["images"] == 32
    assert ta["acc1"] == pytest.approx(tb["acc1"], abs=0.01)
    assert ta["loss"] == pytest.approx(tb["loss"], rel=1e-4)


@pytest.fixture(scope="module")
def one_process(cifar_dir, tmp_path_factory) -> dict[str, Path]:
    """The tiny recipe on one process: 1 epoch and 2 epochs (what every layout must match)."""
    root = tmp_path_factory.mktemp("one_process")
    runs = {"1 epoch": root / "e1", "2 epochs": root / "e2"}
    train(QUICK, runs["1 epoch"], cifar_dir, [*TINY, "NUM_EPOCHS=1"])
    train(QUICK, runs["2 epochs"], cifar_dir, [*TINY, "NUM_EPOCHS=2"])
    return runs


def resume_and_compare(first: Path, to: Path, layout: list[str], nproc: int, cifar_dir: Path,
                       whole: Path, expect: str) -> None:
    """Copy the 1-epoch run `first`, continue it for a 2nd epoch in `layout`, and check that
    it ends where the uninterrupted single-process run ends."""
    shutil.copytree(first, to)
    out = train(QUICK, to, cifar_dir, [*TINY, "NUM_EPOCHS=2", *layout], nproc=nproc)
    assert "resuming from" in out.stdout and "step-00000004" in out.stdout, out.stdout
    assert expect in out.stdout, out.stdout
    same_weights(to / "model_final.safetensors", whole / "model_final.safetensors")
    losses = [r["loss"] for r in records(to, "train")]
    assert losses == pytest.approx([r["loss"] for r in records(whole, "train")], rel=1e-4)


def test_checkpoints_move_between_tensor_sizes(one_process, cifar_dir, tmp_path):
    """1 epoch at tensor size 2, then epoch 2 at size 1 and (from the same checkpoint) at
    size 4: both end where 2 epochs on one process end."""
    one_d = ["parallel.tensor.mode='1d'"]
    first = tmp_path / "t2"
    out = train(QUICK, first, cifar_dir, [*TINY, "NUM_EPOCHS=1", *one_d,
                                          "parallel.tensor.size=2"], nproc=2)
    assert "tensor 2 (1d)" in out.stdout
    # The export of a tensor-parallel run is a plain model, equal to one process's.
    same_weights(first / "model_final.safetensors",
                 one_process["1 epoch"] / "model_final.safetensors")
    resume_and_compare(first, tmp_path / "t1", [], 1, cifar_dir, one_process["2 epochs"],
                       "x data 1")
    resume_and_compare(first, tmp_path / "t4", [*one_d, "parallel.tensor.size=4"], 4,
                       cifar_dir, one_process["2 epochs"], "tensor 4 (1d)")


def test_grid_checkpoints_move_to_1d_and_3d_and_export_one_model(one_process, cifar_dir,
                                                                   tmp_path):
    """Saved in 2D, resumed in 1D and in 3D. (Each mode's export, 2.5D's included, equals one
    process's model: test_each_mode_config_trains_like_the_vanilla_config.)"""
    first = tmp_path / "2d"
    out = train(QUICK, first, cifar_dir, [*TINY, "NUM_EPOCHS=1", "parallel.tensor.mode='2d'",
                                          "parallel.tensor.size=4"], nproc=4)
    assert "tensor 4 (2d)" in out.stdout
    same_weights(first / "model_final.safetensors",
                 one_process["1 epoch"] / "model_final.safetensors")
    resume_and_compare(first, tmp_path / "1d", ["parallel.tensor.mode='1d'",
                                                "parallel.tensor.size=2"], 2, cifar_dir,
                       one_process["2 epochs"], "tensor 2 (1d)")
    resume_and_compare(first, tmp_path / "3d", ["parallel.tensor.mode='3d'",
                                                "parallel.tensor.size=8"], 8, cifar_dir,
                       one_process["2 epochs"], "tensor 8 (3d)")


def test_init_from_an_export_loads_into_a_tensor_parallel_layout(one_process, cifar_dir,
                                                                 tmp_path):
    source = one_process["1 epoch"]
    init = [f"INIT_FROM='{source / 'model_final.safetensors'}'", "NUM_EPOCHS=1"]
    alone, sharded, grid = tmp_path / "alone", tmp_path / "sharded", tmp_path / "grid"
    train(QUICK, alone, cifar_dir, [*TINY, *init])
    train(QUICK, sharded, cifar_dir, [*TINY, *init, "parallel.tensor.mode='1d'",
                                      "parallel.tensor.size=2",
                                      "parallel.tensor.sequence_parallel=True"], nproc=2)
    train(QUICK, grid, cifar_dir, [*TINY, *init, "parallel.tensor.mode='2d'",
                                   "parallel.tensor.size=4"], nproc=4)
    for run in (sharded, grid):
        assert [r["loss"] for r in records(run, "train")] == pytest.approx(
            [r["loss"] for r in records(alone, "train")], rel=1e-4)
        same_weights(run / "model_final.safetensors", alone / "model_final.safetensors")
