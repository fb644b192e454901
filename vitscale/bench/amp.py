"""`vitscale bench amp`: seed 002's table (memory, iterations/s, images/s) for every precision
mode available on the device.

Each mode runs in a fresh process, so that one mode's caches and peak memory never leak into
the next. Memory is the peak during training (weights, optimizer state, activations): on a
GPU torch.cuda.max_memory_allocated; on a CPU the growth of the process's peak resident set
over what it held before the model was built.

    vitscale bench amp --model vit_base_patch16_224 --batch 128
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys

import torch

from ..precision import check_available
from ..train.engine import pick_device
from .common import bench_engine, random_batch, timed

MODES = ("fp32", "fp16", "naive_fp16", "apex", "bf16", "pure_bf16")
LABELS = {"fp32": "fp32", "fp16": "AMP_TYPE.TORCH", "naive_fp16": "AMP_TYPE.NAIVE",
          "apex": "AMP_TYPE.APEX O1", "bf16": "bf16 autocast", "pure_bf16": "pure bf16"}


def available_modes() -> list[str]:
    modes = []
    for mode in MODES:
        try:
            check_available(mode)
            modes.append(mode)
        except Exception:
            pass
    return modes


def _rss_peak_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def _current_rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def measure(model: str, batch: int, precision: str, steps: int, warmup: int,
            device: str | None) -> dict:
    """One mode, in this process."""
    dev = pick_device(device)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev)
    else:
        base = _current_rss_bytes()
    images, labels = random_batch(model, batch, dev)
    engine = bench_engine(model, batch, dev, precision=precision)
    timed(lambda: engine.train_step(images, labels), warmup, dev)
    seconds = timed(lambda: engine.train_step(images, labels), steps, dev)
    peak = (torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else _rss_peak_bytes())
    return {"mode": precision, "label": LABELS[precision], "model": model, "batch": batch,
            "steps": steps, "device": str(dev),
            "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
            "torch_version": torch.__version__,
            "memory_gb": (peak - base) / 1e9, "iterations_per_s": steps / seconds,
            "images_per_s": batch * steps / seconds,
            "skipped_steps": engine.precision.skipped_steps}


def bench_amp(model: str, batch: int, steps: int = 10, warmup: int = 3,
              device: str | None = None, modes: list[str] | None = None) -> list[dict]:
    results = []
    for mode in modes or available_modes():
        cmd = [sys.executable, "-m", "vitscale.bench.amp", "--model", model, "--batch",
               str(batch), "--precision", mode, "--steps", str(steps), "--warmup", str(warmup)]
        if device:
            cmd += ["--device", device]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode == 0:
            results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        else:
            last = (proc.stderr.strip().splitlines() or ["failed"])[-1]
            results.append({"mode": mode, "label": LABELS[mode], "error": last[:300]})
    return results


def main() -> None:  # the per-mode worker process
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--precision", required=True, choices=MODES)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--device")
    a = p.parse_args()
    print(json.dumps(measure(a.model, a.batch, a.precision, a.steps, a.warmup, a.device)))


if __name__ == "__main__":
    main()
