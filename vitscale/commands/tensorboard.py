"""`vitscale tensorboard RUN_DIR [--port P]`: serve the run's TensorBoard events on localhost."""

from __future__ import annotations

import sys
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("tensorboard", help="serve a run's TensorBoard on localhost")
    p.add_argument("run_dir")
    p.add_argument("--port", type=int, default=6006)
    p.add_argument("--host", default="127.0.0.1", help="bind address (default: localhost only)")
    p.set_defaults(func=run)


def run(args) -> int:
    import os

    from ..errors import VitscaleError

    logdir = Path(args.run_dir) / "tensorboard"
    if not logdir.is_dir():
        raise VitscaleError(f"{logdir} does not exist: pass a run directory trained with "
                            "tensorboard = True (the default)")
    print(f"TensorBoard for {args.run_dir}: http://{args.host}:{args.port}/", flush=True)
    # Become the TensorBoard process, so that Ctrl-C and kill reach the server itself.
    os.execv(sys.executable, [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir),
                              "--host", args.host, "--port", str(args.port)])
