"""`vitscale bench ...`: benchmarks run side by side with the plain alternative."""

from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser("bench", help="benchmarks, side by side with the plain alternative")
    bench = p.add_subparsers(dest="bench", required=True)
    s = bench.add_parser("step", help="training-step images/s: vitscale vs a plain PyTorch loop")
    s.add_argument("--model", required=True, help="a name from `vitscale models`")
    s.add_argument("--batch", type=int, required=True, help="images per step")
    s.add_argument("--steps", type=int, default=10, help="timed steps per round")
    s.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    s.add_argument("--rounds", type=int, default=5, help="alternating timed rounds")
    s.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "bf16"])
    s.add_argument("--compile", action="store_true",
                   help="also time vitscale with compile=True (torch.compile per block)")
    s.add_argument("--device", help="cpu, cuda or cuda:N")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.add_argument("--nproc-per-node", type=int, default=1,
                   help="processes: > 1 times parallel layouts beside pure data parallelism "
                        "(--batch is then the global batch)")
    s.add_argument("--layout", action="append", default=[], metavar="SPEC",
                   help="a layout to time beside pure data parallelism: tp=T[,mode=1d|2d|2.5d|3d]"
                        "[,depth=D][,sp][,head=class][,zero=S], e.g. tp=2,sp or tp=4,mode=2d "
                        "(repeatable)")
    s.set_defaults(func=run_step)

    a = bench.add_parser("amp", help="memory, iterations/s and images/s of every precision mode")
    a.add_argument("--model", required=True, help="a name from `vitscale models`")
    a.add_argument("--batch", type=int, required=True, help="images per step")
    a.add_argument("--steps", type=int, default=10, help="timed steps per mode")
    a.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    a.add_argument("--modes", nargs="+", help="default: every mode available here")
    a.add_argument("--device", help="cpu, cuda or cuda:N")
    a.add_argument("--json", action="store_true", help="print one JSON object per line")
    a.set_defaults(func=run_amp)

    d = bench.add_parser("data", help="input pipeline images/s: vitscale vs torchvision "
                                      "ImageFolder + DataLoader")
    d.add_argument("--data", required=True, help="dataset folder (as for vitscale train)")
    d.add_argument("--dataset", default=None,
                   help="cifar10, imagenette, imagenet1k, ... (default: guessed from --data)")
    d.add_argument("--pipeline", default="auto", choices=["auto", "device", "dataloader", "dali"])
    d.add_argument("--img-size", type=int, help="training resolution (default: the dataset's)")
    d.add_argument("--batch", type=int, default=256, help="images per batch")
    d.add_argument("--epochs", type=int, default=2, help="passes over the data (>= 2)")
    d.add_argument("--workers", type=int, default=2,
                   help="DataLoader workers, for both vitscale and the baseline")
    d.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="any config key, e.g. --set TRAIN_CROP=rrc")
    d.add_argument("--device", help="cpu, cuda or cuda:N")
    d.add_argument("--json", action="store_true", help="print one JSON object")
    d.set_defaults(func=run_data)


def _check_model(args) -> None:
    from ..config import suggest
    from ..errors import ConfigError
    from ..models import VARIANTS

    if args.model not in VARIANTS:
        raise ConfigError(f"--model {args.model} is not a known model"
                          f"{suggest(args.model, VARIANTS)}: run `vitscale models` for the list")
    if args.batch < 1 or args.steps < 1:
        raise ConfigError("--batch and --steps must be at least 1")


def run_amp(args) -> int:
    from ..bench.amp import MODES, bench_amp
    from ..errors import ConfigError
    from ..precision import check_available

    _check_model(args)
    for mode in args.modes or ():
        if mode not in MODES:
            raise ConfigError(f"--modes {mode}: not a precision mode; choose from {', '.join(MODES)}")
        check_available(mode)
    rows = bench_amp(args.model, args.batch, steps=args.steps, warmup=args.warmup,
                     device=args.device, modes=args.modes)
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    first = next((r for r in rows if "error" not in r), {})
    print(f"{args.model}, batch {args.batch}, on {first.get('device_name', '?')}")
    print(f"| {'mode':<18} | {'memory GB':>9} | {'iterations/s':>12} | {'images/s':>9} |")
    print(f"|{'-' * 20}|{'-' * 11}|{'-' * 14}|{'-' * 11}|")
    for r in rows:
        if "error" in r:
            print(f"| {r['label']:<18} | failed: {r['error']}")
        else:
            print(f"| {r['label']:<18} | {r['memory_gb']:>9.2f} | {r['iterations_per_s']:>12.2f} "
                  f"| {r['images_per_s']:>9.1f} |")
    return 0


