"""Durable runs: kill and resume exactly, damaged checkpoints, exports, eval, TensorBoard,
reports, validation split and early stopping, timm weights."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import torch

from conftest import REPO, run_cli
from distributed_helpers import free_port

# Slow enough per step (~0.1 s on 2 cores) to be killed mid-epoch, small enough to be quick.
DURABLE = ["IMG_SIZE=32", "PATCH_SIZE=4", "HIDDEN_SIZE=48", "DEPTH=2", "NUM_HEADS=2",
           "MLP_RATIO=2", "BATCH_SIZE=128", "NUM_EPOCHS=2", "LIMIT_TRAIN_BATCHES=12",
           "LIMIT_EVAL_BATCHES=4", "LOG_EVERY=1", "WARMUP_EPOCHS=0.5",
           "checkpoints.every_steps=4", "tensorboard=False", "report=False"]


def train_args(run_dir: Path, cifar_dir: Path, extra=()) -> list[str]:
    args = ["train", str(REPO / "configs/cifar10/quick_cpu.py"), "--data", str(cifar_dir),
            "--run-dir", str(run_dir), "--no-progress"]
    return args + [a for kv in [*DURABLE, *extra] for a in ("--set", kv)]


def start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "vitscale", *args], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_step(run_dir: Path, proc: subprocess.Popen, step: int, timeout=300) -> None:
    """Until metrics.jsonl shows `step` and a checkpoint before it exists."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, proc.communicate()
        path = run_dir / "metrics.jsonl"
        if path.is_file() and (run_dir / "checkpoints").is_dir():
            steps = [json.loads(line)["step"] for line in path.read_text().splitlines() if line]
            if steps and max(steps) >= step and any(
                    p.name.startswith("step-") and not p.name.endswith(".partial")
                    for p in (run_dir / "checkpoints").iterdir()):
                return
        time.sleep(0.02)
    raise AssertionError("the run did not reach the step in time")


def eval_records(run_dir: Path) -> list[dict]:
    return [r for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
            if r["split"] in ("val", "test")]


def same_metrics(a: list[dict], b: list[dict]) -> None:
    assert [(r["split"], r["epoch"], r["step"]) for r in a] == \
           [(r["split"], r["epoch"], r["step"]) for r in b]
    for x, y in zip(a, b):
        assert x["acc1"] == y["acc1"] and x["loss"] == pytest.approx(y["loss"], abs=1e-6)


@pytest.fixture(scope="module")
def uninterrupted(cifar_dir, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("durable") / "whole"
    result = run_cli(*train_args(run_dir, cifar_dir))
    assert result.returncode == 0, result.stderr
    return run_dir


@pytest.mark.slow
def test_sigkill_mid_epoch_then_rerun_gives_the_uninterrupted_metrics(uninterrupted, cifar_dir,
                                                                      tmp_path):
    run_dir = tmp_path / "killed"
    proc = start(train_args(run_dir, cifar_dir))
    wait_for_step(run_dir, proc, 6)           # epoch 1 of 12 steps, checkpoint at step 4
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run_dir / "summary.json").exists()
    result = run_cli(*train_args(run_dir, cifar_dir))
    assert result.returncode == 0, result.stderr
    assert "resuming from" in result.stdout
    same_metrics(eval_records(run_dir), eval_records(uninterrupted))
    a = json.loads((run_dir / "summary.json").read_text())
    b = json.loads((uninterrupted / "summary.json").read_text())
    assert a["final_acc1"] == b["final_acc1"] and a["steps"] == b["steps"] == 24
    assert a["resumed_from"] and a["final_loss"] == pytest.approx(b["final_loss"], abs=1e-6)
    # Train records are not duplicated: each step logged once.
    steps = [r["step"] for r in map(json.loads, (run_dir / "metrics.jsonl").read_text()
                                    .splitlines()) if r["split"] == "train"]
    assert steps == list(range(1, 25))


