"""`vitscale plan CONFIG --world N`: every layout for N processes, per rank: memory, bytes sent
(by mesh dimension and by link), FLOPs, pipeline bubble and an estimated step time on a device;
those that do not fit marked, the rest ranked by time (vitscale/planner/, docs/planning.md).

    vitscale plan configs/imagenet1k/vit_b16.py --world 8 --device h100
    vitscale plan configs/imagenet1k/hybrid/vit_1d_tp4_pp16.py --world 64 --json
"""

from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser("plan", help="rank every parallel layout for N processes by estimated "
                                    "step time, with memory and communication per rank")
    p.add_argument("config", help="Python config file")
    p.add_argument("--world", type=int, required=True, help="number of processes (GPUs)")
    p.add_argument("--gpus-per-node", type=int, default=8, help="processes per node (8)")
    p.add_argument("--device", default="h100", help="h100, h200, a100-80, a100-40, v100, cpu")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key (as for train)")
    p.add_argument("--top", type=int, default=15, help="rows to show (default 15; --json: all)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..config import load_config
    from ..errors import ConfigError
    from ..planner import config_layout, device, global_batch, plan_layouts

    if args.world < 1 or args.gpus_per_node < 1:
        raise ConfigError("--world and --gpus-per-node must be at least 1")
    hw = device(args.device)
    cfg = load_config(args.config, args.overrides)
    ranked, skipped = plan_layouts(cfg, args.world, hw, args.gpus_per_node)
    if not ranked:
        reasons = sorted({why for _, why in skipped})
        raise ConfigError(f"no layout of {args.world} processes fits this config "
                          f"({reasons[0] if reasons else 'none considered'}): try another "
                          "--world")
    own = config_layout(cfg)
    batch = global_batch(cfg, args.world).TOTAL_BATCH_SIZE
    if args.json:
        print(json.dumps({"config": args.config, "world": args.world, "global_batch": batch,
                          "gpus_per_node": args.gpus_per_node, "device": hw.name,
                          "layouts": [e.row() | {"config_layout": e.candidate == own}
                                      for e in ranked],
                          "skipped": [{"layout": c.describe(), "why": why}
                                      for c, why in skipped]}))
        return 0
    _table(ranked[:args.top], own, args, hw, batch)
    print(_why(ranked[0], ranked))
    if ranked[0].runnable and ranked[0].fits:
        runs = next((e for e in ranked if e.fits and not e.runnable), None)
        print(f"it needs what this version cannot run yet ({ranked[0].runnable}); "
              + (f"the best layout it runs: {runs.candidate.describe()} "
                 f"({runs.seconds / ranked[0].seconds:.2f}x the time)" if runs else
                 "no layout it runs fits"))
    return 0


def _gb(x: float) -> str:
    return f"{x / 1e9:.2f}"


def _table(rows, own, args, hw, batch) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{args.config}: {args.world} processes, {args.gpus_per_node} per node, "
                        f"{hw.name} (memory {hw.memory / 1e9:.0f} GB), global batch {batch}")
    for name, justify in (("#", "right"), ("layout", "left"), ("params GB", "right"),
                          ("grads GB", "right"), ("optim GB", "right"), ("activ. GB", "right"),
                          ("peak GB", "right"), ("sent GB/step", "right"),
                          ("of which inter-node", "right"), ("bubble", "right"),
                          ("TFLOP/rank", "right"), ("step s", "right"), ("", "left")):
        table.add_column(name, justify=justify)
    for i, e in enumerate(rows, 1):
        m = e.memory
        notes = []
        if not e.fits:
            notes.append("does not fit")
        if e.runnable:
            notes.append("not runnable yet")
        if e.candidate == own:
            notes.append("config's layout")
        style = "bold green" if i == 1 and e.fits else ("dim" if not e.fits else None)
        table.add_row(str(i), e.candidate.describe(), _gb(m["parameters"]), _gb(m["gradients"]),
                      _gb(m["optimizer"]), _gb(m["activations"]), _gb(m["peak"]),
                      _gb(e.comm_intra + e.comm_inter), _gb(e.comm_inter), f"{e.bubble:.0%}",
                      f"{e.flops / 1e12:.1f}", f"{e.seconds:.3f}", ", ".join(notes), style=style)
    import sys
    Console(width=None if sys.stdout.isatty() else 200).print(table)


def _why(best, ranked) -> str:
    """One line on why the first layout wins."""
    if not best.fits:
        return (f"no layout fits in {best.memory['peak'] / 1e9:.1f} GB or less per rank: the "
                "best needs more memory than the device has; add processes or checkpointing")
    rival = next((e for e in ranked[1:] if e.fits), None)
    if rival is None:
        return f"best: {best.candidate.describe()} (the only layout that fits)"
    if rival.seconds < best.seconds * 1.01:
        sent = best.comm_intra + best.comm_inter
        other = rival.comm_intra + rival.comm_inter
        note = f", and sends {other / max(sent, 1):.1f}x less" if sent < 0.95 * other else \
            f", and holds {rival.memory['peak'] / best.memory['peak']:.1f}x less" \
            if best.memory["peak"] < 0.95 * rival.memory["peak"] else ""
        return (f"best: {best.candidate.describe()}, level with {rival.candidate.describe()} on "
                f"estimated time (compute-bound){note}")
    parts = []
    for name, a, b in (("compute", best.flops, rival.flops),
                       ("bytes sent", best.comm_intra + best.comm_inter,
                        rival.comm_intra + rival.comm_inter),
                       ("inter-node bytes", best.comm_inter, rival.comm_inter)):
        if a < 0.95 * b:
            parts.append(f"{b / max(a, 1):.1f}x less {name}")
    reason = ", ".join(parts) or "less exposed communication"
    return (f"best: {best.candidate.describe()}, {rival.seconds / best.seconds:.2f}x faster than "
            f"{rival.candidate.describe()} ({reason})")