def run_step(args) -> int:
    from ..bench.step import bench_step
    from ..errors import ConfigError

    _check_model(args)
    if args.rounds < 1:
        raise ConfigError("--rounds must be at least 1")
    if args.nproc_per_node > 1 or args.layout:
        return _run_layouts(args)
    r = bench_step(args.model, args.batch, steps=args.steps, warmup=args.warmup,
                   rounds=args.rounds, device=args.device, precision=args.precision,
                   compile=args.compile)
    if args.json:
        print(json.dumps(r))
        return 0
    print(f"{r['model']} batch {r['batch']} {r['precision']} on {r['device_name']} "
          f"(median of {r['rounds']} alternating rounds of {r['steps']} steps)")
    def mfu(key):
        return f"   MFU {100 * r[key]:5.1f}%" if r[key] is not None else ""

    print(f"  vitscale              {r['vitscale_images_per_s']:10.1f} images/s"
          f"{mfu('vitscale_mfu')}")
    if "vitscale_compiled_images_per_s" in r:
        print(f"  vitscale, compiled    {r['vitscale_compiled_images_per_s']:10.1f} images/s"
              f"{mfu('vitscale_compiled_mfu')}")
    print(f"  plain PyTorch loop    {r['plain_images_per_s']:10.1f} images/s{mfu('plain_mfu')}")
    print(f"  ratio (vitscale / plain)  {r['ratio']:.3f}")
    print(f"  MFU against {r['mfu_peak']}, {r['flops_per_image'] / 1e9:.4g} GFLOP per image"
          if r["flops_per_image"] else f"  MFU: {r['mfu_peak']}")
    return 0


def _run_layouts(args) -> int:
    """Start --nproc-per-node processes (unless a launcher already did), then time the layouts."""
    import os
    import sys

    from ..bench.layouts import bench_layouts, parse_layout
    from ..errors import ConfigError

    layouts = [parse_layout(spec) for spec in args.layout]
    if "WORLD_SIZE" not in os.environ:
        if args.nproc_per_node < 2:
            raise ConfigError("--layout needs --nproc-per-node 2 or more")
        from ..distributed.runner import run_local
        argv = sys.argv[1:]
        i = argv.index("--nproc-per-node")
        return run_local(argv[:i] + argv[i + 2:], args.nproc_per_node, args.main)
    from ..distributed.group import init_distributed, shutdown_distributed
    from ..distributed.launch import detect_launch
    import torch
    info = detect_launch(cuda=args.device != "cpu" and torch.cuda.is_available())
    device = init_distributed(info, timeout=600)
    try:
        rows = bench_layouts(args.model, args.batch, layouts, device, steps=args.steps,
                             warmup=args.warmup, rounds=args.rounds, precision=args.precision)
    finally:
        shutdown_distributed()
    if info.rank != 0:
        return 0
    if args.json:
        print(json.dumps({"model": args.model, "batch": args.batch, "world": info.world_size,
                          "precision": args.precision, "device": str(device),
                          "torch_version": torch.__version__, "layouts": rows}))
        return 0
    print(f"{args.model}, global batch {args.batch}, {args.precision}, {info.world_size} "
          f"processes on {device} (median of {args.rounds} alternating rounds of "
          f"{args.steps} steps)")
    print(f"| {'layout':<18} | {'images/s':>9} | {'vs dp':>6} | {'MB sent/step/rank':>17} | "
          f"{'formula MB':>10} | {'params/rank':>11} |")
    print(f"|{'-' * 20}|{'-' * 11}|{'-' * 8}|{'-' * 19}|{'-' * 12}|{'-' * 13}|")
    for r in rows:
        print(f"| {r['layout']:<18} | {r['images_per_s']:>9.1f} | {r['vs_data_parallel']:>6.2f} | "
              f"{r['bytes_per_step'] / 1e6:>17.3f} | {r['predicted_bytes_per_step'] / 1e6:>10.3f} | "
              f"{r['parameters_per_rank']:>11,} |")
    return 0


def run_data(args) -> int:
    from dataclasses import asdict
    from pathlib import Path

    from ..bench.data import bench_pair
    from ..config import apply_overrides, config_from_dict
    from ..errors import ConfigError
    from ..train.engine import pick_device

    if args.epochs < 2 or args.batch < 1:
        raise ConfigError("--epochs must be at least 2 (the first pass may fill the cache) and "
                          "--batch at least 1")
    dataset = args.dataset or ("imagenette" if "imagenette" in str(args.data) else "cifar10")
    # The model is not built: a named one only makes the plan (batch sizes) valid.
    values = {"DATASET": dataset, "BATCH_SIZE": args.batch, "MODEL": "vit_lite_7_4",
              "data": {"pipeline": args.pipeline, "num_workers": args.workers}}
    from ..data.datasets import DATASETS
    if dataset not in DATASETS:
        raise ConfigError(f"--dataset {dataset}: choose one of {', '.join(DATASETS)}")
    values["IMG_SIZE"] = args.img_size or DATASETS[dataset].img_size
    cfg = config_from_dict(apply_overrides(values, args.overrides), source="bench data")
    device = pick_device(args.device)
    data = Path(args.data)
    ours, plain = bench_pair(cfg, data, device, args.batch, args.epochs, args.workers)
    result = {"dataset": dataset, "device": str(device), "batch": args.batch,
              "epochs": args.epochs, "workers": args.workers, "vitscale": asdict(ours),
              "baseline": asdict(plain),
              "ratio": ours.steady_images_per_s / plain.steady_images_per_s}
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{dataset} from {data}, batch {args.batch}, {args.epochs} passes, on {device}")
    print(f"| {'pipeline':<48} | {'first pass img/s':>16} | {'later passes img/s':>18} |")
    print(f"|{'-' * 50}|{'-' * 18}|{'-' * 20}|")
    for row in (ours, plain):
        label = f"vitscale ({row.pipeline})" if row.name == "vitscale" else row.name
        print(f"| {label:<48} | {row.first_epoch_images_per_s:>16.0f} | "
              f"{row.steady_images_per_s:>18.0f} |")
    print(f"ratio (vitscale / torchvision, later passes): {result['ratio']:.2f}x")
    return 0
