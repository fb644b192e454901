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
    r = bench_step(args.model, args.batch, steps=args.steps, warmup=args.warmup,
                   rounds=args.rounds, device=args.device, precision=args.precision,
                   compile=args.compile)
    if args.json:
        print(json.dumps(r))
        return 0
    print(f"{r['model']} batch {r['batch']} {r['precision']} on {r['device_name']} "
          f"(median of {r['rounds']} alternating rounds of {r['steps']} steps)")
    print(f"  vitscale              {r['vitscale_images_per_s']:10.1f} images/s")
    if "vitscale_compiled_images_per_s" in r:
        print(f"  vitscale, compiled    {r['vitscale_compiled_images_per_s']:10.1f} images/s")
    print(f"  plain PyTorch loop    {r['plain_images_per_s']:10.1f} images/s")
    print(f"  ratio (vitscale / plain)  {r['ratio']:.3f}")
    return 0
