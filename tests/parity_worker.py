"""One rank of parity checks: parallel layouts against one process, on real images.

Started by tests/test_tensor_parallel.py through torchrun (gloo, CPU); one launch runs several
cases (layouts) one after another, to pay the start-up once. Every rank also builds the
single-process reference itself (a tiny model: cheap), on the whole global batch, and
compares, for the same model, seed and batch:

  * the initial weights, logits (gathered over classes and data-parallel ranks) and the loss,
  * every parameter's gradient, gathered to full shape,
  * every parameter after `--steps` optimizer steps (Engine.train_step on both sides),

and records the communication it measured beside parallel/costs.py's prediction. Rank 0
writes {case: [each rank's result]} as JSON to --out.

    torchrun --nproc-per-node 4 tests/parity_worker.py --batch B.pt --out r.json \\
        --cases cases.json       # {"name": ["parallel.tensor.mode='1d'", ...], ...}
    torchrun --nproc-per-node 2 tests/parity_worker.py --batch B.pt --out r.json \\
        --set "parallel.tensor.mode='1d'" --set parallel.tensor.size=2     # one case
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vitscale.config import load_config  # noqa: E402
from vitscale.optim.norms import DTensor  # noqa: E402
from vitscale.plan import make_plan  # noqa: E402
from vitscale.train.engine import engine_from_plan  # noqa: E402

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "cifar10" / "quick_cpu.py"
# A model small enough for a few CPU seconds, with 4 heads so that 4 tensor ranks hold one. No
# q/k/v bias (softmax ignores a bias added to every key: its true gradient is 0, and Adam turns
# rounding noise there into unit steps) and Adam's eps at 1e-6 rather than 1e-8 (coordinates
# whose gradient is at rounding level, ~1e-8, would otherwise step by +-lr on noise): both make
# parameters after a few steps a comparison of the layouts, not of summation orders.
BASE = ["DATASET='cifar10'", "EPS=1e-6", "IMG_SIZE=32", "PATCH_SIZE=8", "HIDDEN_SIZE=32", "DEPTH=2",
        "NUM_HEADS=4", "MLP_RATIO=2", "QKV_BIAS=False", "NUM_EPOCHS=1", "WARMUP_EPOCHS=0",
        "LEARNING_RATE=1e-3", "DROP_RATE=0.0", "DROP_PATH_RATE=0.0", "LABEL_SMOOTHING=0.0",
        "LR_SCHEDULE='constant'"]


def full(t: torch.Tensor) -> torch.Tensor:
    return t.full_tensor() if isinstance(t, DTensor) else t


def named_grads(engine) -> dict[str, torch.Tensor]:
    """Every parameter's gradient as the whole tensor (grid blocks through their layouts)."""
    module = getattr(engine.model, "module", engine.model)
    grads = {n: p.grad.detach() for n, p in module.named_parameters() if p.grad is not None}
    return {n: full(g).clone() for n, g in engine.parallel.to_global(grads).items()}


def full_params(engine) -> dict[str, torch.Tensor]:
    from torch.distributed.checkpoint.state_dict import get_model_state_dict
    module = engine.precision.state_module(engine.model)
    state = engine.parallel.to_global(get_model_state_dict(module))
    return {k: full(v).detach().float().clone() for k, v in state.items()}


def forward_backward(engine, x, y):
    """Logits and loss of one forward, and its backward; gradients left in .grad."""
    engine.model.train()
    with engine.precision.autocast():
        logits = engine.model(engine.precision.cast_input(x))
    with engine.layout.loss_context():
        loss = engine.layout.loss(logits, y, engine.cfg.LABEL_SMOOTHING)
        engine.precision.backward(loss * engine.layout.grad_scale)
    engine.parallel.finish_gradients()
    return full(logits.detach()), full(loss.detach())


def max_diff(a: dict, b: dict, skip=()) -> tuple[float, str]:
    assert a.keys() == b.keys(), (sorted(a.keys() ^ b.keys()))
    worst = max(((a[k].float() - b[k].float()).abs().max().item(), k) for k in a
                if not any(s in k for s in skip))
    return worst


