"""One rank of a parity check: a parallel layout against one process, on real images.

Started by tests/test_tensor_parallel.py through torchrun (gloo, CPU). Every rank also builds
the single-process reference itself (a tiny model: cheap), on the whole global batch, and
compares, for the same model, seed and batch:

  * logits (gathered over classes and data-parallel ranks) and the loss,
  * every parameter's gradient, gathered to full shape,
  * every parameter after `--steps` optimizer steps (Engine.train_step on both sides),

then writes the largest differences and its measured accounting as JSON (rank 0: --out).

    torchrun --nproc-per-node 4 tests/parity_worker.py --batch B.pt --out r.json \\
        --set parallel.tensor.mode="'1d'" --set parallel.tensor.size=2 ...
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
# A model small enough for a few CPU seconds, with 4 heads so that 4 tensor ranks hold one.
BASE = ["DATASET='cifar10'", "IMG_SIZE=32", "PATCH_SIZE=8", "HIDDEN_SIZE=32", "DEPTH=2",
        "NUM_HEADS=4", "MLP_RATIO=2", "QKV_BIAS=False", "NUM_EPOCHS=1", "WARMUP_EPOCHS=0",
        "LEARNING_RATE=1e-3", "DROP_RATE=0.0", "DROP_PATH_RATE=0.0", "LABEL_SMOOTHING=0.0",
        "LR_SCHEDULE='constant'"]


def full(t: torch.Tensor) -> torch.Tensor:
    return t.full_tensor() if isinstance(t, DTensor) else t


def named_grads(engine) -> dict[str, torch.Tensor]:
    module = getattr(engine.model, "module", engine.model)
    return {n: full(p.grad).detach().clone() for n, p in module.named_parameters()
            if p.grad is not None}


def full_params(engine) -> dict[str, torch.Tensor]:
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
    module = engine.precision.state_module(engine.model)
    state = get_model_state_dict(module, options=StateDictOptions(full_state_dict=True))
    return {k: full(v).detach().float().clone() for k, v in state.items()}


def forward_backward(engine, x, y):
    """Logits and loss of one forward, and its backward; gradients left in .grad."""
    engine.model.train()
    with engine.precision.autocast():
        logits = engine.model(engine.precision.cast_input(x))
    with engine.layout.loss_context():
        loss = engine.layout.loss(logits, y, engine.cfg.LABEL_SMOOTHING)
        engine.precision.backward(loss)
    engine.parallel.finish_gradients()
    return full(logits.detach()), full(loss.detach())


def max_diff(a: dict, b: dict, skip=()) -> tuple[float, str]:
    assert a.keys() == b.keys(), (sorted(a.keys() ^ b.keys()))
    worst = max(((a[k].float() - b[k].float()).abs().max().item(), k) for k in a
                if not any(s in k for s in skip))
    return worst


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--batch", required=True, help="a .pt file with (images, labels)")
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--set", dest="overrides", action="append", default=[])
    args = p.parse_args()
    dist.init_process_group("gloo")
    world, rank = dist.get_world_size(), dist.get_rank()
    images, labels = torch.load(args.batch, weights_only=True)
    device = torch.device("cpu")
    overrides = BASE + [f"TOTAL_BATCH_SIZE={len(labels)}", "BATCH_SIZE=None", *args.overrides]
    cfg = load_config(CONFIG, overrides)
    plan = make_plan(cfg, world_size=world)
    mesh = plan.dims.build_mesh("cpu")
    engine = engine_from_plan(cfg, plan, device, mesh)
    # The same recipe on one process: every override but the layout's.
    ref_cfg = load_config(CONFIG, [o for o in overrides if not o.startswith(("parallel", "zero"))])
    reference = engine_from_plan(ref_cfg, make_plan(ref_cfg, world_size=1), device)

    # This rank's share of the global batch: data-parallel rank r reads slice r.
    d = plan.dims.data_mesh(mesh).get_local_rank()
    share = len(labels) // plan.dims.data
    x, y = images[d * share:(d + 1) * share], labels[d * share:(d + 1) * share]

    # 1. The initial weights are one process's.
    init = max_diff(full_params(engine), full_params(reference))
    # 2. Logits, loss and gradients of one forward/backward.
    logits, loss = forward_backward(engine, x, y)
    ref_logits, ref_loss = forward_backward(reference, images, labels)
    logit_diff = (logits - ref_logits[d * share:(d + 1) * share]).abs().max().item()
    loss_sum = loss * len(y)
    if plan.dims.data > 1:
        dist.all_reduce(loss_sum, group=plan.dims.data_mesh(mesh).get_group())
    loss_diff = abs(loss_sum.item() / len(labels) - ref_loss.item())
    grads = max_diff(named_grads(engine), named_grads(reference))
    for e in (engine, reference):
        e.optimizer.zero_grad(set_to_none=True)
    # 3. Parameters after optimizer steps (the first one measured: accounting).
    losses = []
    for _ in range(args.steps):
        out, ref_out = engine.train_step(x, y), reference.train_step(images, labels)
        total = out.loss * out.images
        if plan.dims.data > 1:
            dist.all_reduce(total, group=plan.dims.data_mesh(mesh).get_group())
        losses.append(abs(total.item() / len(labels) - ref_out.loss.item()))
    params = max_diff(full_params(engine), full_params(reference))
    result = {"rank": rank, "layout": plan.dims.describe(), "init": init, "logits": logit_diff,
              "loss": loss_diff, "grads": grads, "step_losses": losses, "params": params,
              "accounting": engine.accounting, "data_parallel": plan.dims.data_parallel}
    every = [None] * world
    dist.all_gather_object(every, result)
    if rank == 0:
        Path(args.out).write_text(json.dumps(every, indent=1))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