@pytest.mark.slow
def test_dataloader_pipeline_with_mixup_resumes_exactly_after_sigkill(cifar_dir, tmp_path):
    """Worker processes, per-sample augmentation seeds and Mixup/CutMix draws: a run killed
    mid-epoch and run again ends where the uninterrupted run ends."""
    recipe = ["data.pipeline='dataloader'", "data.num_workers=1", "MIXUP_ALPHA=0.4",
              "CUTMIX_ALPHA=1.0", "LABEL_SMOOTHING=0.1"]
    whole = tmp_path / "whole"
    assert run_cli(*train_args(whole, cifar_dir, recipe)).returncode == 0
    run_dir = tmp_path / "killed"
    proc = start(train_args(run_dir, cifar_dir, recipe))
    wait_for_step(run_dir, proc, 6)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    result = run_cli(*train_args(run_dir, cifar_dir, recipe))
    assert result.returncode == 0, result.stderr
    assert "resuming from" in result.stdout and "pipeline dataloader" in result.stdout
    same_metrics(eval_records(run_dir), eval_records(whole))
    train = [r for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
             if r["split"] == "train"]
    reference = [r for r in map(json.loads, (whole / "metrics.jsonl").read_text().splitlines())
                 if r["split"] == "train"]
    assert [r["loss"] for r in train] == pytest.approx([r["loss"] for r in reference], abs=1e-6)


@pytest.mark.slow
def test_sigterm_saves_at_the_step_boundary_and_the_same_command_resumes(uninterrupted,
                                                                        cifar_dir, tmp_path):
    run_dir = tmp_path / "preempted"
    proc = start(train_args(run_dir, cifar_dir, ["checkpoints.every_steps=None"]))
    deadline = time.time() + 300
    while not (run_dir / "metrics.jsonl").is_file() or "\"step\": 3," not in \
            (run_dir / "metrics.jsonl").read_text():
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "stopped by SIGTERM" in err and "run the same command again to resume" in err
    saved = list((run_dir / "checkpoints").glob("step-*"))
    assert len(saved) == 1 and "partial" not in saved[0].name
    result = run_cli(*train_args(run_dir, cifar_dir, ["checkpoints.every_steps=None"]))
    assert result.returncode == 0, result.stderr
    same_metrics(eval_records(run_dir), eval_records(uninterrupted))


@pytest.mark.slow
def test_a_damaged_last_checkpoint_falls_back_to_the_previous(uninterrupted, cifar_dir,
                                                              tmp_path):
    """The run is complete at step 24; with that checkpoint damaged it is not: it picks up at
    step 20 and trains the last 4 steps again."""
    import shutil
    run_dir = tmp_path / "damaged"
    shutil.copytree(uninterrupted, run_dir)
    ckpts = sorted((run_dir / "checkpoints").glob("step-*"))
    assert [p.name for p in ckpts] == ["step-00000020", "step-00000024"]  # keep=2
    shard = max((p for p in ckpts[-1].iterdir() if p.suffix == ".distcp"),
                key=lambda p: p.stat().st_size)
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])   # truncated
    result = run_cli(*train_args(run_dir, cifar_dir))
    assert result.returncode == 0, result.stderr
    assert "incomplete or damaged" in result.stderr
    assert "resuming from" in result.stdout and "step-00000020" in result.stdout
    # Same size but garbage inside: the load fails and the previous one is used.
    run_dir2 = tmp_path / "corrupt"
    shutil.copytree(uninterrupted, run_dir2)
    newest = sorted((run_dir2 / "checkpoints").glob("step-*"))[-1]
    shard = max((p for p in newest.iterdir() if p.suffix == ".distcp"),
                key=lambda p: p.stat().st_size)
    shard.write_bytes(b"\0" * shard.stat().st_size)
    (newest / ".metadata").write_bytes(b"\0" * (newest / ".metadata").stat().st_size)
    result = run_cli(*train_args(run_dir2, cifar_dir))
    assert result.returncode == 0, result.stderr
    assert "could not be loaded" in result.stderr and "step-00000020" in result.stdout


@pytest.mark.slow
def test_resume_refuses_a_changed_config_and_reset_keeps_the_old_run(uninterrupted, cifar_dir,
                                                                     tmp_path):
    import shutil
    run_dir = tmp_path / "changed"
    shutil.copytree(uninterrupted, run_dir)
    result = run_cli(*train_args(run_dir, cifar_dir, ["LEARNING_RATE=0.01"]))
    assert result.returncode == 2 and "pass --reset" in result.stderr
    assert "LEARNING_RATE=0.002" in result.stderr
    result = run_cli(*train_args(run_dir, cifar_dir, ["LEARNING_RATE=0.01", "NUM_EPOCHS=1"]),
                     "--reset")
    assert result.returncode == 0, result.stderr
    moved = [p for p in tmp_path.iterdir() if p.name.startswith("changed.reset-")]
    assert len(moved) == 1 and (moved[0] / "summary.json").is_file()
    assert json.loads((run_dir / "summary.json").read_text())["epochs"] == 1


