"""Tensor parallelism (1D, 2D, 2.5D, 3D), alone and with data parallelism, against one process
on real CIFAR-10.

Each case is a layout on real gloo processes (tests/parity_worker.py). For the same model,
seed and batch it must give the single process's initial weights, logits, loss, every
gradient (gathered to full shape) and every parameter after 3 optimizer steps within 1e-5 in
fp32, and the bytes it sends per step must be within 5% of parallel/costs.py's formulas.
Three torchrun launches (2, 4 and 8 processes) run all cases, to pay the start-up once each.
"""

from __future__ import annotations

import pytest

from distributed_helpers import launch_workers, write_parity_batch

pytestmark = pytest.mark.slow

ONE_D = ["parallel.tensor.mode='1d'"]
LAMB_CLIP = ["OPTIMIZER='lamb'", "clip_grad_norm=1.0"]
# name -> (processes, overrides, tolerance). The recipe (quick_cpu.py) clips at norm 1.0 and
# uses AdamW unless a case says otherwise.
CASES = {
    "1d_t2": (2, ONE_D + ["parallel.tensor.size=2"], 1e-5),
    # Activation checkpointing wraps the sharded blocks (their collectives recompute too).
    "1d_t2_checkpointed": (2, ONE_D + ["parallel.tensor.size=2", "CHECKPOINT=True"], 1e-5),
    "1d_t2_class_parallel_lamb": (2, ONE_D + ["parallel.tensor.size=2",
                                              "parallel.tensor.head='class_parallel'",
                                              *LAMB_CLIP], 1e-5),
    # Label smoothing takes the sharded soft-target loss (what Mixup/CutMix batches take).
    "1d_t2_class_parallel_smoothing": (2, ONE_D + ["parallel.tensor.size=2",
                                                   "parallel.tensor.head='class_parallel'",
                                                   "LABEL_SMOOTHING=0.1"], 1e-5),
    "1d_t4": (4, ONE_D + ["parallel.tensor.size=4"], 1e-5),
    "1d_t4_sequence_parallel": (4, ONE_D + ["parallel.tensor.size=4",
                                            "parallel.tensor.sequence_parallel=True"], 1e-5),
    "1d_t4_sp_class_parallel_lamb": (4, ONE_D + ["parallel.tensor.size=4",
                                                 "parallel.tensor.sequence_parallel=True",
                                                 "parallel.tensor.head='class_parallel'",
                                                 *LAMB_CLIP], 1e-5),
    "1d_t2_dp2": (4, ONE_D + ["parallel.tensor.size=2"], 1e-5),
    "1d_t2_dp2_zero1": (4, ONE_D + ["parallel.tensor.size=2", "zero.stage=1"], 1e-5),
    "1d_t2_dp2_zero2_lamb": (4, ONE_D + ["parallel.tensor.size=2", "zero.stage=2",
                                         *LAMB_CLIP], 1e-5),
    "1d_t2_dp2_zero3_sp_accumulation": (4, ONE_D + ["parallel.tensor.size=2", "zero.stage=3",
                                                    "parallel.tensor.sequence_parallel=True",
                                                    "gradient_accumulation=2"], 1e-5),
    # Data parallelism alone, for the byte counts of DDP and ZeRO-1.
    "ddp_zero1_lars": (4, ["zero.stage=1", "OPTIMIZER='lars'", "LEARNING_RATE=0.5"], 1e-5),
    # Low precision under tensor parallelism: it runs, and stays near fp32's one process.
    "1d_t2_dp2_fp16": (4, ONE_D + ["parallel.tensor.size=2", "precision='fp16'"], 2e-2),
    "1d_t2_sp_bf16": (2, ONE_D + ["parallel.tensor.size=2",
                                  "parallel.tensor.sequence_parallel=True",
                                  "precision='bf16'"], 5e-2),
    "1d_t2_naive_fp16": (2, ONE_D + ["parallel.tensor.size=2", "precision='naive_fp16'"], 2e-2),
    # The grid modes: hand-written layers (parallel/tensor/twod.py, threed.py).
    "2d_t4": (4, ["parallel.tensor.mode='2d'", "parallel.tensor.size=4"], 1e-5),
    "2d_t4_lamb_accumulation_checkpointed": (4, ["parallel.tensor.mode='2d'",
                                                 "parallel.tensor.size=4", *LAMB_CLIP,
                                                 "gradient_accumulation=2", "CHECKPOINT=True"],
                                             1e-5),
    "2d_t4_fp16": (4, ["parallel.tensor.mode='2d'", "parallel.tensor.size=4",
                       "precision='fp16'"], 2e-2),
    "2p5d_t8": (8, ["parallel.tensor.mode='2.5d'", "parallel.tensor.size=8",
                    "parallel.tensor.depth=2"], 1e-5),
    "3d_t8": (8, ["parallel.tensor.mode='3d'", "parallel.tensor.size=8"], 1e-5),
    "3d_t8_lamb_checkpointed": (8, ["parallel.tensor.mode='3d'", "parallel.tensor.size=8",
                                    *LAMB_CLIP, "CHECKPOINT=True"], 1e-5),
    "2d_t4_dp2_lamb": (8, ["parallel.tensor.mode='2d'", "parallel.tensor.size=4", *LAMB_CLIP],
                       1e-5),
}


