"""Does `vitscale plan` pick a layout that is fast when measured? (issue: the planner's choice
for a small model on 4 CPU processes is no more than 10% behind the fastest layout measured.)

    python benchmarks/planner_check.py      # ~5 minutes; results/DATE-cpu-planner-check.json

1. `vitscale plan` ranks every layout of 4 processes for ViT-Lite-7/4 at a global batch of 32
   with bench step's recipe (AdamW, fp32, no clipping, hard labels) on the `cpu` device row.
2. `vitscale bench step --nproc-per-node 4` measures every layout of that ranking that it can
   run (all but activation checkpointing, which bench step does not switch on, and pipelines),
   in alternating rounds on the same processes.
3. The planner's choice is its best-ranked measured layout; it is compared with the fastest
   measured one, and the ranking as a whole with the measured order (Spearman's rho).
"""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODEL, BATCH, WORLD = "vit_lite_7_4", 32, 4
CONFIG = f"""# bench step's recipe (vitscale/bench/common.py), for the planner
MODEL = {MODEL!r}
DATASET = "cifar10"
TOTAL_BATCH_SIZE = {BATCH}
LEARNING_RATE = 1e-4
WEIGHT_DECAY = 0.05
NUM_EPOCHS = 1
"""


def bench_spec(row: dict) -> str | None:
    """The planner's layout as bench step's --layout, or None where bench step cannot run it."""
    if row["layout"].endswith("ckpt") or "pp=" in row["layout"] or not row["runnable"]:
        return None
    parts = []
    for part in row["layout"].split(", "):
        if part.startswith("tp="):
            size, mode, *rest = part.split(" ")
            parts.append(size)
            if mode != "1d":
                parts.append(f"mode={mode}")
            if "sp" in rest:
                parts.append("sp")
            if mode == "2.5d":
                parts.append(f"depth={rest[0].removeprefix('d=')}")
        elif part.startswith("dp zero="):
            parts.append(part.removeprefix("dp ").strip())
    return ",".join(parts) or "dp"


def _spearman(a: list[float], b: list[float]) -> float:
    def ranks(xs):
        order = sorted(range(len(xs)), key=lambda i: xs[i])
        r = [0.0] * len(xs)
        for position, i in enumerate(order):
            r[i] = position
        return r
    ra, rb, n = ranks(a), ranks(b), len(a)
    return 1 - 6 * sum((x - y) ** 2 for x, y in zip(ra, rb)) / (n * (n * n - 1))


def main() -> None:
    from vitscale.bench.layouts import describe, parse_layout

    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(CONFIG)
    plan = json.loads(subprocess.run(
        [sys.executable, "-m", "vitscale", "plan", f.name, "--world", str(WORLD), "--device",
         "cpu", "--gpus-per-node", str(WORLD), "--json"], capture_output=True, text=True,
        cwd=REPO, check=True).stdout)
    Path(f.name).unlink()
    planned = {}
    for row in plan["layouts"]:
        spec = bench_spec(row)
        if spec is not None and spec not in planned:
            planned[spec] = row
    cmd = [sys.executable, "-m", "vitscale", "bench", "step", "--model", MODEL, "--batch",
           str(BATCH), "--nproc-per-node", str(WORLD), "--steps", "3", "--rounds", "5",
           "--warmup", "1", "--device", "cpu", "--json"]
    for spec in planned:
        cmd += ["--layout", spec]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, check=True).stdout
    measured = {r["layout"]: r for r in json.loads(out.strip().splitlines()[-1])["layouts"]}
    rows = []
    for spec, row in planned.items():
        m = measured[describe(parse_layout(spec))]  # bench's own name: 'zero=2' is 'dp,zero=2'
        rows.append({"layout": spec, "planned_step_s": row["step_seconds"],
                     "measured_step_s": BATCH / m["images_per_s"],
                     "measured_images_per_s": m["images_per_s"]})
    choice = rows[0]                       # the planner's ranking order
    fastest = max(rows, key=lambda r: r["measured_images_per_s"])
    behind = 1 - choice["measured_images_per_s"] / fastest["measured_images_per_s"]
    rho = _spearman([r["planned_step_s"] for r in rows], [r["measured_step_s"] for r in rows])
    record = {
        "date": datetime.date.today().isoformat(),
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                 text=True, cwd=REPO).stdout.strip(),
        "device": "CPU, 2 cores, gloo over loopback, 4 processes",
        "command": "python benchmarks/planner_check.py", "model": MODEL, "batch": BATCH,
        "planner_overall_best": plan["layouts"][0]["layout"],
        "planner_choice": choice["layout"], "fastest_measured": fastest["layout"],
        "choice_behind_fastest": behind, "spearman_rho": rho, "layouts": rows}
    path = REPO / "benchmarks" / "results" / f"{record['date']}-cpu-planner-check.json"
    path.write_text(json.dumps(record, indent=1) + "\n")
    print("| layout (planner's order) | planned step s | measured step s | images/s |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['layout']} | {r['planned_step_s']:.3f} | {r['measured_step_s']:.3f} | "
              f"{r['measured_images_per_s']:.1f} |")
    print(f"\nplanner's choice {choice['layout']}: {behind:.1%} behind the fastest measured "
          f"({fastest['layout']}); Spearman rho of planned vs measured times {rho:.2f}")


if __name__ == "__main__":
    main()
