"""The `cpu` row of the planner's device table (vitscale/planner/hardware.py), measured.

    python benchmarks/cpu_profile.py            # ~2 minutes; writes results/DATE-cpu-profile.json

Three numbers describe a CPU node to the planner:
- peak FLOP/s of the node: fp32 matrix products (1024 x 1024) with every core busy;
- efficiency: the share of that peak a ViT training step reaches (forward, backward, AdamW;
  FLOPs counted by parallel/costs.py's forward_flops, the planner's own formula), measured
  with one process per core as `vitscale run --nproc-per-node` starts them;
- gloo over loopback: all-reduce time = latency + bytes sent per rank / bandwidth, fitted over
  message sizes from 4 B to 16 MB on 2 and 4 processes (bytes sent per rank by a ring
  all-reduce of n bytes on W ranks: 2 (W - 1) / W n, as parallel/costs.py counts them).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

REPO = Path(__file__).resolve().parents[1]
SIZES = [4, 4096, 65536, 1 << 20, 4 << 20, 16 << 20]


def _best_time(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def matmul_flops(threads: int) -> float:
    torch.set_num_threads(threads)
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    seconds = _best_time(lambda: [torch.mm(a, b) for _ in range(10)], 5) / 10
    return 2 * 1024 ** 3 / seconds


def vit_step_flops(model_name: str, batch: int, threads: int) -> tuple[float, float]:
    """(achieved FLOP/s, seconds per step) of a training step, by costs.forward_flops."""
    from vitscale.models import build_model, get_variant
    from vitscale.parallel.costs import forward_flops
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    size = get_variant(model_name)
    model = build_model(size)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    images = torch.randn(batch, 3, size.img_size, size.img_size)
    labels = torch.randint(0, size.num_classes, (batch,))

    def step():
        loss = torch.nn.functional.cross_entropy(model(images), labels)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    seconds = _best_time(step, 5)
    flops = 3 * batch * sum(forward_flops(size).values())
    return flops / seconds, seconds


def _allreduce_worker(rank: int, world: int, port: int, out) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    times = {}
    for n in SIZES:
        x = torch.ones(n // 4)
        dist.barrier()
        times[n] = _best_time(lambda: dist.all_reduce(x), 20)
    if rank == 0:
        out.put(times)
    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gloo_allreduce(world: int) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    mp.start_processes(_allreduce_worker, args=(world, _free_port(), queue), nprocs=world,
                       start_method="spawn")
    times = queue.get()
    sent = {n: 2 * (world - 1) / world * n for n in SIZES}
    # Least squares for time = latency + sent / bandwidth.
    xs, ys = [sent[n] for n in SIZES], [times[n] for n in SIZES]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return {"world": world, "seconds_by_bytes": times, "latency_s": times[SIZES[0]],
            "bandwidth_bytes_per_s": 1 / slope}


def main() -> None:
    cores = os.cpu_count() or 1
    load_before = os.getloadavg()
    record = {
        "date": datetime.date.today().isoformat(),
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                 text=True, cwd=REPO).stdout.strip(),
        "device": f"CPU: {platform.processor() or platform.machine()}, {cores} cores",
        "torch": torch.__version__, "command": "python benchmarks/cpu_profile.py",
        "load_average_before": load_before,
        "matmul_flops_node": matmul_flops(cores),
        "matmul_flops_one_core": matmul_flops(1),
    }
    for model, batch in (("vit_lite_7_4", 32),):
        achieved, seconds = vit_step_flops(model, batch, 1)
        record[f"step_{model}_one_core"] = {"batch": batch, "seconds": seconds,
                                            "flops_per_s": achieved,
                                            "efficiency": achieved / record["matmul_flops_one_core"]}
    record["gloo_allreduce"] = [gloo_allreduce(w) for w in (2, 4)]
    record["load_average_after"] = os.getloadavg()
    path = REPO / "benchmarks" / "results" / f"{record['date']}-cpu-profile.json"
    path.write_text(json.dumps(record, indent=1) + "\n")
    json.dump(record, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
