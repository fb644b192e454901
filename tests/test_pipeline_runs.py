"""Pipeline parallelism through the CLI, as a user runs it: real CIFAR-10, real processes.

A run at pipeline 2 (its middle ranks read no data, its evaluation runs the stages forward)
saves a DCP checkpoint of global tensors after one epoch; resumed at pipeline 1 and at
pipeline 4, each continues where the uninterrupted single-process run goes: the same
per-step training losses and the same exported model (which a pipelined run gathers over
its stages).
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

# A tiny model with 4 blocks (one per stage at pipeline 4); 4 steps an epoch (see
# tests/test_tensor_parallel_runs.py for why no q/k/v bias and Adam's eps at 1e-6).
TINY = ["DATASET='cifar10'", "IMG_SIZE=32", "PATCH_SIZE=8", "HIDDEN_SIZE=32", "DEPTH=4",
        "NUM_HEADS=4", "MLP_RATIO=2", "QKV_BIAS=False", "EPS=1e-6", "TOTAL_BATCH_SIZE=32",
        "BATCH_SIZE=None", "LIMIT_TRAIN_BATCHES=4", "LIMIT_EVAL_BATCHES=2", "LOG_EVERY=1",
        "WARMUP_EPOCHS=0", "LR_SCHEDULE='constant'", "tensorboard=False", "report=False",
        "dist_timeout=120"]
QUICK = str(REPO / "configs/cifar10/quick_cpu.py")


def train(run_dir: Path, cifar_dir: Path, extra=(), nproc: int = 1):
    args = ["train", QUICK, "--data", str(cifar_dir), "--run-dir", str(run_dir),
            "--no-progress", "--device", "cpu",
            *[a for kv in [*TINY, *extra] for a in ("--set", kv)]]
    if nproc > 1:
        args = ["run", "--nproc-per-node", str(nproc), *args]
    result = run_cli(*args)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result


def records(run_dir: Path, split: str) -> list[dict]:
    return [r for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
            if r.get("split") == split]


def same_weights(a: Path, b: Path, atol=1e-5) -> None:
    x, y = load_file(str(a)), load_file(str(b))
    assert x.keys() == y.keys()
    for k in x:
        torch.testing.assert_close(x[k], y[k], rtol=0, atol=atol, msg=k)


def test_pipeline_checkpoints_resume_at_other_pipeline_sizes(cifar_dir, tmp_path):
    whole = tmp_path / "one_process"
    train(whole, cifar_dir, ["NUM_EPOCHS=2"])
    first = tmp_path / "pp2"
    out = train(first, cifar_dir, ["NUM_EPOCHS=1", "parallel.pipeline=2"], nproc=2)
    assert "pipeline 2 x tensor 1" in out.stdout
    # The log carries each pipeline rank's busy and idle time beside the formula.
    train_records = records(first, "train")
    assert all(len(r["pp_busy_s"]) == 2 and r["pp_bubble_theory"] == pytest.approx(1 / 3)
               for r in train_records)
    expected = [r["loss"] for r in records(whole, "train")]
    assert [r["loss"] for r in train_records] == pytest.approx(expected[:4], rel=1e-4)
    # Evaluation (the stages forward over point-to-point sends) counts each image once.
    [t1], t_whole = records(first, "test"), records(whole, "test")[0]
    assert t1["images"] == t_whole["images"] and t1["acc1"] == pytest.approx(t_whole["acc1"])
    assert t1["loss"] == pytest.approx(t_whole["loss"], rel=1e-4)
    for size, nproc in ((1, 1), (4, 4)):
        to = tmp_path / f"resumed_pp{size}"
        shutil.copytree(first, to)
        out = train(to, cifar_dir, ["NUM_EPOCHS=2", f"parallel.pipeline={size}"], nproc=nproc)
        assert "resuming from" in out.stdout and "step-00000004" in out.stdout, out.stdout
        same_weights(to / "model_final.safetensors", whole / "model_final.safetensors")
        assert [r["loss"] for r in records(to, "train")] == pytest.approx(expected, rel=1e-4)
