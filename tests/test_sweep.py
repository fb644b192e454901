"""`vitscale sweep` and `vitscale report --sweep`: grids, the results file, skipping, plots."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vitscale.errors import ConfigError, VitscaleError
from vitscale.sweep import expand_grid, parse_grid_option
from vitscale.sweep.report import write_sweep_report

from conftest import REPO, TINY, run_cli


def test_grid_values_are_literals_bare_words_or_whole_tuples():
    assert parse_grid_option("MLP_DIM=64,256") == ("MLP_DIM", [64, 256])
    assert parse_grid_option("FFN=mlp,fff") == ("FFN", ["mlp", "fff"])
    assert parse_grid_option("FFF_LR_DEPTH=(0.1, 1.0),(1, 1)") == (
        "FFF_LR_DEPTH", [(0.1, 1.0), (1, 1)])
    points = expand_grid(["A=1,2", "B=x,y"], repeats=2)
    assert len(points) == 8 and points[0].values == (("A", 1), ("B", "x"))
    assert [p.repeat for p in points[:2]] == [0, 1]
    assert points[2].overrides() == ["A=1", "B='y'"]
    zipped = expand_grid(["FFF_DEPTH,FFF_TREES=(3,16),(7,1)", "SEED=1,2"])
    assert [p.values for p in zipped[::2]] == [
        (("FFF_DEPTH", 3), ("FFF_TREES", 16), ("SEED", 1)),
        (("FFF_DEPTH", 7), ("FFF_TREES", 1), ("SEED", 1))]


@pytest.mark.parametrize("options, repeats, message", [
    (["MLP_DIM"], 1, "expected KEY=v1,v2"),
    (["MLP_DIM=64,64"], 1, "a value is repeated"),
    (["A=1", "A=2"], 1, "given twice"),
    (["SEED=1,2"], 2, "keep one"),
    (["A=1"], 0, "at least 1"),
    (["A,B=1,2"], 1, "2 keys need values of 2 each"),
])
def test_bad_grids_are_one_line_errors(options, repeats, message):
    with pytest.raises(ConfigError, match=message):
        expand_grid(options, repeats)


def _record(seed, x, acc, series="mlp", wall=10.0):
    return {"id": f"{x}-{seed}-{series}", "seed": seed, "point": {"MLP_DIM": x},
            "best_test_acc1": acc, "final_test_acc1": acc - 1, "wall_seconds": wall,
            "images_per_s": 100.0, "num_parameters": 1000 * x, "ffn": f"mlp {x}",
            "commit": "abc", "config": {"MLP_DIM": x, "FFN": series, "zero": {"stage": 2}}}


def test_sweep_report_averages_repeats_with_error_bars(tmp_path):
    results = tmp_path / "results.jsonl"
    records = [_record(1, 64, 50.0), _record(2, 64, 52.0), _record(1, 256, 60.0),
               _record(1, 256, 40.0, series="fff"), {**_record(1, 8, 1.0), "config": {}}]
    results.write_text("".join(json.dumps(r) + "\n" for r in records))
    page = write_sweep_report(results, "MLP_DIM", series="FFN")
    assert page == tmp_path / "sweep_MLP_DIM_by_FFN.html"
    assert (tmp_path / "sweep_MLP_DIM_by_FFN.png").stat().st_size > 1000
    text = page.read_text()
    assert "51.00 &plusmn; 1.41" in text          # mean and sample std of 50 and 52
    assert "1 records without a value for MLP_DIM are left out" in text
    # Record fields (num_parameters) and dotted config keys work as axes too.
    assert write_sweep_report(results, "num_parameters").is_file()
    assert write_sweep_report(results, "zero.stage").is_file()
    with pytest.raises(VitscaleError, match="no record .* has a value for 'NOPE'"):
        write_sweep_report(results, "NOPE")


def _tiny_sets() -> list[str]:
    sets = TINY + ["NUM_EPOCHS=1", "tensorboard=False", "report=False", "DATASET='cifar10'"]
    return [a for kv in sets for a in ("--set", kv)]


@pytest.mark.slow  # 8 vitscale processes: a refused sweep, a sweep of 4 runs, its rerun, a report
def test_a_2x2_sweep_records_4_runs_plots_them_and_a_rerun_skips_them(quick_config, cifar_dir,
                                                                      tmp_path):
    def sweep(second_grid: str) -> list[str]:
        return ["sweep", str(quick_config), "--data", str(cifar_dir), "--out",
                str(tmp_path / "sw"), "--grid", "MLP_DIM=16,32", "--grid", second_grid,
                *_tiny_sets()]

    # FFN='fff' with MLP_DIM set is refused at planning, before any run starts: one line.
    bad = run_cli(*sweep("FFN=mlp,fff"), cwd=tmp_path)
    assert bad.returncode == 2 and "MLP_DIM sizes a dense MLP" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and not (tmp_path / "sw").exists()

    args = sweep("FFN_PER_BLOCK=1,2")
    first = run_cli(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    results = tmp_path / "sw" / "results.jsonl"
    records = [json.loads(line) for line in results.read_text().splitlines()]
    assert len(records) == 4
    assert {(r["point"]["MLP_DIM"], r["point"]["FFN_PER_BLOCK"]) for r in records} == {
        (16, 1), (16, 2), (32, 1), (32, 2)}
    r = records[0]
    assert r["config_file"] == str(quick_config) and r["seed"] == 42
    assert r["commit"] or not (REPO / ".git").exists()  # the checkout's commit, when it is one
    assert r["config"]["MLP_DIM"] == r["point"]["MLP_DIM"] and r["config"]["HIDDEN_SIZE"] == 32
    assert r["config"]["LEARNING_RATE"] and r["config"]["FFN"] == "mlp"
    for key in ("best_test_acc1", "final_test_acc1", "final_test_loss", "wall_seconds",
                "images_per_s", "num_parameters"):
        assert r[key] > 0, key
    assert len({r["num_parameters"] for r in records}) == 4
    assert all((tmp_path / "sw" / "runs") == Path(r["run_dir"]).parent and
               (Path(r["run_dir"]) / "model_final.safetensors").is_file() for r in records)

    plot = run_cli("report", "--sweep", str(results), "--x", "MLP_DIM", "--series",
                   "FFN_PER_BLOCK", cwd=tmp_path)
    assert plot.returncode == 0, plot.stderr
    assert (tmp_path / "sw" / "sweep_MLP_DIM_by_FFN_PER_BLOCK.png").is_file()

    again = run_cli(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("skipped, already in") == 4 and "running" not in again.stdout
    assert len(results.read_text().splitlines()) == 4


def test_docs_sweep_images_are_rendered_from_the_recorded_sweep(tmp_path):
    """docs/experiments.md shows the recorded CPU sweep (benchmarks/ffn_sweep.sh, its results in
    benchmarks/results). `make docs` sets VITSCALE_DOCS_IMAGES=docs/images to keep the plots
    there (not in git); a plain test run writes nothing into the repository."""
    import os
    import shutil

    recorded = REPO / "benchmarks" / "results" / "2026-12-02-cpu-ffn-sweep.jsonl"
    records = [json.loads(line) for line in recorded.read_text().splitlines()]
    # Every one of the 10 feed-forward sublayers, every run better than chance (10%).
    assert len({r["ffn"] for r in records}) == 10
    assert all(r["final_test_acc1"] > 10 for r in records)
    images = os.environ.get("VITSCALE_DOCS_IMAGES")
    # Dense widths, with the pair of 128-wide MLPs as its own series; every sublayer by name.
    for x, series, name in (("MLP_DIM", "FFN_PER_BLOCK", "ffn_sweep_mlp_dim"),
                            ("ffn", None, "ffn_sweep_variants")):
        page = write_sweep_report(recorded, x, series, out=tmp_path / f"{name}.png")
        png = page.with_suffix(".png")
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
        if images:
            Path(images).mkdir(exist_ok=True)
            shutil.copy(png, Path(images) / png.name)
