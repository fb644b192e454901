"""Images/s of the device pipeline on CIFAR-10 with and without AutoAugment / RandAugment.

    .venv/bin/python benchmarks/policy_speed.py --data ../shared/datasets/cifar10 \
        --out benchmarks/results/<date>-cpu-policy-speed.json

The settings (crop + flip; + AutoAugment('cifar10'); + RandAugment(2, 9); + Random Erasing
with p = 0.25 and noise fill, DeiT's) read the same
`--batches` batches of the training split in turns, `--rounds` times, and the median per setting
is reported, so that a change in the machine's load during the run hits every setting alike.
Only the loader runs (no model): this is the input pipeline's ceiling. The full-epoch
comparison with torchvision's DataLoader is `vitscale bench data --set AUTOAUGMENT='cifar10'`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from vitscale import load_config
from vitscale.data import build_loaders, find_splits

SETTINGS = {"crop+flip": [], "crop+flip+autoaugment": ["AUTOAUGMENT='cifar10'"],
            "crop+flip+randaugment": ["RANDAUGMENT=(2, 9)"],
            "crop+flip+random-erasing": ["RANDOM_ERASING=0.25", "RANDOM_ERASING_VALUE='random'"]}


def loader(data: Path, extra: list[str], batch: int, batches: int, device: torch.device):
    cfg = load_config("configs/cifar10/quick_cpu.py",
                      ["DATASET='cifar10'", "data.pipeline='device'",
                       f"LIMIT_TRAIN_BATCHES={batches}", *extra])
    return build_loaders(cfg, find_splits(cfg, data), img_size=32, train_batch=batch,
                         eval_batch=batch, device=device).train


def rate(train, epoch: int, device: torch.device) -> tuple[float, float]:
    """(images/s, images per CPU-second of this process) of one pass."""
    train.set_epoch(epoch)
    start, cpu, n = time.perf_counter(), time.process_time(), 0
    for x, _ in train:
        n += len(x)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return n / (time.perf_counter() - start), n / (time.process_time() - cpu)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--batches", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--device", default="cpu")
    # On a shared CPU, 2 threads per small kernel wait for each other when one is descheduled;
    # --threads 1 and the CPU-seconds column then say more about the work than the wall clock.
    p.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--out")
    args = p.parse_args()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    loaders = {k: loader(Path(args.data), v, args.batch, args.batches, device)
               for k, v in SETTINGS.items()}
    for train in loaders.values():
        rate(train, 0, device)  # warm-up pass
    rates, cpu_rates = {k: [] for k in loaders}, {k: [] for k in loaders}
    for r in range(args.rounds):
        for k, train in loaders.items():
            wall, cpu = rate(train, r + 1, device)
            rates[k].append(wall)
            cpu_rates[k].append(cpu)
    result = {
        "command": "python benchmarks/policy_speed.py " + " ".join(
            f"--{k} {v}" for k, v in vars(args).items() if v is not None),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                 text=True).stdout.strip(),
        "device": str(device), "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(), "load_average": os.getloadavg(),
        "torch": torch.__version__, "images_per_round": args.batch * args.batches,
        "images_per_s": {k: statistics.median(v) for k, v in rates.items()},
        "images_per_cpu_s": {k: statistics.median(v) for k, v in cpu_rates.items()},
        "rounds": rates}
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
