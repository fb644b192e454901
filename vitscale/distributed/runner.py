"""`vitscale run`: start a vitscale command on N processes per node, on one node or many.

One node: the processes are started by torchrun's own machinery (torch.distributed.run), which
sets RANK/WORLD_SIZE/LOCAL_RANK/MASTER_* for each and stops them all when one fails. They are
forked from one forkserver that imported torch and vitscale once (torchrun's function
entrypoint with start method "forkserver"), not started as N fresh interpreters that each
import them: that import is ~3 CPU-seconds, so 8 ranks on 2 cores waited ~12 s for it. The
forkserver is a fresh interpreter, not a fork of this process, and imports without touching
CUDA, so each rank initialises its own device as a spawned one would.

Several nodes (--hostfile): the same `vitscale run` is started on every host over SSH with its
node rank, from the same working directory, with the environment variables that matter
(PATH, PYTHONPATH, VIRTUAL_ENV, DATA, VITSCALE_*, NCCL_*, GLOO_*, TORCH_*, CUDA_VISIBLE_DEVICES,
OMP_NUM_THREADS, LD_LIBRARY_PATH). Output is streamed with a `[host]` prefix. When one host
fails, or on Ctrl-C, every host's processes are stopped: each host's `vitscale run` reports its
process id first, and exactly that process gets SIGTERM (its node agent stops its workers),
then the SSH connections are closed. Hosts need passwordless SSH and the same paths (as with Colossal-AI's `colossalai
run` and DeepSpeed's launcher).

Hostfile: one host per line (`node01`, `node02 slots=8`); `#` starts a comment.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import re
import shlex
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from ..errors import VitscaleError
from .launch import LaunchError

log = logging.getLogger(__name__)

# The first line a host's `vitscale run` writes: its process id, the one process to stop.
PID_LINE = "vitscale-run-pid "

FORWARDED = re.compile(r"^(PATH|PYTHONPATH|VIRTUAL_ENV|DATA|LD_LIBRARY_PATH|OMP_NUM_THREADS|"
                       r"CUDA_VISIBLE_DEVICES|VITSCALE_\w+|NCCL_\w+|GLOO_\w+|TORCH_\w+)$")


def read_hostfile(path: str | os.PathLike, include: str | None = None,
                  exclude: str | None = None) -> list[str]:
    path = Path(path)
    if not path.is_file():
        raise LaunchError(f"hostfile {path} does not exist: write one host per line")
    hosts = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        host = line.split()[0]
        if host in hosts:
            raise LaunchError(f"{path}:{number}: host {host} is listed twice: list each host once")
        hosts.append(host)
    if include and exclude:
        raise LaunchError("--include and --exclude exclude each other: give one")
    if include:
        wanted = include.split(",")
        unknown = [h for h in wanted if h not in hosts]
        if unknown:
            raise LaunchError(f"--include {','.join(unknown)}: not in {path}")
        hosts = [h for h in hosts if h in wanted]
    if exclude:
        hosts = [h for h in hosts if h not in exclude.split(",")]
    if not hosts:
        raise LaunchError(f"{path} leaves no host to run on (after --include/--exclude)")
    return hosts


# What every rank imports, loaded once by the forkserver the ranks are forked from.
PRELOAD = ["torch", "torch.distributed.tensor", "torch.distributed.checkpoint",
           "torch.distributed.fsdp", "torch.distributed.pipelining", "torch._dynamo",
           "vitscale.cli", "vitscale.commands.train", "vitscale.train.trainer"]


def run_local(command: list[str], nproc: int, main: Callable[[list[str]], int], nnodes: int = 1,
              node_rank: int = 0, master_addr: str | None = None,
              master_port: int | None = None) -> int:
    """torchrun this node's `nproc` processes of `vitscale <command>`: `main(command)` in
    each, where `main` is the CLI's entry point (cli.main, handed down: this layer is below
    the CLI)."""
    import uuid

    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import elastic_launch
    from torch.distributed.run import config_from_args, get_args_parser

    argv = [f"--nproc-per-node={nproc}"]
    if nnodes == 1 and master_addr is None and master_port is None:
        # torchrun's --standalone: a c10d rendezvous on a free port of localhost
        argv += ["--rdzv-backend=c10d", "--rdzv-endpoint=localhost:0",
                 f"--rdzv-id={uuid.uuid4()}"]
    else:
        argv += [f"--nnodes={nnodes}", f"--node-rank={node_rank}",
                 f"--master-addr={master_addr or '127.0.0.1'}",
                 f"--master-port={master_port or 29500}"]
    # (`-m vitscale <command>` completes torchrun's command line; the ranks call `main`.)
    args = get_args_parser().parse_args([*argv, "-m", "vitscale", *command])
    args.master_port = args.master_port or 29500
    # torchrun's configuration (OMP_NUM_THREADS=1 with several processes, as torchrun sets
    # it), with the ranks started as a function from the forkserver.
    config, _, _ = config_from_args(args)
    config.start_method = "forkserver"
    multiprocessing.set_forkserver_preload(PRELOAD)
    logging.getLogger("torch.distributed.elastic.multiprocessing.api").addFilter(_no_traceback)
    if nnodes > 1:
        log.info(f"node {node_rank} of {nnodes}, {nproc} processes, master "
                 f"{master_addr}:{master_port}")
    try:
        elastic_launch(config, entrypoint=run_rank)(main, list(command))
    except ChildFailedError as e:
        rank, first = min(e.failures.items(), key=lambda item: item[1].timestamp)
        log.error(f"rank {rank} exited with {first.exitcode}; all processes on this node "
                  "were stopped")
        return first.exitcode if first.exitcode and first.exitcode > 0 else 1
    return 0


def _no_traceback(record: logging.LogRecord) -> bool:
    """torchrun logs a failed function rank with the launcher's own traceback (where it
    noticed the exit), which says nothing about the failure: the line stays, that goes. The
    rank printed its error; run_local names the rank and its exit code."""
    record.exc_info, record.exc_text = None, None
    return True


def run_rank(main: Callable[[list[str]], int], command: list[str]) -> None:
    """One rank: `main(command)` in this process, forked from the forkserver with the
    rank's RANK/LOCAL_RANK/WORLD_SIZE/MASTER_* set. A non-zero exit code ends the process
    with it (torchrun then stops the other ranks); success returns (torchrun collects each
    rank's return value before it lets the process end)."""
    # What `python -u` gave a spawned rank: each line reaches a pipe as it is written.
    sys.stdout.reconfigure(line_buffering=True)
    # A process started by a forkserver inherits "forkserver" as its start method; the rank's
    # own workers (DataLoader, decoding) start the way a spawned rank's did, the platform's
    # default, which needs no pickling of their dataset.
    multiprocessing.set_start_method(None, force=True)
    code = main(command)
    if code:
        sys.exit(code)


def _stream(proc: subprocess.Popen, host: str, pids: dict[str, int]) -> None:
    for line in proc.stdout:
        if line.startswith(PID_LINE) and host not in pids:
            pids[host] = int(line[len(PID_LINE):])
            continue
        sys.stdout.write(f"[{host}] {line}")
        sys.stdout.flush()


def run_hosts(command: list[str], hosts: list[str], nproc: int, master_addr: str | None,
              master_port: int, ssh_port: int | None = None,
              ssh_options: list[str] = ()) -> int:
    """Start `vitscale run` on every host over SSH; stop them all when one fails."""
    master = master_addr or hosts[0]
    ssh = ["ssh", "-o", "BatchMode=yes"]
    if ssh_port:
        ssh += ["-p", str(ssh_port)]
    for option in ssh_options:
        ssh += ["-o", option]
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(os.environ.items())
                   if FORWARDED.match(k) and "\n" not in v)
    procs: dict[str, subprocess.Popen] = {}
    pids: dict[str, int] = {}  # host -> its `vitscale run` (exec keeps the shell's $$)
    for rank, host in enumerate(hosts):
        remote = (f"echo {PID_LINE}$$ && cd {shlex.quote(os.getcwd())} && exec env {env} "
                  f"{shlex.quote(sys.executable)} -m vitscale run --nproc-per-node {nproc} "
                  f"--nnodes {len(hosts)} --node-rank {rank} --master-addr {master} "
                  f"--master-port {master_port} -- "
                  + " ".join(shlex.quote(c) for c in command))
        procs[host] = subprocess.Popen([*ssh, host, remote], stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       text=True, bufsize=1)
        threading.Thread(target=_stream, args=(procs[host], host, pids), daemon=True).start()

    def stop_all(reason: str) -> None:
        log.error(f"{reason}: stopping every host")
        for host, pid in list(pids.items()):  # the node agents stop their workers on SIGTERM
            subprocess.run([*ssh, host, f"kill -TERM {pid}"],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
        for proc in procs.values():
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()

    try:
        pending = dict(procs)
        while pending:
            for host, proc in list(pending.items()):
                code = proc.poll()
                if code is None:
                    continue
                del pending[host]
                if code != 0:
                    stop_all(f"{host} failed with exit code {code}")
                    return code
            if pending:
                threading.Event().wait(0.2)
    except KeyboardInterrupt:
        stop_all("interrupted")
        return 130
    return 0


def check_command(command: list[str]) -> list[str]:
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise VitscaleError("vitscale run needs a vitscale command to run, e.g. "
                            "vitscale run --nproc-per-node 2 train configs/cifar10/quick_cpu.py")
    if command[0] in ("vitscale", "python", sys.executable):
        raise VitscaleError(f"give the vitscale subcommand without '{command[0]}': "
                            "vitscale run --nproc-per-node 2 train CONFIG ...")
    return command
