"""The tables of docs/planning.md: `vitscale plan` for seed 003's 6.4B ViT on 64, 512 and 4,096
H100s and for ViT-S/16 and ViT-B/16 on 8 and 64, in 8-GPU nodes (top rows of each).

    python benchmarks/planning_tables.py > /tmp/planning.md
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUNS = [("configs/imagenet1k/hybrid/vit_1d_tp4_pp16.py", 64),
        ("configs/imagenet1k/hybrid/vit_1d_tp4_pp16.py", 512),
        ("configs/imagenet1k/hybrid/vit_1d_tp4_pp16.py", 4096),
        ("configs/imagenet1k/vit_s16.py", 8), ("configs/imagenet1k/vit_s16.py", 64),
        ("configs/imagenet1k/vit_b16.py", 8), ("configs/imagenet1k/vit_b16.py", 64)]


def main(top: int = 6) -> None:
    for config, world in RUNS:
        out = subprocess.run([sys.executable, "-m", "vitscale", "plan", config, "--world",
                              str(world), "--json"], capture_output=True, text=True, cwd=REPO,
                             check=True).stdout
        plan = json.loads(out)
        rows = plan["layouts"]
        own = next((i for i, r in enumerate(rows) if r["config_layout"]), None)
        print(f"\n### {config}, {world} H100s ({len(rows)} layouts costed, "
              f"{sum(r['fits'] for r in rows)} fit in 80 GB)\n")
        print("| # | layout | peak GB | sent GB/step (inter-node) | bubble | TFLOP/rank | "
              "step s | |")
        print("|---|---|---|---|---|---|---|---|")
        shown = list(range(min(top, len(rows)))) + ([own] if own is not None and own >= top
                                                    else [])
        for i in shown:
            r = rows[i]
            sent = sum(r["comm_bytes_by_dim"].values())
            notes = ", ".join(n for n, on in (("config's layout", r["config_layout"]),
                                               ("not runnable yet", not r["runnable"]),
                                               ("does not fit", not r["fits"])) if on)
            print(f"| {i + 1} | {r['layout']} | {r['peak_bytes'] / 1e9:.1f} | "
                  f"{sent / 1e9:.1f} ({r['comm_inter_node_bytes'] / 1e9:.1f}) | "
                  f"{r['bubble']:.0%} | {r['flops_per_rank'] / 1e12:.1f} | "
                  f"{r['step_seconds']:.3f} | {notes} |")


if __name__ == "__main__":
    main()