@pytest.mark.slow
def test_exported_model_evaluates_to_the_runs_final_accuracy(uninterrupted, cifar_dir):
    summary = json.loads((uninterrupted / "summary.json").read_text())
    final = run_cli("eval", str(uninterrupted / "model_final.safetensors"), "--data",
                    str(cifar_dir), "--json")
    assert final.returncode == 0, final.stderr
    result = json.loads(final.stdout)
    # The run evaluated LIMIT_EVAL_BATCHES=4 batches of 256; eval reads all 10,000 images.
    assert result["images"] == 10_000 and len(result["per_class_acc1"]) == 10
    assert result["images_per_s"] > 0 and result["acc5"] >= result["acc1"]
    small = run_cli("eval", str(uninterrupted), "--data", str(cifar_dir), "--json",
                    "--batch", "256")
    best = json.loads(small.stdout)
    assert best["epoch"] == summary["best_epoch"]


@pytest.fixture(scope="module")
def one_epoch(cifar_dir, tmp_path_factory) -> Path:
    """One epoch evaluated on the whole test set, with TensorBoard events and the report."""
    run_dir = tmp_path_factory.mktemp("durable") / "one_epoch"
    result = run_cli(*train_args(run_dir, cifar_dir, [
        "LIMIT_EVAL_BATCHES=None", "NUM_EPOCHS=1", "EVAL_BATCH_SIZE=1000", "tensorboard=True",
        "report=True"]))
    assert result.returncode == 0, result.stderr
    return run_dir


@pytest.mark.slow
def test_eval_matches_the_final_evaluation_exactly(one_epoch, cifar_dir):
    run_dir = one_epoch
    summary = json.loads((run_dir / "summary.json").read_text())
    out = run_cli("eval", str(run_dir / "model_final.safetensors"), "--data", str(cifar_dir),
                  "--json")
    got = json.loads(out.stdout)
    assert got["acc1"] == pytest.approx(summary["final_acc1"], abs=1e-9)
    assert got["loss"] == pytest.approx(summary["final_loss"], abs=1e-5)


@pytest.mark.slow
def test_validation_split_selects_the_model_and_early_stopping_ends_the_run(cifar_dir,
                                                                           tmp_path):
    run_dir = tmp_path / "val"
    result = run_cli(*train_args(run_dir, cifar_dir, [
        "VAL_SPLIT=1000", "NUM_EPOCHS=6", "EARLY_STOPPING_PATIENCE=1", "LEARNING_RATE=1e-9",
        "LIMIT_TRAIN_BATCHES=2", "SELECTION_METRIC='loss'", "WARMUP_EPOCHS=0"]))
    assert result.returncode == 0, result.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["best_split"] == "val" and summary["stopped_early"]
    assert summary["epochs"] < 6
    splits = {r["split"] for r in eval_records(run_dir)}
    assert splits == {"val", "test"}
    meta = json.loads((run_dir / "model_best.json").read_text())
    assert meta["metrics"]["split"] == "val"
    val = run_cli("eval", str(run_dir), "--data", str(cifar_dir), "--split", "val", "--json")
    assert val.returncode == 0 and json.loads(val.stdout)["images"] == 1000


def test_carved_validation_is_stratified_deterministic_and_disjoint(cifar_dir):
    from vitscale.data import load_splits
    from vitscale.data.validation import carve_validation
    train, _ = load_splits("cifar10", cifar_dir)
    rest, val = carve_validation(train, 5000, seed=1)
    again, val2 = carve_validation(train, 5000, seed=1)
    assert torch.equal(val.labels, val2.labels) and torch.equal(val.images, val2.images)
    assert len(val.labels) == 5000 and len(rest.labels) == 45_000
    assert torch.bincount(val.labels).tolist() == [500] * 10
    # Disjoint and complete: tag each image with its index and carve the same way.
    from vitscale.data.base import ImageSplit
    n = len(train.labels)
    tagged = ImageSplit(torch.arange(n).view(n, 1, 1, 1), train.labels, train.classes)
    t_rest, t_val = carve_validation(tagged, 5000, seed=1)
    ids_val, ids_rest = set(t_val.images.flatten().tolist()), set(t_rest.images.flatten().tolist())
    assert not ids_val & ids_rest and len(ids_val | ids_rest) == n


