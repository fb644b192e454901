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
    launch = p.add_argument_group("distributed launch (see docs/launching.md)")
    launch.add_argument("--launcher", choices=["torchrun", "slurm", "openmpi", "explicit"],
                        help="force a launcher (default: detected from the environment)")
    launch.add_argument("--rank", type=int, help="global rank of this process (explicit launch)")
    launch.add_argument("--world-size", type=int, help="number of processes (explicit launch)")
    launch.add_argument("--local-rank", type=int, help="rank on this node (explicit launch)")
    launch.add_argument("--host", help="address of the rank-0 node (slurm, openmpi, explicit)")
    launch.add_argument("--port", type=int, help="port on the rank-0 node (default 29500)")
    launch.add_argument("--backend", choices=["nccl", "gloo"],
                        help="default: nccl on GPUs, gloo on CPUs")
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
    import torch

    from ..config import load_config
    from ..data import find_splits, resolve_data_root
    from ..distributed.group import init_distributed
    from ..distributed.launch import detect_launch
    from ..plan import make_plan
    from ..train import default_run_dir
    from ..train.engine import pick_device
    from ..train.rundir import check_resumable, has_checkpoint

    cfg = load_config(args.config, args.overrides)
    cuda = args.device != "cpu" and torch.cuda.is_available()
    info = detect_launch(launcher=args.launcher, rank=args.rank, world_size=args.world_size,
                         local_rank=args.local_rank, host=args.host, port=args.port,
                         backend=args.backend, cuda=cuda)
    plan = make_plan(cfg, world_size=info.world_size)  # every layout check, before any waiting
    if args.dry_run:
        return dry_run(cfg, plan)
    run_dir = Path(args.run_dir or default_run_dir(args.config))
    if not args.reset and has_checkpoint(run_dir):
        check_resumable(run_dir, cfg)
    root = resolve_data_root(args.data, cfg.DATASET)
    find_splits(cfg, root)  # a bad --data fails here, on every rank, before joining
    device = init_distributed(info, cfg.dist_timeout) if info.distributed else \
        pick_device(args.device)
    with distributed_run(info):
        _train(args, cfg, root, device, info, run_dir)
    return 0


def _train(args, cfg, root, device, info, run_dir: Path) -> None:
    import torch.distributed as dist

    from .. import __version__
    from ..train import Trainer, build_engine
    from ..train.rundir import reset_run_dir

    engine = build_engine(cfg, data=root, device=device, world_size=info.world_size)
    rank0 = info.rank == 0
    if args.reset:
        moved = reset_run_dir(run_dir) if rank0 else None
        if info.distributed:
            dist.barrier()  # nobody writes into the directory before it was moved aside
        if moved:
            print(f"--reset: the previous run in {run_dir} was moved to {moved}")
    plan = engine.plan
    if rank0:
        launch = f", {info.launcher} launch of {info.world_size}" if info.distributed else ""
        print(f"vitscale {__version__}: {plan.model_name} ({engine.num_parameters / 1e6:.2f}M "
              f"params) on {engine.device}{launch}, {engine.precision.describe()}")
        zero = f", zero stage {cfg.zero.stage}" if cfg.zero and plan.dims.data > 1 else ""
        print(f"layout {plan.dims.describe()}{zero}; batch {plan.global_batch} global = "
              f"{plan.per_device_batch} per device x {plan.dims.data} data-parallel x "
              f"{plan.accumulation} accumulation; {plan.steps_per_epoch} steps/epoch x "
              f"{cfg.NUM_EPOCHS} epochs; run dir {run_dir}")
        print(engine.data_description, flush=True)
    Trainer(engine, run_dir=run_dir, progress=False if args.no_progress else None).fit()


class distributed_run:
    """Leave the process group together on success; on failure tell the other ranks who failed."""

    def __init__(self, info):
        self.info = info

    def __enter__(self):
        return self

    def __exit__(self, kind, error, tb):
        from ..distributed import watchdog
        from ..distributed.group import shutdown_distributed
        from ..errors import RankFailure, VitscaleError
        from ..train.trainer import Interrupted

        if not self.info.distributed:
            return False
        if error is None or isinstance(error, Interrupted):
            shutdown_distributed()  # a signal stopped every rank at the same step
            return False
        message = watchdog.report_failure(error)
        if isinstance(error, VitscaleError):
            return False
        import traceback
        traceback.print_exception(kind, error, tb)
        raise RankFailure(message) from None
