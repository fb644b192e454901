"""Sweeps: a grid of runs of one config, one results record per run, plots over the grid.

    vitscale sweep configs/cifar10/quick_cpu.py --grid MLP_DIM=64,256 --repeats 2
    vitscale report --sweep runs/sweeps/quick_cpu/results.jsonl --x MLP_DIM

grid.py expands --grid options, runner.py runs them (commands/sweep.py is the CLI),
results.py writes the JSON-lines records, report.py draws them.
"""

from .grid import Point, expand_grid, parse_grid_option
from .results import append_record, read_results, run_id
from .runner import Outcome, Run, plan_runs, run_sweep

__all__ = ["Outcome", "Point", "Run", "append_record", "expand_grid", "parse_grid_option",
           "plan_runs", "read_results", "run_id", "run_sweep"]
