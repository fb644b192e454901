"""`vitscale plan`: every layout of N processes costed per rank and ranked, from the config.

The planner's bytes and parameters are checked against measured runs in
tests/test_tensor_parallel.py (test_the_planner_sees_what_the_run_measured); here: what a user
sees, that the table and --json agree, that ranking and memory marks follow the estimates, and
that impossible inputs get one line.
"""

from __future__ import annotations

import json
import re

import pytest

from conftest import REPO, run_cli
from vitscale.config import load_config
from vitscale.plan import make_plan
from vitscale.planner import config_layout, device, plan_layouts

VIT_B16 = REPO / "configs" / "imagenet1k" / "vit_b16.py"
SEED_003 = REPO / "configs" / "imagenet1k" / "hybrid" / "vit_1d_tp4_pp16.py"


@pytest.fixture(scope="module")
def vit_b16_on_8():
    table = run_cli("plan", str(VIT_B16), "--world", "8", "--top", "40")
    as_json = run_cli("plan", str(VIT_B16), "--world", "8", "--json")
    assert table.returncode == 0, table.stderr
    assert as_json.returncode == 0, as_json.stderr
    return table.stdout, json.loads(as_json.stdout)


def test_the_table_and_json_show_the_same_ranked_layouts(vit_b16_on_8):
    table, plan = vit_b16_on_8
    rows = plan["layouts"]
    assert plan["world"] == 8 and plan["device"] == "h100" and len(rows) > 20
    # Every layout of 8: data alone, 1D at 2/4/8 (with and without sequence parallelism), 2D at
    # 4, 2.5D at 8 (depth 2), 3D at 8, pipelines at 2/4/8, each with ZeRO and checkpointing.
    described = {r["layout"] for r in rows} | {s["layout"] for s in plan["skipped"]}
    for layout in ("dp", "tp=2 1d, dp", "tp=4 2d, dp", "tp=8 2.5d d=2, dp", "tp=8 3d, dp",
                   "tp=8 1d sp, dp", "dp zero=3", "dp, ckpt"):
        assert layout in described, layout
    assert any(r["layout"].startswith("pp=2") for r in rows)
    # Fitting layouts first, fastest first (ties within 1% may go to the one sending less).
    fits = [r["fits"] for r in rows]
    assert fits == sorted(fits, reverse=True)
    times = [r["step_seconds"] for r in rows if r["fits"]]
    assert all(b >= a * 0.99 for a, b in zip(times, times[1:]))
    # The table prints the JSON's numbers: the first 15 rows, in order, with the same step time
    # and peak memory, and the config's own layout marked.
    for i, row in enumerate(rows[:15], 1):
        line = next(l for l in table.splitlines() if re.match(rf"[│|]\s+{i}\s+[│|]", l))
        assert row["layout"] in line, (row["layout"], line)
        assert f"{row['step_seconds']:.3f}" in line and f"{row['peak_bytes'] / 1e9:.2f}" in line
    own = [r for r in rows if r["config_layout"]]
    assert len(own) == 1 and own[0]["layout"] == "dp"
    assert table.splitlines()[-1].startswith("best: ") or "best: " in table


def test_every_cost_is_per_rank_and_adds_up(vit_b16_on_8):
    _, plan = vit_b16_on_8
    for r in plan["layouts"]:
        parts = (r["parameters_bytes"] + r["gradients_bytes"] + r["optimizer_bytes"]
                 + r["activations_bytes"])
        assert r["peak_bytes"] == pytest.approx(parts)
        assert r["comm_intra_node_bytes"] + r["comm_inter_node_bytes"] == pytest.approx(
            sum(r["comm_bytes_by_dim"].values()))
        assert r["comm_inter_node_bytes"] == 0        # 8 processes: one 8-GPU node
        assert 0 <= r["bubble"] < 1 and r["flops_per_rank"] > 0 and r["step_seconds"] > 0
        assert r["fits"] == (r["peak_bytes"] <= 80e9)
        if not r["runnable"]:
            assert r["not_runnable_because"]


