"""`vitscale run`: start a vitscale command on N processes per node, on one node or many.

One node: the processes are started by torchrun's own machinery (torch.distributed.run), which
sets RANK/WORLD_SIZE/LOCAL_RANK/MASTER_* for each and stops them all when one fails.

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
import os
import re
import shlex
import subprocess
import sys
import threading
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


def run_local(command: list[str], nproc: int, nnodes: int = 1, node_rank: int = 0,
              master_addr: str | None = None, master_port: int | None = None) -> int:
    """torchrun this node's `nproc` processes of `python -m vitscale <command>`."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    argv = [f"--nproc-per-node={nproc}"]
    if nnodes == 1 and master_addr is None and master_port is None:
        argv.append("--standalone")  # a free port on localhost
    else:
        argv += [f"--nnodes={nnodes}", f"--node-rank={node_rank}",
                 f"--master-addr={master_addr or '127.0.0.1'}",
                 f"--master-port={master_port or 29500}"]
    argv += ["-m", "vitscale", *command]
    if nnodes > 1:
        log.info(f"node {node_rank} of {nnodes}, {nproc} processes, master "
                 f"{master_addr}:{master_port}")
    try:
        run(get_args_parser().parse_args(argv))
    except ChildFailedError as e:
        rank, first = min(e.failures.items(), key=lambda item: item[1].timestamp)
        log.error(f"rank {rank} exited with {first.exitcode}; all processes on this node "
                  "were stopped")
        return first.exitcode if first.exitcode and first.exitcode > 0 else 1
    return 0


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
