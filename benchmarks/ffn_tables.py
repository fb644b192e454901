"""The tables of docs/experiments.md, printed from the recorded result files only (so that every
number on that page can be traced to benchmarks/results):

    python benchmarks/ffn_tables.py                      # both tables, markdown
    python benchmarks/ffn_tables.py --sweep runs/sweeps/ffn-quick_cpu/results.jsonl

The sweep table has one row per grid point (feed-forward sublayer), the mean and sample standard
deviation over its seeds; the speed table one row per shape of benchmarks/fff_speed.py.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from vitscale.sweep.results import read_results

RESULTS = Path(__file__).resolve().parent / "results"
SWEEP = RESULTS / "2026-12-02-cpu-ffn-sweep.jsonl"
SPEED = RESULTS / "2026-12-02-cpu-fff-speed-1thread.json"


def _mean_std(values: list[float], digits: int) -> str:
    if len(values) < 2:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.fmean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def sweep_table(path: Path) -> str:
    records = read_results(path)
    points: dict[str, list[dict]] = {}
    for r in records:  # in the order the sweep ran them: widths, pairs, depths, fan-out
        points.setdefault(r["ffn"], []).append(r)
    lines = ["| feed-forward sublayer (per block) | parameters | seeds | best test top-1 % | "
             "final test top-5 % | train images/s | run wall s |",
             "|---|---|---|---|---|---|---|"]
    for ffn, rs in points.items():
        lines.append(
            f"| {ffn} | {rs[0]['num_parameters'] / 1e6:.3f}M | "
            f"{', '.join(str(r['seed']) for r in rs)} | "
            f"{_mean_std([r['best_test_acc1'] for r in rs], 2)} | "
            f"{_mean_std([r['final_test_acc5'] for r in rs], 2)} | "
            f"{_mean_std([r['images_per_s'] for r in rs], 0)} | "
            f"{_mean_std([r['wall_seconds'] for r in rs], 0)} |")
    commits = sorted({r["commit"] for r in records})
    devices = sorted({str(r["device"]) for r in records})
    when = sorted(r["finished_at"] for r in records)
    lines.append(f"\n{len(records)} runs, commit {', '.join(commits)}, device "
                 f"{', '.join(devices)}, torch {records[0]['torch_version']}, finished "
                 f"{when[0]} to {when[-1]}.")
    return "\n".join(lines)


def speed_table(path: Path) -> str:
    data = json.loads(path.read_text())
    lines = ["| shape | neurons (per token) | MLP eval ms | FFF dense eval ms | FFF conditional "
             "eval ms | conditional vs MLP | MLP train step ms | FFF train step ms |",
             "|---|---|---|---|---|---|---|---|"]
    for r in data["results"]:
        ms = r["ms"]
        lines.append(
            f"| {r['shape']} | {r['neurons']} ({r['active_per_token']}) | {ms['mlp_eval']:.2f} | "
            f"{ms['fff_dense_eval']:.2f} | {ms['fff_conditional_eval']:.2f} | "
            f"{r['conditional_speedup_vs_mlp']:.2f}x | {ms['mlp_train_step']:.2f} | "
            f"{ms['fff_train_step']:.2f} |")
    meta = data["meta"]
    lines.append(f"\n{meta['threads']} thread(s), median of {meta['rounds']} rounds, torch "
                 f"{meta['torch']}, {meta['machine']}, {meta['date']}"
                 + (f", commit {meta['commit']}" if meta.get("commit") else "") + ".")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sweep", type=Path, default=SWEEP)
    p.add_argument("--speed", type=Path, default=SPEED)
    args = p.parse_args()
    print(sweep_table(args.sweep) + "\n\n" + speed_table(args.speed))


if __name__ == "__main__":
    main()