def run_case(overrides: list[str], images, labels, steps: int) -> dict:
    world, rank = dist.get_world_size(), dist.get_rank()
    device = torch.device("cpu")
    overrides = BASE + [f"TOTAL_BATCH_SIZE={len(labels)}", "BATCH_SIZE=None", *overrides]
    cfg = load_config(CONFIG, overrides)
    plan = make_plan(cfg, world_size=world)
    mesh = plan.dims.build_mesh("cpu")
    engine = engine_from_plan(cfg, plan, device, mesh)
    # The same recipe on one process: every override but the layout's.
    ref_cfg = load_config(CONFIG, [o for o in overrides if not o.startswith(("parallel", "zero"))])
    reference = engine_from_plan(ref_cfg, make_plan(ref_cfg, world_size=1), device)

    # This rank's share of the global batch, as the loaders give it: data-parallel rank r reads
    # slice r, and a grid mode's rank its part of that slice.
    rank_of, parts = plan.dims.loader_shard(mesh)
    share = len(labels) // parts
    rows = slice(rank_of * share, (rank_of + 1) * share)
    x, y = images[rows], labels[rows]

    def global_mean(loss: torch.Tensor, n: int) -> float:
        total = engine.layout.sum_over_batch(loss.detach().reshape(1) * n)
        return total.item() / len(labels)

    # 1. The initial weights are one process's.
    init = max_diff(full_params(engine), full_params(reference))
    # 2. Logits, loss and gradients of one forward/backward.
    logits, loss = forward_backward(engine, x, y)
    ref_logits, ref_loss = forward_backward(reference, images, labels)
    logit_diff = (logits.float() - ref_logits[rows].float()).abs().max().item()
    loss_diff = abs(global_mean(loss, len(y)) - ref_loss.item())
    grads = max_diff(named_grads(engine), named_grads(reference))

    for e in (engine, reference):
        e.optimizer.zero_grad(set_to_none=True)
    # 3. Parameters after optimizer steps (the first one measured: accounting).
    losses = []
    for _ in range(steps):
        out, ref_out = engine.train_step(x, y), reference.train_step(images, labels)
        losses.append(abs(global_mean(out.loss, out.images) - ref_out.loss.item()))
    params = max_diff(full_params(engine), full_params(reference))
    from vitscale.parallel.costs import StepShape, parameters_held, traffic
    predicted = traffic(StepShape(
        plan.model, plan.dims, micro_batch=plan.per_device_batch,
        accumulation=plan.accumulation, precision=plan.precision, optimizer=cfg.OPTIMIZER,
        clip=bool(cfg.clip_grad_norm), soft_targets=cfg.LABEL_SMOOTHING > 0,
        checkpointing=cfg.CHECKPOINT))
    calls = {d: {k: round(v) for k, v in kinds.items()} for d, kinds in predicted.calls.items()}
    predicted = predicted.by_dim()
    # The planner's view of the same layout (vitscale plan), from the config alone.
    from vitscale.planner import config_layout, device, estimate
    planned = estimate(cfg, config_layout(cfg), world, device("cpu"), gpus_per_node=world)
    tensor_rank = plan.dims.tensor_mesh(mesh).get_local_rank() if plan.dims.tensor_mode in (
        None, "1d") else 0
    data_rank = plan.dims.data_mesh(mesh).get_local_rank()
    return {"rank": rank, "layout": plan.dims.describe(), "init": init, "logits": logit_diff,
            "loss": loss_diff, "grads": grads, "step_losses": losses, "params": params,
            "accounting": engine.accounting, "data_parallel": plan.dims.data_parallel,
            "predicted": predicted, "predicted_calls": calls, "events": engine.ledger.events,
            "planned_bytes_by_dim": planned.comm_by_dim,
            "planned_parameter_bytes": planned.memory["parameters"],
            "predicted_parameters": parameters_held(plan.model, plan.dims, tensor_rank,
                                                    data_rank)}


def serve_cases(run_case, announce: bool = False) -> None:
    """The worker's command line: run each case of --cases (or the one case of --set) with
    `run_case(overrides, images, labels, steps)`, gather every rank's result, and write them
    from rank 0 to --out. Shared with pipeline_worker.py."""
    p = argparse.ArgumentParser()
    p.add_argument("--batch", required=True, help="a .pt file with (images, labels)")
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--cases", help="JSON file: {case name: [KEY=VALUE overrides]}")
    p.add_argument("--set", dest="overrides", action="append", default=[])
    args = p.parse_args()
    dist.init_process_group("gloo")
    images, labels = torch.load(args.batch, weights_only=True)
    cases = json.loads(Path(args.cases).read_text()) if args.cases else \
        {"case": args.overrides}
    results = {}
    for name, overrides in cases.items():
        mine = run_case(overrides, images, labels, args.steps)
        every = [None] * dist.get_world_size()
        dist.all_gather_object(every, mine)
        results[name] = every
        if announce and dist.get_rank() == 0:
            print(name, "done", flush=True)
    if dist.get_rank() == 0:
        Path(args.out).write_text(json.dumps(results, indent=1))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    serve_cases(run_case)
