"""Measured bytes per step (and CPU images/s) of tensor-parallel layouts (1D, 2D, 2.5D, 3D)
beside pure data parallelism, next to parallel/costs.py's formulas: the table in
docs/parallelism.md.

    python benchmarks/parallel_layouts.py            # writes benchmarks/results/<date>-cpu-parallel-layouts.json

Runs `vitscale bench step --json` for vit_lite_7_4 on 2, 4 and 8 and vit_small_patch16_224 on 4
processes (gloo on CPU) and prints a markdown table.
"""

from __future__ import annotations

import datetime
import json
import platform
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUNS = [  # (model, global batch, processes, layouts)
    ("vit_lite_7_4", 32, 4, ["tp=2", "tp=4", "tp=4,sp", "tp=4,head=class", "tp=2,zero=2",
                             "tp=2,sp,zero=3", "zero=3", "tp=4,mode=2d"]),
    ("vit_lite_7_4", 32, 2, ["tp=2", "tp=2,sp"]),
    ("vit_lite_7_4", 32, 8, ["tp=4", "tp=4,mode=2d", "tp=8,mode=2.5d,depth=2",
                             "tp=8,mode=3d"]),       # 4 heads: 1D splits them 2 or 4 ways
    # ViT-S/16 has 6 heads: 1D splits them 2, 3 or 6 ways, not 4 or 8; the grid modes split
    # them q = 2 ways. (ViT-S/16 on 8 processes is a GPU node's benchmark: on 2 cores one
    # 224 px step of 8 processes takes minutes.)
    ("vit_small_patch16_224", 8, 4, ["tp=2", "tp=2,sp", "tp=2,zero=2", "tp=4,mode=2d"]),
]


def main() -> None:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=REPO).stdout.strip()
    path = REPO / "benchmarks" / "results" / \
        f"{datetime.date.today().isoformat()}-cpu-parallel-layouts.json"
    # Runs recorded today with the same layouts are kept (an interrupted benchmark continues).
    done = json.loads(path.read_text())["runs"] if path.is_file() else []
    results = []
    for model, batch, nproc, layouts in RUNS:
        kept = [r for r in done if r["model"] == model and r["world"] == nproc
                and [x["layout"] for x in r["layouts"]][1:] == [
                    l.replace("zero=3", "dp,zero=3") if l == "zero=3" else l for l in layouts]]
        if kept:
            results.append(kept[0])
            continue
        cmd = [sys.executable, "-m", "vitscale", "bench", "step", "--model", model, "--batch",
               str(batch), "--nproc-per-node", str(nproc), "--steps", "3", "--rounds", "3",
               "--warmup", "1", "--device", "cpu", "--json"]
        for layout in layouts:
            cmd += ["--layout", layout]
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, check=True).stdout
        results.append({**json.loads(out.strip().splitlines()[-1]), "commit": commit})
        print(f"done: {model} on {nproc}", file=sys.stderr)
        path.write_text(json.dumps({"runs": results}, indent=1) + "\n")
    record = {"date": datetime.date.today().isoformat(), "commit": commit,
              "device": f"CPU: {platform.processor() or platform.machine()}, 2 cores, gloo",
              "command": "python benchmarks/parallel_layouts.py", "runs": results}
    path.write_text(json.dumps(record, indent=1) + "\n")
    print("| model | processes | layout | per rank: parameters | MB sent per step (measured) "
          "| by dimension | formula MB | images/s (CPU) | vs dp |")
    print("|---|---|---|---|---|---|---|---|---|")
    for run in results:
        for r in run["layouts"]:
            dims = ", ".join(f"{d} {b / 1e6:.3f}" for d, b in sorted(r["bytes_by_dim"].items()))
            print(f"| {run['model']} | {run['world']} | {r['layout']} | "
                  f"{r['parameters_per_rank']:,} | {r['bytes_per_step'] / 1e6:.3f} | {dims} | "
                  f"{r['predicted_bytes_per_step'] / 1e6:.3f} | {r['images_per_s']:.1f} | "
                  f"{r['vs_data_parallel']:.2f} |")


if __name__ == "__main__":
    main()
