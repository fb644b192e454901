"""One module per `vitscale` subcommand; each exposes `register(subparsers)`.

A new subcommand is a new module here plus one line in COMMANDS.
"""

from . import bench, models, train

COMMANDS = [train, models, bench]
