"""Logging: one format with time and rank, and only rank 0 speaks unless asked otherwise.

Library code logs through `logging.getLogger(__name__)`; the CLI calls `setup_logging` once.
In a run of N processes every rank executes the same code, so by default a record is emitted
by global rank 0 only (a message every rank would repeat appears once). `--log-all-ranks`, or
the DEBUG level, lets every rank speak, each line tagged with its rank:

    14:02:11 rank0 INFO vitscale.parallel.apply: 1/4 tensor parallel: 1D over tp=2 ...
"""

from __future__ import annotations

import logging
import os
import sys

FORMAT = "%(asctime)s rank%(rank)s %(levelname)s %(name)s: %(message)s"


def current_rank() -> int:
    """Global rank once the process group is up; before that, what the launcher set."""
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    for key in ("RANK", "SLURM_PROCID", "OMPI_COMM_WORLD_RANK"):
        if os.environ.get(key, "").isdigit():
            return int(os.environ[key])
    return 0


def is_rank0() -> bool:
    """The one rank-0 check: rank 0 writes the run's files and the console lines."""
    return current_rank() == 0


# A record only its own rank can report (a watchdog failure seen by rank 3) passes the filter on
# every rank: logger.error(message, extra=EVERY_RANK).
EVERY_RANK = {"every_rank": True}


class RankFilter(logging.Filter):
    """Adds `rank` to every record; drops records of ranks other than 0 unless `all_ranks` or
    the record carries EVERY_RANK."""

    def __init__(self, all_ranks: bool = False):
        super().__init__()
        self.all_ranks = all_ranks

    def filter(self, record: logging.LogRecord) -> bool:
        record.rank = current_rank()
        return self.all_ranks or record.rank == 0 or getattr(record, "every_rank", False)


def setup_logging(all_ranks: bool = False, level: int | str = logging.INFO) -> None:
    """Route the `vitscale` loggers to stderr, rank 0 only unless `all_ranks` or DEBUG."""
    level = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT, datefmt="%H:%M:%S"))
    handler.addFilter(RankFilter(all_ranks or level <= logging.DEBUG))
    root = logging.getLogger("vitscale")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
