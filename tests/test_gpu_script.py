"""benchmarks/gpu_cifar10.sh in its TINY mode on the CPU: every step runs and writes the result
files that benchmarks/time_to_accuracy.py turns into benchmarks/README.md's tables."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import DATASETS, REPO


@pytest.mark.slow
@pytest.mark.extended
def test_gpu_cifar10_script_tiny_mode_writes_parseable_results(cifar_dir, tmp_path):
    out = tmp_path / "results"
    env = {**os.environ, "TINY": "1", "DATASETS": str(DATASETS), "PYTHON": sys.executable,
           "OUT": str(out), "RUNS": str(tmp_path / "runs"), "COMMIT": "test"}
    result = subprocess.run(["bash", "benchmarks/gpu_cifar10.sh"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    timings = {t["name"]: t for t in map(json.loads, (out / "timings.jsonl").open())}
    assert set(timings) == {"fast_seed42", "bench_step", "bench_amp", "full", "fast_seed43"}
    assert all(t["exit"] == 0 for t in timings.values()), timings
    for name in ("fast_seed42", "full", "fast_seed43"):
        records = [json.loads(line) for line in (out / f"{name}-metrics.jsonl").open()]
        assert [r["epoch"] for r in records if r["split"] == "test"] == [1, 2]
        summary = json.loads((out / f"{name}-summary.json").read_text())
        assert summary["epochs"] == 2 and summary["mfu"] > 0
    fast = json.loads((out / "fast_seed42-summary.json").read_text())
    assert fast["ema_decay"] == 0.998 and fast["tta_flip"] is True   # the fast recipe's own
    [step] = map(json.loads, (out / "bench_step_vit.jsonl").open())
    assert step["vitscale_mfu"] > 0
    amp = [json.loads(line) for line in (out / "bench_amp_vit.jsonl").open()]
    assert {r["mode"] for r in amp} == {"fp32", "bf16"} and all("error" not in r for r in amp)
    table = (out / "time_to_accuracy.md").read_text()
    assert "configs/cifar10/vit_lite_7_4_fast.py (fast_seed42) | cpu-tiny" in table
    assert "| 2 of 2 |" in table and "| test |" in table
    assert "| fp32 |" in table and "vitscale, compiled" not in table   # tiny: no compile
