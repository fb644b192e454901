"""FFF conditional evaluation vs a dense MLP of the same parameter count, on the CPU.

    python benchmarks/fff_speed.py --threads 2 --rounds 7 --json benchmarks/results/fff.json

For each shape, one process times, in alternating rounds (so that other load on the machine
hits all alike), the forward pass in evaluation (no gradients) of:
  * MLP(D, N): the dense MLP with N hidden units (2DN + N + D parameters);
  * FFF dense: one tree of depth d, N = 2^(d+1) - 1 neurons (2DN + N parameters), every node's
    logit in one matmul and the off-path activations masked (the training form);
  * FFF conditional: the same tree computing only the d + 1 nodes on each token's path;
and one training step (forward + backward) of the MLP and of the FFF (dense form), since the
masking and the path walk are what FFF adds to training. The median of the rounds is printed
as milliseconds per call and tokens per second. Belcak & Wattenhofer 2023 ("Exponentially
Faster Language Modelling") report their CPU speed-ups at BERT-base width with depth 11.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

import torch

from vitscale.models import FFF, MLP
from vitscale.models.init import reset_parameters
from vitscale.sweep.results import source_commit

# (name, width D, depth d, tokens T): T = images x tokens per image.
SHAPES = [
    ("quick_cpu: D 128, d 7, batch 128 x 17 tokens", 128, 7, 128 * 17),
    ("ViT-Lite-7/4: D 256, d 8, batch 128 x 65 tokens", 256, 8, 128 * 65),
    ("one ViT-Lite image: D 256, d 8, 65 tokens", 256, 8, 65),
    ("UltraFastBERT: D 768, d 11, 128 tokens", 768, 11, 128),
    ("UltraFastBERT: D 768, d 11, 2048 tokens", 768, 11, 2048),
]


def _time(fn, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def bench_shape(D: int, depth: int, T: int, rounds: int) -> dict:
    gen = torch.Generator().manual_seed(0)
    tree = FFF(D, depth=depth)
    neurons = tree.neurons
    mlp = MLP(D, neurons)
    reset_parameters(tree, gen)
    reset_parameters(mlp, gen)
    with torch.no_grad():  # random biases so that paths spread over the whole tree
        for level in range(depth + 1):
            getattr(tree, f"b_in_{level}").normal_(std=0.02, generator=gen)
    x = torch.randn(T, D, generator=gen)

    def forward(module, conditional=False):
        def run():
            module.eval()
            if isinstance(module, FFF):
                module.conditional = conditional
            with torch.no_grad():
                module(x)
        return run

    def train_step(module):
        def run():
            module.train()
            module.zero_grad(set_to_none=True)
            module(x).square().mean().backward()
        return run

    cases = {"mlp_eval": forward(mlp), "fff_dense_eval": forward(tree),
             "fff_conditional_eval": forward(tree, conditional=True),
             "mlp_train_step": train_step(mlp), "fff_train_step": train_step(tree)}
    for fn in cases.values():  # warm-up
        fn()
    estimate = _time(cases["mlp_eval"], 1)
    calls = max(1, min(50, int(0.3 / max(estimate, 1e-6))))
    times = {name: [] for name in cases}
    for _ in range(rounds):
        for name, fn in cases.items():
            times[name].append(_time(fn, calls))
    med = {name: statistics.median(t) for name, t in times.items()}
    return {"D": D, "depth": depth, "tokens": T, "neurons": neurons,
            "mlp_params": sum(p.numel() for p in mlp.parameters()),
            "fff_params": sum(p.numel() for p in tree.parameters()),
            "active_per_token": tree.active_neurons, "calls_per_round": calls,
            "ms": {k: v * 1e3 for k, v in med.items()},
            "conditional_speedup_vs_mlp": med["mlp_eval"] / med["fff_conditional_eval"],
            "fff_train_step_vs_mlp": med["fff_train_step"] / med["mlp_train_step"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    print("| shape | neurons (used/token) | MLP eval ms | FFF dense eval ms | FFF conditional "
          "eval ms | conditional vs MLP | MLP train step ms | FFF train step ms |")
    print("|---|---|---|---|---|---|---|---|")
    for name, D, depth, T in SHAPES:
        r = bench_shape(D, depth, T, args.rounds)
        rows.append({"shape": name, **r})
        ms = r["ms"]
        print(f"| {name} | {r['neurons']} ({r['active_per_token']}) | {ms['mlp_eval']:.2f} | "
              f"{ms['fff_dense_eval']:.2f} | {ms['fff_conditional_eval']:.2f} | "
              f"{r['conditional_speedup_vs_mlp']:.2f}x | {ms['mlp_train_step']:.2f} | "
              f"{ms['fff_train_step']:.2f} |", flush=True)
    if args.json:
        meta = {"threads": args.threads, "rounds": args.rounds, "torch": torch.__version__,
                "machine": platform.processor() or platform.machine(),
                "date": time.strftime("%Y-%m-%d"), "commit": source_commit(),
                "command": "python benchmarks/fff_speed.py " + " ".join(sys.argv[1:]),
                # other jobs on the machine slow all cases alike (alternating rounds), but
                # the absolute times only compare between runs at a similar load
                "loadavg_at_end": os.getloadavg()}
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "results": rows}, f, indent=2)


if __name__ == "__main__":
    main()
