"""`vitscale train CONFIG`: check everything, then train and write the run directory."""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
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
                   help="print the resolved config, what was inferred and translated, and the "
                        "plan, then exit (no launcher needed)")
    p.add_argument("--world", type=int, metavar="N",
                   help="with --dry-run: plan for N processes (default: the config's own "
                        "smallest world, pipeline x tensor x parallel.data)")
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


@dataclass
class DryRun:
    inference: object      # data/infer.Inference: the config with DATASET resolved, and why
    plan: object
    world: int
    world_from: str
    no_batch: bool         # the file sets no batch size: batch values are not planned


def plan_dry_run(loaded, data=None, world: int | None = None) -> DryRun:
    """Plan the config on this machine, whatever layout it asks for: the world is `world`
    (--world) or the config's smallest (pipeline x tensor x parallel.data), and layouts this
    version cannot run yet are planned all the same (make_plan(runnable=False)); a launched
    run refuses them."""
    from ..data.infer import infer_dataset
    from ..errors import ConfigError
    from ..plan import make_plan

    inference = infer_dataset(loaded.config, data)
    cfg = inference.config
    world_from = "--world"
    if world is None:
        p = cfg.parallel
        world = p.pipeline * p.tensor.size * (p.data or 1)
        world_from = "the config's smallest: pipeline x tensor" + (" x parallel.data"
                                                                    if p.data else "")
    if world < 1:
        raise ConfigError(f"--world {world}: the number of processes must be at least 1")
    train_size = None if inference.train_size is None else inference.train_size - cfg.VAL_SPLIT
    # A file that sets no batch (a model-only test config) is still planned: layout, model and
    # precision, with the batch-dependent values shown as not set.
    no_batch = cfg.BATCH_SIZE is None and cfg.TOTAL_BATCH_SIZE is None
    plan = make_plan(dataclasses.replace(cfg, BATCH_SIZE=1) if no_batch else cfg,
                     world_size=world, train_size=train_size, runnable=False)
    return DryRun(inference, plan, world, world_from, no_batch)


def dry_run(args, loaded) -> int:
    import torch

    from ..errors import ConfigError
    from ..models import build_model, count_parameters
    from ..plan import _check_dropout_layout, _check_precision_layout
    from ..precision import check_available

    dry = plan_dry_run(loaded, args.data, args.world)
    inference, plan, cfg = dry.inference, dry.plan, dry.inference.config
    world, world_from, no_batch = dry.world, dry.world_from, dry.no_batch
    with torch.device("meta"):
        params = count_parameters(build_model(plan.model))
    print(cfg.to_python(), end="")
    print("\n# inferred")
    for line in inference.lines:
        print(f"#   {line}")
    if loaded.lines():
        print("# from the file's Colossal-AI keys")
        for line in loaded.lines():
            print(f"#   {line}")
    print("\n# derived values")
    derived = {**plan.derived(), "world_size": f"{world} ({world_from})",
               "num_parameters": params}
    if no_batch:
        derived.update(dict.fromkeys(("global_batch", "per_device_batch", "accumulation_steps",
                                      "steps_per_epoch", "total_steps", "warmup_steps",
                                      "peak_lr"), "not set"))
    for key, value in derived.items():
        print(f"#   {key:<20} {'unknown until the data is read' if value is None else value}")
    if not no_batch:
        _print_costs(cfg, plan, world)
    notes = ["not runnable: neither BATCH_SIZE nor TOTAL_BATCH_SIZE is set"] if no_batch else []
    try:
        plan.dims.check_runnable()
    except ConfigError as e:
        notes.append(f"not runnable yet: {e}")
    try:
        _check_precision_layout(plan.precision, plan.dims)
        _check_dropout_layout(cfg, plan.dims, plan.model)
    except ConfigError as e:
        notes.append(f"not runnable as it is: {e}")
    try:
        check_available(plan.precision)
    except ConfigError as e:
        notes.append(f"this machine: {e}")
    for note in notes:
        print(f"# {note}")
    return 0


