"""`vitscale sweep CONFIG --grid KEY=v1,v2 [--grid ...] [--repeats N]`: run a grid of configs.

    vitscale sweep configs/cifar10/quick_cpu.py --grid MLP_DIM=64,256 --set NUM_EPOCHS=1 \\
        --data ../shared/datasets/cifar10
    vitscale report --sweep runs/sweeps/quick_cpu/results.jsonl --x MLP_DIM

Each run is a normal run directory under <out>/runs/; <out>/results.jsonl gets one record per
finished run (vitscale/sweep/results.py). Running the same command again skips the recorded
runs and resumes an interrupted one.
"""

from __future__ import annotations

import signal
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("sweep", help="train a config over a grid of key values, one results "
                                     "record per run")
    p.add_argument("config", help="Python config file, e.g. configs/cifar10/quick_cpu.py")
    p.add_argument("--grid", action="append", default=[], metavar="KEY=v1,v2,...",
                   help="values of one key (repeatable: the runs are every combination)")
    p.add_argument("--repeats", type=int, default=1,
                   help="runs per grid point, with seeds SEED, SEED+1, ... (default 1)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key in every run (repeatable)")
    p.add_argument("--data", help="dataset folder (default: $DATA, else download CIFAR-10)")
    p.add_argument("--out", help="sweep folder (default runs/sweeps/<config name>)")
    p.add_argument("--results", help="results file (default <out>/results.jsonl)")
    p.add_argument("--device", help="cpu, cuda or cuda:N for every run (default: one GPU per "
                                     "run when GPUs are visible, else the CPU)")
    p.add_argument("--jobs", type=int,
                   help="runs at once (default: the number of visible GPUs, else 1)")
    p.set_defaults(func=run)


def _gpus(device: str | None) -> list[str]:
    """CUDA indices to spread runs over: all visible GPUs unless a device was named."""
    if device is not None:
        return []
    import torch
    return [str(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []


def _stop_on_sigterm(signum, frame):
    raise KeyboardInterrupt


def run(args) -> int:
    from ..errors import ConfigError, DataError
    from ..sweep import plan_runs, run_sweep

    if not args.grid and args.repeats == 1:
        raise ConfigError("nothing to sweep: give --grid KEY=v1,v2 (repeatable) or --repeats N")
    if args.jobs is not None and args.jobs < 1:
        raise ConfigError(f"--jobs {args.jobs} must be at least 1")
    out = Path(args.out or Path("runs") / "sweeps" / Path(args.config).stem)
    results = Path(args.results or out / "results.jsonl")
    runs = plan_runs(args.config, args.grid, args.repeats, args.overrides, out)
    # Each run resolves its data as `vitscale train --data` does; a missing folder stops here.
    if args.data and not Path(args.data).exists():
        raise DataError(f"--data {args.data} does not exist: pass the dataset folder, e.g. "
                        "--data ../shared/datasets/cifar10")
    gpus = _gpus(args.device)
    jobs = args.jobs or max(1, len(gpus))
    where = f"{jobs} at a time over GPUs {','.join(gpus)}" if gpus else (
        f"{jobs} at a time" if jobs > 1 else "one after another")
    print(f"sweep: {len(runs)} runs of {args.config}, {where}; results in {results}", flush=True)
    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        outcome = run_sweep(runs, results, args.config, data=args.data,
                            device=args.device, gpus=gpus, jobs=jobs,
                            echo=lambda line: print(line, flush=True))
    except KeyboardInterrupt:
        print(f"sweep interrupted: finished runs are in {results}; the same command continues",
              flush=True)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(f"sweep done: {len(outcome.done)} ran, {len(outcome.skipped)} skipped, "
          f"{len(outcome.failed)} failed; plot with: vitscale report --sweep {results} --x "
          f"{runs[0].point.values[0][0] if runs[0].point.values else 'SEED'}")
    return 1 if outcome.failed else 0
