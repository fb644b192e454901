"""Which launcher started this process, and what rank it is (seeds 000-003 launch four ways).

| launcher  | rank / world / local rank                                          | master address and port |
|-----------|--------------------------------------------------------------------|-------------------------|
| torchrun  | RANK, WORLD_SIZE, LOCAL_RANK                                       | MASTER_ADDR, MASTER_PORT |
| slurm     | SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID (SLURM_NODEID)           | --host, else the first node of SLURM_JOB_NODELIST; --port, else MASTER_PORT, else 29500 |
| openmpi   | OMPI_COMM_WORLD_RANK, OMPI_COMM_WORLD_SIZE, OMPI_COMM_WORLD_LOCAL_RANK | --host (or MASTER_ADDR); --port, else MASTER_PORT, else 29500 |
| explicit  | --rank, --world-size, --local-rank                                 | --host, --port |

Detection is automatic in the order explicit flags, torchrun, SLURM, OpenMPI; `--launcher`
forces one. No launcher means one process. The backend is nccl on GPUs and gloo on CPUs
unless --backend says otherwise.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass

from ..errors import VitscaleError

LAUNCHERS = ("torchrun", "slurm", "openmpi", "explicit")
DEFAULT_PORT = 29500


class LaunchError(VitscaleError):
    """The launch environment is incomplete or contradictory."""


@dataclass(frozen=True)
class LaunchInfo:
    launcher: str           # one of LAUNCHERS, or 'single'
    rank: int
    world_size: int
    local_rank: int
    master_addr: str
    master_port: int
    backend: str

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _int(env: dict, name: str, launcher: str) -> int:
    value = env.get(name)
    if value is None:
        raise LaunchError(f"--launcher {launcher}: ${name} is not set: start the command "
                          f"with {launcher} or choose another --launcher")
    try:
        return int(value)
    except ValueError:
        raise LaunchError(f"${name}={value!r} is not an integer") from None


def first_slurm_host(nodelist: str) -> str:
    """The first host of a SLURM node list: 'gpu[03-05,9],login1' -> 'gpu03',
    'r[1-2]-n[01-04]' -> 'r1-n01' (every bracket of the first entry at its first value)."""
    try:  # scontrol knows every form of the syntax
        out = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True,
                             text=True, timeout=10)
        if out.returncode == 0 and out.stdout.split():
            return out.stdout.split()[0]
    except (OSError, subprocess.TimeoutExpired):
        pass
    first = re.split(r",(?![^\[]*\])", nodelist)[0]
    return re.sub(r"\[([^\]]+)\]", lambda m: m.group(1).split(",")[0].split("-")[0], first)


def _port(value, env: dict) -> int:
    port = value if value is not None else env.get("MASTER_PORT", DEFAULT_PORT)
    try:
        port = int(port)
    except ValueError:
        raise LaunchError(f"port {port!r} is not a number: pass --port 29500") from None
    if not 0 < port < 65536:
        raise LaunchError(f"port {port} is out of range: pass --port between 1 and 65535")
    return port


def detect_launch(*, launcher: str | None = None, rank: int | None = None,
                  world_size: int | None = None, local_rank: int | None = None,
                  host: str | None = None, port: int | None = None, backend: str | None = None,
                  env: dict | None = None, cuda: bool | None = None) -> LaunchInfo:
    env = dict(os.environ if env is None else env)
    if cuda is None:
        import torch
        cuda = torch.cuda.is_available()
    backend = backend or ("nccl" if cuda else "gloo")
    if launcher is None:
        if rank is not None or world_size is not None:
            launcher = "explicit"
        elif "RANK" in env and "WORLD_SIZE" in env:
            launcher = "torchrun"
        elif "SLURM_PROCID" in env and "SLURM_NTASKS" in env:
            launcher = "slurm"
        elif "OMPI_COMM_WORLD_RANK" in env:
            launcher = "openmpi"
        else:
            return LaunchInfo("single", 0, 1, 0, host or "127.0.0.1", _port(port, env), backend)
    if launcher == "explicit":
        if rank is None or world_size is None:
            raise LaunchError("explicit launch needs both --rank and --world-size (and --host, "
                              "--port): e.g. --rank 0 --world-size 2 --host node0 --port 29500")
        local = local_rank if local_rank is not None else rank
        addr = host or env.get("MASTER_ADDR")
    elif launcher == "torchrun":
        rank, world_size = _int(env, "RANK", launcher), _int(env, "WORLD_SIZE", launcher)
        local = _int(env, "LOCAL_RANK", launcher) if "LOCAL_RANK" in env else 0
        addr = env.get("MASTER_ADDR") or host
        port = port if port is not None else env.get("MASTER_PORT")
    elif launcher == "slurm":
        rank, world_size = _int(env, "SLURM_PROCID", launcher), _int(env, "SLURM_NTASKS", launcher)
        local = int(env.get("SLURM_LOCALID", 0))
        addr = host or env.get("MASTER_ADDR") or (
            first_slurm_host(env["SLURM_JOB_NODELIST"]) if env.get("SLURM_JOB_NODELIST") else None)
    elif launcher == "openmpi":
        rank = _int(env, "OMPI_COMM_WORLD_RANK", launcher)
        world_size = _int(env, "OMPI_COMM_WORLD_SIZE", launcher)
        local = int(env.get("OMPI_COMM_WORLD_LOCAL_RANK", 0))
        addr = host or env.get("MASTER_ADDR")
    else:
        raise LaunchError(f"--launcher {launcher}: choose one of {', '.join(LAUNCHERS)}")
    if world_size < 1 or not 0 <= rank < world_size:
        raise LaunchError(f"rank {rank} is not in 0..{world_size - 1} (world size {world_size}): "
                          "fix --rank/--world-size or the launcher's variables")
    if world_size > 1 and not addr:
        raise LaunchError(f"{launcher} launch of {world_size} processes needs the master's "
                          "address: pass --host HOSTNAME (the node of rank 0) and --port")
    return LaunchInfo(launcher, rank, world_size, local, addr or "127.0.0.1", _port(port, env),
                      backend)