def test_layouts_cost_what_their_shape_says():
    """Relations that hold whatever the device: T-way tensor parallelism divides the FLOPs
    and the split parameters, ZeRO-3 shards what data parallelism replicates, checkpointing
    trades a forward for activations, and a pipeline of P stages idles (P-1)/(M+P-1)."""
    cfg = load_config(VIT_B16)
    ranked, _ = plan_layouts(cfg, 8, device("h100"), 8)
    by = {e.candidate.describe(): e for e in ranked}
    # ViT-B/16's 12 heads split 2, 4 (or 3, 6, 12) ways in 1D, not 8.
    dp, tp4, zero3, ckpt = by["dp"], by["tp=4 1d, dp"], by["dp zero=3"], by["dp, ckpt"]
    # Per rank: dp=8 sees 1/8 of the batch; tp=4 x dp=2 sees 1/2 of it split 4 ways: equal
    # FLOPs in the blocks, while the embedding and head are computed whole on every 1D rank.
    assert tp4.flops == pytest.approx(dp.flops, rel=0.05) and tp4.flops > dp.flops
    assert tp4.memory["parameters"] < dp.memory["parameters"] / 3
    # FSDP2 splits dimension 0: the class token and position embedding ([1, ...]) stay whole
    # on the first rank, which the planner (busiest rank) counts.
    assert zero3.memory["parameters"] == pytest.approx(dp.memory["parameters"] / 8, rel=0.02)
    assert zero3.memory["parameters"] > dp.memory["parameters"] / 8
    assert zero3.comm_by_dim["dp"] > dp.comm_by_dim["dp"]         # gathers parameters too
    assert ckpt.flops == pytest.approx(dp.flops * 4 / 3, rel=1e-6)
    assert ckpt.memory["activations"] < dp.memory["activations"] / 4
    for e in ranked:
        c = e.candidate
        if c.pipeline > 1:
            # The default schedule is 1F1B; the config's own gradient accumulation runs as
            # more micro-batches of one schedule.
            m = c.micro_batches * make_plan(c.config(cfg), 8, runnable=False).accumulation
            assert e.bubble == pytest.approx((c.pipeline - 1) / (m + c.pipeline - 1))
            assert e.comm_by_dim.get("pp", 0) > 0
        else:
            assert e.bubble == 0


def test_seed_003s_model_on_64_gpus_needs_model_parallelism():
    """The 6.4B ViT does not fit on one 80 GB GPU per data-parallel copy: plain data
    parallelism is marked as not fitting, and the best layout splits the model."""
    cfg = load_config(SEED_003)
    ranked, _ = plan_layouts(cfg, 64, device("h100"), 8)
    by = {e.candidate.describe(): e for e in ranked}
    assert not by["dp"].fits and by["dp"].memory["peak"] > 80e9
    best = ranked[0]
    assert best.fits and (best.candidate.pipeline > 1 or best.candidate.tensor > 1
                          or best.candidate.zero == 3)
    own = [e for e in ranked if e.candidate == config_layout(cfg)]
    assert len(own) == 1 and own[0].candidate.pipeline == 16 and own[0].candidate.tensor == 4
    # Ranks fill 8-GPU nodes tensor dimension first: the 4-way tensor groups stay inside a
    # node, the 16 stages (4 ranks apart) span 8 nodes, so what crosses nodes is the pipeline's.
    assert own[0].comm_inter == pytest.approx(own[0].comm_by_dim["pp"], rel=0.01)
    assert own[0].comm_intra >= own[0].comm_by_dim["tp"]


@pytest.mark.parametrize("args, message", [
    (["--world", "0"], "--world and --gpus-per-node must be at least 1"),
    (["--world", "8", "--device", "tpu-v9"], "--device 'tpu-v9' is not in the planner's table"),
    (["--world", "7"], "no layout of 7 processes fits this config"),
])
def test_impossible_inputs_get_one_line(args, message):
    result = run_cli("plan", str(VIT_B16), *args)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.stderr, \
        result.stderr
