"""`vitscale train CONFIG`: check everything, then train and write the run directory."""

from __future__ import annotations

from pathlib import Path


def register(sub) -> None:
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
    p.add_argument("--reset", action="store_true",
                   help="start over: move the run directory's old run aside instead of resuming")
    p.set_defaults(func=run)


def dry_run(cfg, plan) -> int:
    import torch

    from ..models import build_model, count_parameters
    with torch.device("meta"):
        params = count_parameters(build_model(plan.model))
    print(cfg.to_python(), end="")
    print("\n# derived values")
    for key, value in {**plan.derived(), "num_parameters": params}.items():
        print(f"#   {key:<20} {value}")
    return 0


def run(args) -> int:
    from .. import __version__
    from ..config import load_config
    from ..plan import make_plan
    from ..train import Trainer, build_engine, default_run_dir
    from ..train.rundir import check_resumable, has_checkpoint, reset_run_dir

    cfg = load_config(args.config, args.overrides)
    plan = make_plan(cfg)
    if args.dry_run:
        return dry_run(cfg, plan)
    run_dir = Path(args.run_dir or default_run_dir(args.config))
    if not args.reset and has_checkpoint(run_dir):
        check_resumable(run_dir, cfg)
    engine = build_engine(cfg, data=args.data, device=args.device)  # validates data first
    if args.reset:
        moved = reset_run_dir(run_dir)
        if moved:
            print(f"--reset: the previous run in {run_dir} was moved to {moved}")
    plan = engine.plan
    print(f"vitscale {__version__}: {plan.model_name} ({engine.num_parameters / 1e6:.2f}M params) "
          f"on {engine.device}, {engine.precision.describe()}")
    print(f"batch {plan.global_batch} global = {plan.per_device_batch} per device x "
          f"{plan.data_parallel_size} data-parallel x {plan.accumulation} accumulation; "
          f"{plan.steps_per_epoch} steps/epoch x {cfg.NUM_EPOCHS} epochs; run dir {run_dir}",
          flush=True)
    Trainer(engine, run_dir=run_dir, progress=False if args.no_progress else None).fit()
    return 0
