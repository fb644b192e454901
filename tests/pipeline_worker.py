"""One rank of pipeline parity checks: pipelined layouts against one process, on real images.

Started by tests/test_pipeline_parallel.py through torchrun (gloo, CPU); one launch runs every
case of its world size. Every rank also builds the single-process reference (a tiny model) on
the whole global batch and compares, for the same model, seed and batch:

  * the initial weights of the parameters its stages hold, and the logits of a pipelined
    forward (evaluation path: stages over point-to-point sends);
  * the loss of one schedule (broadcast from the last stage) and every gradient this rank's
    stages hold, gathered to full shape;
  * every parameter after `--steps` optimizer steps (Engine.train_step on both sides), and
    the loss of each step;

and records the bytes it measured on the first step beside parallel/costs.py's prediction for
its pipeline rank, with the schedule's measured and theoretical bubble. Rank 0 writes
{case: [each rank's result]} as JSON to --out.

    torchrun --nproc-per-node 2 tests/pipeline_worker.py --batch B.pt --out r.json \\
        --cases cases.json       # {"name": ["parallel.pipeline=2", ...], ...}
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from parity_worker import (BASE, CONFIG, full, full_params, max_diff, named_grads,  # noqa: E402
                           serve_cases)

from vitscale.config import load_config  # noqa: E402
from vitscale.plan import make_plan, pipeline_micro_batches  # noqa: E402
from vitscale.train.engine import engine_from_plan  # noqa: E402

# Four blocks, so that 4 stages (or 2 ranks x 2 interleaved chunks) have one each.
PIPE_BASE = [*BASE, "DEPTH=4"]


def subset(values: dict, names) -> dict:
    return {k: values[k] for k in names}


def pipelined_backward(engine, x, y) -> float:
    """One schedule (forward and backward of every micro-batch) without the optimizer step;
    the global mean loss of the batch (summed over data-parallel ranks)."""
    pipe = engine.pipeline
    engine.model.train()
    engine._pipe_totals.zero_()
    with engine.precision.autocast():
        pipe.step(engine.precision.cast_input(x) if pipe.has_first else None,
                  y if pipe.has_last else None)
    totals = pipe.broadcast_from_last(engine._pipe_totals.clone())
    engine.parallel.finish_gradients()
    return engine.layout.sum_over_batch(totals[:1].clone()).item()


def reference_backward(engine, x, y) -> tuple[torch.Tensor, float]:
    engine.model.train()
    logits = engine.model(x)
    loss = engine.layout.loss(logits, y)
    loss.backward()
    return logits.detach(), loss.item()


def run_case(overrides: list[str], images, labels, steps: int) -> dict:
    world, rank = dist.get_world_size(), dist.get_rank()
    device = torch.device("cpu")
    overrides = PIPE_BASE + [f"TOTAL_BATCH_SIZE={len(labels)}", "BATCH_SIZE=None", *overrides]
    cfg = load_config(CONFIG, overrides)
    plan = make_plan(cfg, world_size=world)
    mesh = plan.dims.build_mesh("cpu")
    engine = engine_from_plan(cfg, plan, device, mesh)
    ref_overrides = [o for o in overrides if not o.startswith(("parallel", "zero",
                                                               "NUM_MICRO_BATCHES"))]
    ref_cfg = load_config(CONFIG, ref_overrides)
    reference = engine_from_plan(ref_cfg, make_plan(ref_cfg, world_size=1), device)

    data_rank, parts = plan.dims.loader_shard(mesh)
    share = len(labels) // parts
    rows = slice(data_rank * share, (data_rank + 1) * share)
    # Channels-last, as the device pipeline delivers batches (torch < 2.14 checked a first
    # stage's input strides against contiguous ones and failed on such a batch).
    x, y = images[rows].contiguous(memory_format=torch.channels_last), labels[rows]

    mine = full_params(engine)
    ref_params = full_params(reference)
    init = max_diff(mine, subset(ref_params, mine))
    # Logits of the pipelined forward (evaluation path), against one process's.
    engine.model.eval()
    with torch.no_grad():
        logits = full(engine.model(x))
    reference.model.eval()
    with torch.no_grad():
        ref_logits_eval = reference.model(images)
    logit_diff = (logits.float() - ref_logits_eval[rows].float()).abs().max().item()

    loss_sum = pipelined_backward(engine, x, y)
    _, ref_loss = reference_backward(reference, images, labels)
    loss_diff = abs(loss_sum / len(labels) - ref_loss)
    grads = named_grads(engine)
    grads = max_diff(grads, subset(named_grads(reference), grads))
    for e in (engine, reference):
        e.optimizer.zero_grad(set_to_none=True)

    losses, bubbles = [], []
    for _ in range(steps):
        out = engine.train_step(x, y)
        ref_out = reference.train_step(images, labels)
        total = engine.layout.sum_over_batch((out.loss * out.images).reshape(1).clone())
        losses.append(abs(total.item() / len(labels) - ref_out.loss.item()))
        bubbles.append(engine.bubble)
    mine = full_params(engine)
    params = max_diff(mine, subset(full_params(reference), mine))

    from vitscale.parallel.costs import StepShape, bubble_fraction, traffic
    micro = pipeline_micro_batches(cfg, plan.dims)
    shape = StepShape(plan.model, plan.dims, micro_batch=plan.per_device_batch // micro,
                      accumulation=plan.accumulation * micro, precision=plan.precision,
                      optimizer=cfg.OPTIMIZER, clip=bool(cfg.clip_grad_norm),
                      pipeline_rank=mesh["pp"].get_local_rank(),
                      stage_blocks=engine.parallel.pipeline.stage_blocks)
    return {"rank": rank, "layout": plan.dims.describe(), "names": sorted(mine),
            "all_names": sorted(ref_params), "init": init, "logits": logit_diff,
            "loss": loss_diff, "grads": grads, "step_losses": losses, "params": params,
            "accounting": engine.accounting, "predicted": traffic(shape).by_dim(),
            "bubble_formula": bubble_fraction(shape), "bubbles": bubbles,
            "events": engine.ledger.events}


if __name__ == "__main__":
    serve_cases(run_case, announce=True)
