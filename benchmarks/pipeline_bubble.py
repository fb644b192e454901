"""Measured pipeline bubble beside the schedules' formulas (parallel/costs.py bubble_fraction).

    python benchmarks/pipeline_bubble.py [--nproc 2] [--steps 6]
        # writes benchmarks/results/<date>-cpu-pipeline-bubble.json and prints a table

For each schedule and micro-batch count, one torchrun of `--nproc` processes (gloo on CPU, one
thread each) trains a balanced ViT (8 equal blocks of width 192; the embedding and head are
small beside them) on random images for `--steps` steps after 2 warm-up steps, and reads the
engine's pipeline log: each rank's busy seconds (inside its stages' forward and backward) and
idle seconds per step, and the idle share over all ranks. On a machine with fewer free cores
than processes the ranks also wait for a core: the idle share then exceeds the formula.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODEL = ["DATASET='cifar10'", "IMG_SIZE=32", "PATCH_SIZE=4", "HIDDEN_SIZE=192", "DEPTH=8",
         "NUM_HEADS=3", "MLP_RATIO=4", "TOTAL_BATCH_SIZE=64", "BATCH_SIZE=None",
         "WARMUP_EPOCHS=0", "LR_SCHEDULE='constant'", "precision='fp32'"]
RUNS = [("gpipe", 1, 4), ("1f1b", 1, 4), ("1f1b", 1, 8), ("interleaved_1f1b", 2, 4),
        ("zbv_zero_bubble", 2, 4)]


def worker(args) -> None:
    import torch
    import torch.distributed as dist
    sys.path.insert(0, str(REPO))
    from vitscale.config import load_config
    from vitscale.plan import make_plan
    from vitscale.train.engine import engine_from_plan
    dist.init_process_group("gloo")
    cfg = load_config(REPO / "configs/cifar10/quick_cpu.py", [
        *MODEL, f"parallel.pipeline={dist.get_world_size()}",
        f"parallel.pipeline_schedule='{args.schedule}'", f"parallel.pipeline_chunks={args.chunks}",
        f"NUM_MICRO_BATCHES={args.micro}"])
    plan = make_plan(cfg, world_size=dist.get_world_size())
    engine = engine_from_plan(cfg, plan, torch.device("cpu"), plan.dims.build_mesh("cpu"))
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 3, 32, 32, generator=g), torch.randint(0, 10, (64,), generator=g)
    for _ in range(2):
        engine.train_step(x, y)
    engine.pipeline_log()                       # drop the warm-up steps
    for _ in range(args.steps):
        engine.train_step(x, y)
    record = engine.pipeline_log()
    if dist.get_rank() == 0:
        print("RESULT " + json.dumps(record), flush=True)
    dist.destroy_process_group()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--nproc", type=int, default=2)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--worker", action="store_true")
    p.add_argument("--schedule", default="1f1b")
    p.add_argument("--chunks", type=int, default=1)
    p.add_argument("--micro", type=int, default=4)
    args = p.parse_args()
    if args.worker:
        return worker(args)
    rows = []
    for schedule, chunks, micro in RUNS:
        out = subprocess.run(
            [sys.executable, "-m", "torch.distributed.run", "--standalone",
             f"--nproc-per-node={args.nproc}", __file__, "--worker", "--schedule", schedule,
             "--chunks", str(chunks), "--micro", str(micro), "--steps", str(args.steps)],
            capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
            cwd=REPO)
        line = next((ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")), None)
        if line is None:
            print(out.stdout[-2000:], out.stderr[-3000:])
            continue
        record = json.loads(line[7:])
        rows.append({"schedule": schedule, "chunks": chunks, "micro_batches": micro, **record})
        print(f"| {schedule} | v={chunks} | M={micro} | measured {record['pp_bubble']:.3f} | "
              f"formula {record['pp_bubble_theory']:.3f} | busy {record['pp_busy_s']} | "
              f"idle {record['pp_idle_s']} |", flush=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=REPO).stdout.strip()
    path = REPO / "benchmarks" / "results" / \
        f"{datetime.date.today().isoformat()}-cpu-pipeline-bubble.json"
    path.write_text(json.dumps({"commit": commit, "processes": args.nproc,
                                "cpu": platform.processor() or platform.machine(),
                                "cores": os.cpu_count(), "load_average": os.getloadavg(),
                                "model": MODEL, "runs": rows}, indent=1) + "\n")
    print(path)


if __name__ == "__main__":
    main()
