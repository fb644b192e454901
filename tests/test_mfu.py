"""MFU (train/mfu.py) in the run log, summary.json and `vitscale bench step`: the number equals
the planner's FLOPs per image x images/s / the device row's peak, on tiny CPU runs."""

from __future__ import annotations

import json
import statistics

import pytest

from vitscale import Trainer, build_engine, load_config
from vitscale.bench.step import bench_step
from vitscale.distributed.mesh import ParallelDims
from vitscale.models import get_variant
from vitscale.parallel.costs import StepShape, step_flops
from vitscale.planner.hardware import DEVICES, row_for_gpu_name
from vitscale.train.mfu import Utilisation, training_flops_per_image

from conftest import TINY

CPU_PEAK = DEVICES["cpu"].peak_flops


def test_flops_per_image_is_the_planners_step_flops_of_one_image():
    for name in ("vit_lite_7_4", "vit_base_patch16_224"):
        size = get_variant(name)
        dims = ParallelDims.from_config(load_config("configs/cifar10/quick_cpu.py"), 1,
                                        size.heads, size.width, size.depth)
        assert training_flops_per_image(size) == step_flops(StepShape(size, dims, micro_batch=1))
    # ViT-B/16 at 224 px: 105.4 GFLOP per image, forward and backward (issue 15 quotes 105.6).
    assert training_flops_per_image(get_variant("vit_base_patch16_224")) / 1e9 == \
        pytest.approx(105.38, abs=0.01)
    assert training_flops_per_image(get_variant("vit_lite_7_4_fff")) is None  # not counted


def test_gpu_rows_by_name_and_no_mfu_without_a_peak():
    assert row_for_gpu_name("NVIDIA H100 80GB HBM3").name == "h100"
    assert row_for_gpu_name("NVIDIA H200").name == "h200"
    assert row_for_gpu_name("NVIDIA A100-SXM4-40GB").name == "a100-40"
    assert row_for_gpu_name("NVIDIA A100 80GB PCIe").name == "a100-80"
    assert row_for_gpu_name("Tesla V100-SXM2-32GB").name == "v100"
    for other in ("NVIDIA H100 PCIe", "NVIDIA H100 NVL", "NVIDIA L4", "NVIDIA GeForce RTX 4090"):
        assert row_for_gpu_name(other) is None, other
    unknown = Utilisation(1e9, None, "peak unknown")
    assert unknown.record(1000.0) == {"mfu": None} and unknown.summary()["mfu"] is None


def test_run_log_and_summary_report_mfu_on_a_tiny_cpu_run(cifar_dir, tmp_path):
    cfg = load_config("configs/cifar10/quick_cpu.py", TINY)
    engine = build_engine(cfg, data=cifar_dir, device="cpu")
    flops = training_flops_per_image(engine.plan.model)
    summary = Trainer(engine, run_dir=tmp_path / "run", progress=False, console=False).fit()
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    train = [r for r in records if r["split"] == "train"]
    assert len(train) == 4
    for r in train:
        assert r["mfu"] == pytest.approx(flops * r["images_per_s"] / CPU_PEAK, rel=1e-12)
        assert 0 < r["mfu"] < 1
    saved = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert saved["mfu"] == summary["mfu"] == statistics.median(r["mfu"] for r in train)
    assert saved["flops_per_image"] == flops and saved["peak_flops"] == CPU_PEAK
    assert saved["mfu_peak"].startswith("cpu: 0.189 TFLOP/s")


def test_bench_step_reports_mfu_of_each_loop():
    r = bench_step("vit_lite_7_4", 4, steps=1, warmup=1, rounds=1, device="cpu")
    flops = training_flops_per_image(get_variant("vit_lite_7_4"))
    assert r["flops_per_image"] == flops and r["peak_flops"] == CPU_PEAK
    assert r["vitscale_mfu"] == pytest.approx(flops * r["vitscale_images_per_s"] / CPU_PEAK)
    assert r["plain_mfu"] == pytest.approx(flops * r["plain_images_per_s"] / CPU_PEAK)
