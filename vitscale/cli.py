"""The `vitscale` command; each subcommand lives in vitscale/commands/.

    vitscale train CONFIG [--data PATH] [--set KEY=VALUE ...] [--run-dir DIR] [--dry-run]
    vitscale run --nproc-per-node N [--hostfile FILE] train CONFIG ...   (processes, hosts)
    vitscale eval RUN_DIR|MODEL.safetensors --data PATH [--split val] [--json]
    vitscale report RUN_DIR | --sweep RESULTS --x KEY [--series KEY]
    vitscale tensorboard RUN_DIR [--port P]
    vitscale models
    vitscale bench step|amp|data ...      (side by side with the plain PyTorch alternative)
    vitscale prepare SOURCE --dataset NAME --to tfrecord|cache --out DIR
    vitscale sweep CONFIG --grid KEY=v1,v2 [--grid ...] [--repeats N] [--set KEY=VALUE ...]
    vitscale plan CONFIG --world N [--gpus-per-node G] [--json]

`--log-all-ranks` and `--log-level` (before the command) set what vitscale logs (logs.py).

Input errors (config, data, environment) print one line, `vitscale: error: ...`, and exit 2.
"""

from __future__ import annotations

import argparse
import sys

from . import __version__
from .commands import COMMANDS
from .errors import VitscaleError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vitscale", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"vitscale {__version__}")
    parser.add_argument("--log-all-ranks", action="store_true",
                        help="every rank logs (default: rank 0 only)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING"],
                        help="log level of vitscale's messages (default INFO)")
    # `vitscale run` starts `main` in each rank; the commands sit below this module.
    parser.set_defaults(main=main)
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .logs import setup_logging
    setup_logging(all_ranks=args.log_all_ranks, level=args.log_level)
    from .train.trainer import Interrupted
    try:
        return args.func(args)
    except Interrupted as e:
        print(f"vitscale: {e}", file=sys.stderr)
        return 128 + e.signum
    except VitscaleError as e:
        print(f"vitscale: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("vitscale: interrupted", file=sys.stderr)
        return 130
