"""`vitscale report RUN_DIR`: redraw a run's plots and HTML page (also while it runs)."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("report", help="write PNG plots and report.html for a run directory")
    p.add_argument("run_dir")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..report import write_report
    print(write_report(args.run_dir))
    return 0