def _print_costs(cfg, plan, world: int) -> None:
    """What `vitscale plan` says of the config's own layout: per rank, per optimizer step."""
    from ..planner import config_layout, device, estimate
    e = estimate(cfg, config_layout(cfg), world, device("h100"), gpus_per_node=8, plan=plan)
    m = e.memory
    print("\n# per rank (vitscale plan's cost model; docs/parallelism.md)")
    print(f"#   memory GB            parameters {m['parameters'] / 1e9:.2f}, gradients "
          f"{m['gradients'] / 1e9:.2f}, optimizer {m['optimizer'] / 1e9:.2f}, activations "
          f"{m['activations'] / 1e9:.2f} (one micro-batch), peak {m['peak'] / 1e9:.2f}")
    sent = ", ".join(f"{d} {b / 1e9:.3f}" for d, b in sorted(e.comm_by_dim.items())) or "none"
    print(f"#   GB sent per step     {sent} (inter-node with 8 per node: "
          f"{e.comm_inter / 1e9:.3f})")
    print(f"#   TFLOP per step       {e.flops / 1e12:.2f}" + (
        f"; pipeline bubble {e.bubble:.0%}" if e.bubble else ""))
    print(f"#   step on an H100      {e.seconds:.3f} s estimated (`vitscale plan` ranks every "
          "layout, on other devices too)")


def run(args) -> int:
    import torch

    from ..config import read_config
    from ..data import find_splits, resolve_data_root
    from ..data.infer import infer_dataset
    from ..errors import ConfigError
    from ..distributed.group import init_distributed
    from ..distributed.launch import detect_launch
    from ..plan import make_plan
    from ..train import default_run_dir
    from ..train.engine import pick_device
    from ..train.rundir import check_resumable, has_checkpoint

    loaded = read_config(args.config, args.overrides)
    if args.dry_run:
        return dry_run(args, loaded)
    if args.world is not None:
        raise ConfigError("--world plans a dry run: add --dry-run (a launched run takes its "
                          "world size from the launcher)")
    cuda = args.device != "cpu" and torch.cuda.is_available()
    info = detect_launch(launcher=args.launcher, rank=args.rank, world_size=args.world_size,
                         local_rank=args.local_rank, host=args.host, port=args.port,
                         backend=args.backend, cuda=cuda)
    inference = infer_dataset(loaded.config, args.data)
    cfg = inference.config
    plan = make_plan(cfg, world_size=info.world_size)  # every layout check, before any waiting
    if info.rank == 0:
        for line in inference.lines[1:] + loaded.lines():  # once, at start
            print(f"config: {line}")
    run_dir = Path(args.run_dir or default_run_dir(args.config))
    if not args.reset and has_checkpoint(run_dir):
        check_resumable(run_dir, cfg)
    root = resolve_data_root(args.data or cfg.data.root, cfg.DATASET)
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
        if plan.dims.world > 1:
            held = engine.footprint
            print(f"{plan.dims.explain()}; rank 0 holds {held['parameters_per_rank']:,} of "
                  f"{held['parameters_total']:,} parameters "
                  f"({held['parameter_bytes_per_rank'] / 1e6:.1f} MB)")
        if cfg.zero and cfg.zero.stage and plan.dims.world == 1:
            print(f"zero stage {cfg.zero.stage} ignored: one process has nothing to shard "
                  "with", file=sys.stderr)
        print(engine.data_description, flush=True)
    # The report reads the run directory the trainer writes: a hook from here, so that train/
    # does not import what sits above it.
    from ..report import ReportHook
    hooks = [ReportHook(run_dir)] if cfg.report and run_dir is not None else []
    Trainer(engine, run_dir=run_dir, hooks=hooks,
            progress=False if args.no_progress else None).fit()


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
