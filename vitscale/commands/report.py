"""`vitscale report RUN_DIR`: redraw a run's plots and HTML page (also while it runs).

`vitscale report --sweep RESULTS --x KEY [--series KEY]`: plot a sweep's results file against
a swept key (vitscale/sweep/report.py).
"""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("report", help="write PNG plots and report.html for a run directory, "
                                      "or plots of a sweep's results (--sweep)")
    p.add_argument("run_dir", nargs="?", help="a run directory (runs/<name>)")
    p.add_argument("--sweep", metavar="RESULTS", help="a sweep's results.jsonl")
    p.add_argument("--x", help="--sweep: the key on the x axis, e.g. MLP_DIM or num_parameters")
    p.add_argument("--series", help="--sweep: one line per value of this key, e.g. FFN")
    p.add_argument("--metric", default="best_test_acc1",
                   help="--sweep: best_test_acc1 (default), final_test_acc1, images_per_s, ...")
    p.add_argument("--out", help="--sweep: path of the PNG (the HTML goes beside it)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..errors import ConfigError
    if args.sweep:
        if args.run_dir or not args.x:
            raise ConfigError("report --sweep RESULTS needs --x KEY and no run directory, e.g. "
                              "vitscale report --sweep runs/sweeps/quick_cpu/results.jsonl "
                              "--x MLP_DIM")
        from ..sweep.report import write_sweep_report
        print(write_sweep_report(args.sweep, args.x, args.series, args.metric, args.out))
        return 0
    if not args.run_dir:
        raise ConfigError("report needs a run directory (vitscale report runs/<name>) or "
                          "--sweep RESULTS --x KEY")
    from ..report import write_report
    print(write_report(args.run_dir))
    return 0
