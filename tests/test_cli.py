"""The command line: dry runs, the model list, the step benchmark, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import REPO, TINY, run_cli


def test_dry_run_prints_config_and_derived_values(quick_config, tmp_path):
    result = run_cli("train", str(quick_config), "--dry-run", "--set", "gradient_accumulation=2",
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for text in ("LEARNING_RATE = ", "gradient_accumulation = 2", "global_batch         256",
                 "per_device_batch     128", "accumulation_steps   2", "steps_per_epoch      195",
                 "num_parameters"):
        assert text in out
    assert not list(tmp_path.iterdir())  # a dry run writes nothing


def test_python_dash_m_and_models_list():
    result = run_cli("models")
    assert result.returncode == 0
    assert "vit_lite_7_4" in result.stdout and "86.57M" in result.stdout


def test_bench_step_reports_both_loops(tmp_path):
    result = run_cli("bench", "step", "--model", "vit_lite_7_4", "--batch", "8", "--steps", "2",
                     "--warmup", "1", "--rounds", "1", "--json")
    assert result.returncode == 0, result.stderr
    r = json.loads(result.stdout)
    assert r["vitscale_images_per_s"] > 0 and r["plain_images_per_s"] > 0
    assert r["ratio"] == pytest.approx(r["vitscale_images_per_s"] / r["plain_images_per_s"])


def _bad_wrong_layout(tmp_path: Path) -> list[str]:
    (tmp_path / "photos").mkdir()
    return ["--data", str(tmp_path / "photos")]


@pytest.mark.parametrize("extra, message", [
    (lambda p: ["--data", str(p / "missing")], "does not exist: pass --data"),
    (_bad_wrong_layout, "no 'train' split for cifar10"),
    (lambda p: ["--set", "LERNING_RATE=1e-3"], "did you mean 'LEARNING_RATE'"),
    (lambda p: ["--set", "NUM_EPOCHS='many'"], "NUM_EPOCHS='many' has the wrong type"),
    (lambda p: ["--set", "TOTAL_BATCH_SIZE=1000", "--set", "gradient_accumulation=3"],
     "not divisible by data-parallel size 1 x gradient_accumulation 3"),
    (lambda p: ["--set", "BATCH_SIZE=0"], "BATCH_SIZE=0 must be at least 1"),
])
def test_bad_input_is_one_line_nonzero_exit_and_nothing_written(quick_config, cifar_dir,
                                                                tmp_path, extra, message):
    args = ["train", str(quick_config), "--run-dir", str(tmp_path / "run")]
    args += ["--data", str(cifar_dir)] + extra(tmp_path)
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vitscale: error: ") and message in lines[0]
    assert not (tmp_path / "run").exists() and not (tmp_path / "runs").exists()


def test_the_cli_docstring_names_every_command():
    """`vitscale --help` starts from cli.py's docstring: it lists every subcommand."""
    import re

    import vitscale.cli
    from vitscale.commands import COMMANDS
    names = [c.__name__.rsplit(".", 1)[1] for c in COMMANDS]
    assert [n for n in names if not re.search(rf"^    vitscale {n}\b", vitscale.cli.__doc__,
                                               re.M)] == []


def test_missing_config_file(tmp_path):
    result = run_cli("train", str(tmp_path / "nope.py"))
    assert result.returncode == 2 and "config file" in result.stderr


@pytest.mark.slow
def test_examples_run(cifar_dir, tmp_path):
    import subprocess
    import sys
    for script in ("train_with_trainer.py", "train_with_engine.py"):
        result = subprocess.run(
            [sys.executable, str(REPO / "examples" / script), "--data", str(cifar_dir),
             "--run-dir", str(tmp_path / script), *[a for kv in TINY for a in ("--set", kv)]],
            capture_output=True, text=True, timeout=600, cwd=REPO)
        assert result.returncode == 0, result.stderr
        assert "test acc1" in result.stdout


@pytest.mark.slow  # a fresh process per precision mode
def test_bench_amp_reports_every_mode_available_here():
    result = run_cli("bench", "amp", "--model", "vit_lite_7_4", "--batch", "4", "--steps", "1",
                     "--warmup", "1", "--modes", "fp32", "bf16", "naive_fp16", "--json")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["mode"] for r in rows] == ["fp32", "bf16", "naive_fp16"]
    for r in rows:
        assert r["memory_gb"] > 0 and r["iterations_per_s"] > 0
        assert r["images_per_s"] == pytest.approx(4 * r["iterations_per_s"])
    missing = run_cli("bench", "amp", "--model", "vit_lite_7_4", "--batch", "4", "--modes", "apex")
    assert missing.returncode == 2 and "needs NVIDIA apex" in missing.stderr