@pytest.fixture(scope="module")
def parity_batch(cifar_folder, tmp_path_factory):
    return write_parity_batch(cifar_folder, tmp_path_factory.mktemp("parity") / "batch.pt")


def launch(nproc: int, cases: dict, batch, out_dir) -> dict:
    return launch_workers("parity_worker.py", nproc, cases, batch, out_dir, timeout=1200)


@pytest.fixture(scope="module")
def results(parity_batch, tmp_path_factory) -> dict:
    out_dir = tmp_path_factory.mktemp("parity_results")
    found = {}
    for nproc in (2, 4, 8):
        cases = {name: overrides for name, (n, overrides, _) in CASES.items() if n == nproc}
        found.update(launch(nproc, cases, parity_batch, out_dir))
    return found


@pytest.mark.parametrize("case", list(CASES))
def test_layout_matches_one_process(case, results):
    _, _, tol = CASES[case]
    for rank in results[case]:
        assert rank["init"][0] == 0.0, rank["init"]      # exactly one process's weights
        assert rank["logits"] <= tol and rank["loss"] <= tol, rank
        assert rank["grads"][0] <= (tol if tol <= 1e-5 else tol * 2**16), rank["grads"]
        assert max(rank["step_losses"]) <= tol, rank["step_losses"]
        assert rank["params"][0] <= tol, rank["params"]


@pytest.mark.parametrize("case", list(CASES))
def test_bytes_sent_match_the_formulas(case, results):
    """Every (mesh dimension, collective) the first step used, within 5% of costs.py."""
    for rank in results[case]:
        measured = rank["accounting"]["comm_bytes_per_step"]["by_dim"]
        predicted = rank["predicted"]
        total = rank["accounting"]["comm_bytes_per_step"]["total_bytes"]
        assert total == pytest.approx(sum(v for d in predicted.values() for v in d.values()),
                                      rel=0.05)
        keys = {(d, k) for d in measured for k in measured[d]} | \
               {(d, k) for d in predicted for k in predicted[d]}
        for dim, kind in keys:
            m = measured.get(dim, {}).get(kind, {}).get("bytes", 0)
            p = predicted.get(dim, {}).get(kind, 0)
            if max(m, p) < 0.01 * total:
                continue  # DDP's one-off bucket-order broadcast (~100 B) and the like
            assert m == pytest.approx(p, rel=0.05), (dim, kind, m, p)


@pytest.mark.parametrize("case", list(CASES))
def test_collectives_called_as_the_formulas_count(case, results):
    """The cost model counts calls too (the planner's latency term): every one it predicts
    happens (DDP's one-off first-step broadcast of its bucket order aside)."""
    for rank in results[case]:
        measured = rank["accounting"]["comm_bytes_per_step"]["by_dim"]
        ddp_first_step = 2 if rank["data_parallel"].startswith("ddp") else 0
        for dim, kinds in rank["predicted_calls"].items():
            for kind, calls in kinds.items():
                extra = ddp_first_step if (dim, kind) == ("dp", "broadcast") else 0
                assert measured[dim][kind]["calls"] == calls + extra, (dim, kind)


@pytest.mark.parametrize("case", [c for c in CASES if "fp16" not in c and "bf16" not in c])
def test_the_planner_sees_what_the_run_measured(case, results):
    """`vitscale plan` costs a layout from the config alone: its parameter bytes and bytes
    sent per rank per step are the measured ones (within 5%), for every layout that runs."""
    # Memory is planned for the busiest rank: where FSDP2 splits a dimension unevenly
    # (torch.chunk), the first data rank holds the larger shard.
    busiest = max(r["accounting"]["parameter_bytes_per_rank"] for r in results[case])
    for rank in results[case]:
        acc = rank["accounting"]
        assert rank["planned_parameter_bytes"] == pytest.approx(busiest, rel=0.05)
        measured = {d: sum(v["bytes"] for v in kinds.values())
                    for d, kinds in acc["comm_bytes_per_step"]["by_dim"].items()}
        total = sum(measured.values())
        for dim in set(measured) | set(rank["planned_bytes_by_dim"]):
            m, p = measured.get(dim, 0), rank["planned_bytes_by_dim"].get(dim, 0)
            if max(m, p) >= 0.01 * total:
                assert m == pytest.approx(p, rel=0.05), (dim, m, p)


@pytest.mark.parametrize("case", [c for c in CASES if c != "ddp_zero1_lars"])
def test_each_rank_holds_its_share_of_the_parameters(case, results):
    """1/T of each split matrix, all replicated parameters, 1/R of that under ZeRO-2/3:
    exactly costs.parameters_held, on every rank (uneven splits included)."""
    for rank in results[case]:
        acc = rank["accounting"]
        assert acc["parameters_per_rank"] == rank["predicted_parameters"]
        assert acc["parameters_total"] > acc["parameters_per_rank"]


def test_sequence_parallelism_keeps_fewer_activations(results):
    """With sequence parallelism, LayerNorms and the residual stream hold N/T tokens."""
    sp = results["1d_t4_sequence_parallel"][0]["accounting"]
    assert sp["activation_bytes_per_micro_batch"] > 0
    plain = results["1d_t4"][0]["accounting"]
    assert sp["activation_bytes_per_micro_batch"] < plain["activation_bytes_per_micro_batch"]
