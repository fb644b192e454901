"""One module per `vitscale` subcommand; each exposes `register(subparsers)`.

A new subcommand is a new module here plus one line in COMMANDS.
"""

from . import bench, eval, models, plan, prepare, report, run, sweep, tensorboard, train

COMMANDS = [train, run, eval, report, tensorboard, models, bench, prepare, sweep, plan]