@pytest.mark.slow
def test_tensorboard_report_and_the_tensorboard_server(one_epoch, tmp_path):
    import shutil
    run_dir = tmp_path / "tb"
    shutil.copytree(one_epoch, run_dir)  # the report is rewritten below
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/acc1", "train/lr", "train/images_per_s", "train/memory_gb",
            "train/grad_norm", "test/loss", "test/acc1"} <= tags
    assert events.Tags()["images"] == ["inputs/train"]
    for name in ("curves_epoch.png", "curves_time.png", "lr.png", "throughput.png"):
        assert (run_dir / "report" / name).stat().st_size > 1000
    assert "curves_epoch.png" in (run_dir / "report.html").read_text()
    (run_dir / "report.html").unlink()
    assert run_cli("report", str(run_dir)).returncode == 0 and (run_dir / "report.html").exists()

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "vitscale", "tensorboard", str(run_dir),
                               "--port", str(port)], cwd=REPO, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline, body = time.time() + 120, b""
        while time.time() < deadline and not body:
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read()
            except OSError:
                time.sleep(0.5)
        assert b"TensorBoard" in body or b"tensorboard" in body
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_timm_weights_give_the_same_logits():
    import timm
    from vitscale.io.init import initialize_from
    from vitscale.models import ViTSize, VisionTransformer
    torch.manual_seed(0)
    theirs = timm.models.vision_transformer.VisionTransformer(
        img_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=4, mlp_ratio=2,
        num_classes=10).eval()
    from safetensors.torch import save_file
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"timm-{os.getpid()}.safetensors"
    save_file({k: v.contiguous() for k, v in theirs.state_dict().items()}, str(path))
    ours = VisionTransformer(ViTSize(width=64, depth=2, heads=4, mlp_ratio=2, patch=8,
                                     img_size=32, num_classes=10)).eval()
    notes = initialize_from(ours, str(path))
    path.unlink()
    assert notes == []
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=1e-5)


def test_init_from_adapts_head_and_position_embedding(tmp_path):
    from vitscale.io import export_model, initialize_from, load_exported
    from vitscale.models import ViTSize, VisionTransformer
    src = VisionTransformer(ViTSize(width=32, depth=1, heads=2, mlp_ratio=2, patch=8,
                                    img_size=32, num_classes=100))
    path = export_model(src.state_dict(), src.size, tmp_path / "src", classes=None)
    model, meta = load_exported(path)
    assert meta["model"]["num_classes"] == 100
    dst = VisionTransformer(ViTSize(width=32, depth=1, heads=2, mlp_ratio=2, patch=8,
                                    img_size=64, num_classes=10))
    notes = initialize_from(dst, str(path))
    assert any("head.weight" in n for n in notes) and any("pos_embed" in n for n in notes)
    torch.testing.assert_close(dst.blocks[0].attn.q.weight, src.blocks[0].attn.q.weight)
    with pytest.raises(Exception, match="INIT_FROM must"):
        initialize_from(VisionTransformer(ViTSize(width=64, depth=1, heads=2, mlp_ratio=2,
                                                  patch=8, img_size=32, num_classes=10)),
                        str(path))


def test_weights_are_never_unpickled(tmp_path):
    from vitscale.io import read_weights

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"w": torch.ones(1)}, "x": Evil()}, path)
    with pytest.raises(Exception, match="weights-only"):
        read_weights(path)
    assert not (tmp_path / "pwned").exists()


def test_docs_report_images_are_rendered_from_the_recorded_real_run(tmp_path):
    """docs/run-directory.md shows the report of the recorded quick_cpu run
    (benchmarks/results). `make docs` sets VITSCALE_DOCS_IMAGES=docs/images to keep the plots
    there (not in git); a plain test run writes nothing into the repository."""
    import shutil

    from vitscale.report import write_report
    recorded = REPO / "benchmarks" / "results"
    run_dir = tmp_path / "quick_cpu"
    run_dir.mkdir()
    shutil.copy(recorded / "2026-11-23-cpu-quick_cpu-final-metrics.jsonl", run_dir / "metrics.jsonl")
    shutil.copy(recorded / "2026-11-23-cpu-quick_cpu-final-summary.json", run_dir / "summary.json")
    write_report(run_dir)
    images = os.environ.get("VITSCALE_DOCS_IMAGES")
    for name in ("curves_epoch", "curves_time", "lr", "throughput"):
        png = run_dir / "report" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
        if images:
            Path(images).mkdir(exist_ok=True)
            shutil.copy(png, Path(images) / f"quick_cpu_{name}.png")
    assert "47.56" in (run_dir / "report.html").read_text()
