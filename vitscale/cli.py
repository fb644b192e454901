"""The `vitscale` command.

    vitscale train CONFIG [--data PATH] [--set KEY=VALUE ...] [--run-dir DIR] [--dry-run]
    vitscale models
    vitscale bench step --model NAME --batch B [--steps N] [--json]

Input errors (config, data, environment) print one line, `vitscale: error: ...`, and exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys

from . import __version__
from .errors import VitscaleError


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a ViT from a config file")
    p.add_argument("config", help="Python config file, e.g. configs/cifar10/quick_cpu.py")
    p.add_argument("--data", help="dataset folder (default: $DATA, else download CIFAR-10)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key (repeatable; values are Python literals)")
    p.add_argument("--run-dir", help="where the run writes its files (default runs/<config>)")
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda if available)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the resolved config and derived values, then exit")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)


def _add_models(sub) -> None:
    p = sub.add_parser("models", help="list the named model sizes")
    p.set_defaults(func=cmd_models)


def _add_bench(sub) -> None:
    p = sub.add_parser("bench", help="benchmarks, side by side with the plain alternative")
    bench = p.add_subparsers(dest="bench", required=True)
    s = bench.add_parser("step", help="training-step images/s: vitscale vs a plain PyTorch loop")
    s.add_argument("--model", required=True, help="a name from `vitscale models`")
    s.add_argument("--batch", type=int, required=True, help="images per step")
    s.add_argument("--steps", type=int, default=20, help="timed steps per round")
    s.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    s.add_argument("--rounds", type=int, default=3, help="alternating timed rounds")
    s.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "bf16"])
    s.add_argument("--device", help="cpu, cuda or cuda:N")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=cmd_bench_step)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vitscale", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"vitscale {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    _add_models(sub)
    _add_bench(sub)
    return parser


def cmd_train(args) -> int:
    from .config import load_config
    from .models import build_model, count_parameters
    from .plan import make_plan
    from .train import Trainer, build_engine, default_run_dir

    cfg = load_config(args.config, args.overrides)
    plan = make_plan(cfg)
    if args.dry_run:
        import torch
        with torch.device("meta"):
            params = count_parameters(build_model(plan.model))
        print(cfg.to_python(), end="")
        print("\n# derived values")
        for key, value in {**plan.derived(), "num_parameters": params}.items():
            print(f"#   {key:<20} {value}")
        return 0
    engine = build_engine(cfg, data=args.data, device=args.device)  # validates data first
    run_dir = args.run_dir or default_run_dir(args.config)
    plan = engine.plan
    print(f"vitscale {__version__}: {plan.model_name} ({engine.num_parameters / 1e6:.2f}M params) "
          f"on {engine.device}, {engine.policy.describe()}")
    print(f"batch {plan.global_batch} global = {plan.per_device_batch} per device x "
          f"{plan.data_parallel_size} data-parallel x {plan.accumulation} accumulation; "
          f"{plan.steps_per_epoch} steps/epoch x {cfg.NUM_EPOCHS} epochs; run dir {run_dir}",
          flush=True)
    Trainer(engine, run_dir=run_dir, progress=False if args.no_progress else None).fit()
    return 0


def cmd_models(args) -> int:
    import torch

    from .models import VARIANTS, build_model, count_parameters
    print(f"{'name':<26} {'width':>5} {'depth':>5} {'heads':>5} {'mlp':>4} {'patch':>5} "
          f"{'img':>4} {'params':>8}")
    for name, s in VARIANTS.items():
        with torch.device("meta"):
            n = count_parameters(build_model(s))
        print(f"{name:<26} {s.width:>5} {s.depth:>5} {s.heads:>5} {s.mlp_ratio:>4g} "
              f"{s.patch:>5} {s.img_size:>4} {n / 1e6:>7.2f}M")
    return 0


def cmd_bench_step(args) -> int:
    from .bench.step import bench_step
    from .errors import ConfigError
    from .models import VARIANTS
    from .config import suggest

    if args.model not in VARIANTS:
        raise ConfigError(f"--model {args.model} is not a known model"
                          f"{suggest(args.model, VARIANTS)}: run `vitscale models` for the list")
    if args.batch < 1 or args.steps < 1:
        raise ConfigError("--batch and --steps must be at least 1")
    r = bench_step(args.model, args.batch, steps=args.steps, warmup=args.warmup,
                   rounds=args.rounds, device=args.device, precision=args.precision)
    if args.json:
        print(json.dumps(r))
    else:
        print(f"{r['model']} batch {r['batch']} {r['precision']} on {r['device_name']}")
        print(f"  vitscale       {r['vitscale_images_per_s']:10.1f} images/s")
        print(f"  plain PyTorch  {r['plain_images_per_s']:10.1f} images/s")
        print(f"  ratio          {r['ratio']:10.3f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except VitscaleError as e:
        print(f"vitscale: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vitscale: interrupted", file=sys.stderr)
        return 130
