"""The planner's peak memory against the allocator's on one GPU (issue: vit_base_patch16_224 in
three layouts within 10% of torch.cuda.max_memory_allocated).

    python benchmarks/gpu_planner_memory.py             # on a GPU; results/DATE-<gpu>-planner-memory.json
    python benchmarks/gpu_planner_memory.py --dry-run   # anywhere: the planned figures only

Each layout trains vitscale's engine (bench step's: AdamW, hard labels) for three steps on a
random batch; the allocator's peak is read after them and set beside costs.memory_bytes for the
same StepShape, the figure `vitscale plan` ranks by. The CUDA context is not in either.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
MODEL, BATCH = "vit_base_patch16_224", 64
LAYOUTS = {  # name -> bench_engine keys
    "fp32": {"precision": "fp32"},
    "bf16 autocast, checkpointing": {"precision": "bf16", "CHECKPOINT": True},
    "pure bf16": {"precision": "pure_bf16"},
}


def planned(engine) -> dict:
    from vitscale.parallel.costs import StepShape, memory_bytes
    plan = engine.plan
    return memory_bytes(StepShape(plan.model, plan.dims, plan.per_device_batch,
                                  plan.accumulation, plan.precision, engine.cfg.OPTIMIZER,
                                  checkpointing=engine.cfg.CHECKPOINT))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--dry-run", action="store_true", help="plan only (no GPU needed)")
    args = p.parse_args()
    from vitscale.bench.common import bench_engine, random_batch
    device = torch.device("cpu" if args.dry_run else "cuda")
    rows = []
    for name, keys in LAYOUTS.items():
        engine = bench_engine(MODEL, BATCH, device, **keys)
        plan = planned(engine)
        row = {"layout": name, "planned_peak_bytes": plan["peak"], "planned": plan}
        if not args.dry_run:
            images, labels = random_batch(MODEL, BATCH, device)
            torch.cuda.reset_peak_memory_stats()
            for _ in range(3):
                engine.train_step(images, labels)
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated()
            row |= {"measured_peak_bytes": peak, "planned_vs_measured": plan["peak"] / peak}
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "planned"}))
        del engine
        if not args.dry_run:
            torch.cuda.empty_cache()
    if args.dry_run:
        return
    gpu = torch.cuda.get_device_name().lower().replace(" ", "-")
    record = {"date": datetime.date.today().isoformat(), "device": torch.cuda.get_device_name(),
              "torch": torch.__version__, "model": MODEL, "batch": BATCH,
              "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"],
                                       capture_output=True, text=True, cwd=REPO).stdout.strip(),
              "command": "python benchmarks/gpu_planner_memory.py", "layouts": rows}
    path = REPO / "benchmarks" / "results" / f"{record['date']}-{gpu}-planner-memory.json"
    path.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
