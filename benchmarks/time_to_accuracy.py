"""Markdown tables from a results folder of benchmarks/gpu_cifar10.sh (issue 15):

    python benchmarks/time_to_accuracy.py benchmarks/results/2026-12-03-h200-cifar10

1. time to accuracy, one row per training run (`<name>-metrics.jsonl` with its line in
   timings.jsonl): config, device, epochs reached of planned, wall time of the whole command,
   best and final test top-1, the run clock at the first evaluation >= --target, MFU, commit,
   metrics file. The rows go into benchmarks/README.md's "Time to accuracy (issue 15)" table;
2. MFU of `vitscale bench step` (bench_step_vit.jsonl): eager, compiled and the plain loop;
3. the precision table of `vitscale bench amp` (bench_amp_vit.jsonl): peak memory and images/s.

The run clock (`wall_s` of the test records) starts when training starts; the whole command
adds start-up, the first-ever decode of the data into the cache, and the report at the end.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import statistics
import sys
from pathlib import Path

log = logging.getLogger("time_to_accuracy")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def read_records(path: Path) -> list[dict]:
    """The records of a JSON-lines file, none when it is missing."""
    return read_jsonl(path) if path.is_file() else []


def read_env(folder: Path) -> dict[str, str]:
    env = {}
    path = folder / "env.txt"
    for line in path.read_text().splitlines() if path.is_file() else []:
        key, _, value = line.partition(" ")
        env.setdefault(key, value)
    return env


def planned_epochs(command: str) -> tuple[str, int | None]:
    """The config file of a `vitscale train` command and its NUM_EPOCHS with the --set values
    applied (loaded as vitscale would: the file may compute it)."""
    args = shlex.split(command)
    config = next((a for a in args if a.endswith(".py") and "/" in a), "?")
    sets = [args[i + 1] for i, a in enumerate(args[:-1]) if a == "--set"]
    try:
        from vitscale import load_config
        return config, load_config(config, sets).NUM_EPOCHS
    except Exception as error:  # a config renamed since the run: the table still prints
        log.warning("%s: cannot load (%s): planned epochs unknown", config, error)
        return config, None


def run_rows(folder: Path, target: float) -> list[dict]:
    env = read_env(folder)
    timings_path = folder / "timings.jsonl"
    timings = {t["name"]: t for t in read_jsonl(timings_path)} if timings_path.is_file() else {}
    rows = []
    for metrics_path in sorted(folder.glob("*-metrics.jsonl")):
        name = metrics_path.name[: -len("-metrics.jsonl")]
        records = read_jsonl(metrics_path)
        test = [r for r in records if r["split"] == "test"]
        train = [r for r in records if r["split"] == "train" and r.get("mfu") is not None]
        timing = timings.get(name, {})
        config, planned = planned_epochs(timing.get("command", ""))
        summary_path = folder / f"{name}-summary.json"
        summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
        reached = next((r for r in test if r["acc1"] >= target), None)
        mfu = summary.get("mfu")
        if mfu is None and train:
            mfu = statistics.median(r["mfu"] for r in train)
        rows.append({
            "name": name, "config": config, "device": env.get("device", "?"),
            "epochs": test[-1]["epoch"] if test else 0, "planned_epochs": planned,
            "command_s": timing.get("wall_s"), "timed_out": timing.get("timed_out", False),
            "best_acc1": max((r["acc1"] for r in test), default=None),
            "final_acc1": test[-1]["acc1"] if test else None,
            "finished": bool(summary),
            "time_to_target_s": reached["wall_s"] if reached else None,
            "target": target, "mfu": mfu, "commit": env.get("commit", "?"),
            "metrics_file": str(metrics_path),
        })
    return rows


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}%"


def run_table(rows: list[dict]) -> str:
    lines = ["| config | device | epochs | whole command | best test acc1 | final test acc1 "
             "| time to target (run clock) | MFU | commit | metrics file |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        epochs = f"{r['epochs']} of {r['planned_epochs'] or '?'}"
        if not r["finished"]:
            epochs += " (stopped at the time limit)" if r["timed_out"] else " (did not finish)"
        wall = "-" if r["command_s"] is None else f"{r['command_s']:.0f} s"
        reach = (f"{r['time_to_target_s']:.0f} s" if r["time_to_target_s"] is not None
                 else f"not reached")
        mfu = "-" if r["mfu"] is None else f"{100 * r['mfu']:.1f}%"
        lines.append(f"| {r['config']} ({r['name']}) | {r['device']} | {epochs} | {wall} | "
                     f"{_pct(r['best_acc1'])} | {_pct(r['final_acc1'])} | {reach} "
                     f"(>= {r['target']}%) | {mfu} | {r['commit']} | {r['metrics_file']} |")
    return "\n".join(lines)


def step_table(folder: Path) -> str:
    records = read_records(folder / "bench_step_vit.jsonl")
    if not records:
        return "(no bench_step_vit.jsonl)"
    lines = ["| model | batch | precision | loop | images/s | MFU |", "|---|---|---|---|---|---|"]
    for r in records:
        for loop, key in (("vitscale", "vitscale"), ("vitscale, compiled blocks", "vitscale_compiled"),
                          ("plain PyTorch", "plain")):
            rate = r.get(f"{key}_images_per_s")
            if rate is None:
                continue
            mfu = r.get(f"{key}_mfu")
            lines.append(f"| {r['model']} | {r['batch']} | {r['precision']} | {loop} | "
                         f"{rate:,.0f} | {'-' if mfu is None else f'{100 * mfu:.1f}%'} |")
        lines.append(f"\nMFU against {r.get('mfu_peak')}, "
                     f"{(r.get('flops_per_image') or 0) / 1e9:.4g} GFLOP per image.")
    return "\n".join(lines)


def amp_table(folder: Path) -> str:
    records = read_records(folder / "bench_amp_vit.jsonl")
    if not records:
        return "(no bench_amp_vit.jsonl)"
    lines = ["| mode | model | batch | peak memory GB | images/s |", "|---|---|---|---|---|"]
    for r in records:
        if "error" in r:
            lines.append(f"| {r['label']} | | | failed: {r['error'][:80]} | |")
        else:
            lines.append(f"| {r['label']} | {r['model']} | {r['batch']} | "
                         f"{r['memory_gb']:.2f} | {r['images_per_s']:,.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folders", nargs="+", type=Path, help="results folders of gpu_cifar10.sh")
    p.add_argument("--target", type=float, default=90.5, help="test top-1 to time (percent)")
    args = p.parse_args(argv)
    rows, parts = [], []
    for folder in args.folders:
        if not folder.is_dir():
            log.error("%s is not a folder", folder)
            return 2
        rows += run_rows(folder, args.target)
        parts += [f"### {folder}: bench step\n\n{step_table(folder)}",
                  f"### {folder}: precision modes\n\n{amp_table(folder)}"]
    sys.stdout.write("### Time to accuracy\n\n" + run_table(rows) + "\n\n"
                     + "\n\n".join(parts) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
