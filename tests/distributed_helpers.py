"""Helpers for tests that start real processes: free ports, a private sshd on loopback, and the
system programs some tests need.

A test whose system program is missing (a fresh machine without openssh-server) is skipped
with the package to install; CI (.ci/run) installs them and sets
VITSCALE_REQUIRE_SYSTEM_PACKAGES=1, which turns such a skip into a failure."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_parity_batch(cifar_folder: Path, path: Path) -> Path:
    """32 real CIFAR-10 training images of every class, normalised as training does, saved
    as (images, labels) for the parity workers."""
    import torch

    from vitscale.data import DATASETS, load_splits
    train, _ = load_splits("cifar10", cifar_folder)
    order = torch.randperm(len(train.labels), generator=torch.Generator().manual_seed(0))[:32]
    info = DATASETS["cifar10"]
    images = train.images[order].float() / 255
    images = (images - torch.tensor(info.mean)[:, None, None]) / torch.tensor(info.std)[:, None, None]
    torch.save((images.contiguous(), train.labels[order].long()), path)
    return path


def launch_workers(worker: str, nproc: int, cases: dict, batch: Path, out_dir: Path,
                   timeout: int = 1200) -> dict:
    """torchrun `nproc` processes of tests/`worker` over `cases` (name -> overrides); each
    case's results as the worker wrote them (one launch pays the start-up for many cases)."""
    repo = Path(__file__).resolve().parents[1]
    cases_file, out = out_dir / f"cases{nproc}.json", out_dir / f"results{nproc}.json"
    cases_file.write_text(json.dumps(cases))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(repo)}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone",
         f"--nproc-per-node={nproc}", str(repo / "tests" / worker),
         "--batch", str(batch), "--out", str(out), "--cases", str(cases_file)],
        capture_output=True, text=True, timeout=timeout, env=env, cwd=repo)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    return json.loads(out.read_text())


def require_program(path: str, package: str) -> None:
    """Skip the calling test when `path` (a program name or absolute path) is missing."""
    if (os.path.exists(path) if os.path.isabs(path) else shutil.which(path)):
        return
    reason = (f"{path} is not installed: apt-get install {package} (.ci/run installs it and "
              "sets VITSCALE_REQUIRE_SYSTEM_PACKAGES=1, under which this is a failure)")
    if os.environ.get("VITSCALE_REQUIRE_SYSTEM_PACKAGES") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def start_sshd(workdir: Path) -> tuple[subprocess.Popen, int, list[str]]:
    """An sshd on 127.0.0.1 and 127.0.0.2 (two "hosts" on one machine) that accepts a fresh key.

    Returns (process, port, ssh -o options for the client).
    """
    require_program(SSHD, "openssh-server")
    for program in ("ssh", "ssh-keygen"):
        require_program(program, "openssh-client")
    workdir.mkdir(parents=True, exist_ok=True)
    for name in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(workdir / name)],
                       check=True)
    (workdir / "authorized_keys").write_text((workdir / "client_key.pub").read_text())
    os.chmod(workdir / "authorized_keys", 0o600)
    port = free_port()
    config = workdir / "sshd_config"
    config.write_text("\n".join([
        f"Port {port}", "ListenAddress 127.0.0.1", "ListenAddress 127.0.0.2",
        f"HostKey {workdir / 'host_key'}", f"AuthorizedKeysFile {workdir / 'authorized_keys'}",
        f"PidFile {workdir / 'sshd.pid'}", "PasswordAuthentication no",
        "KbdInteractiveAuthentication no", "UsePAM no", "StrictModes no",
        "PermitRootLogin prohibit-password", "PermitUserEnvironment no", ""]))
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(exist_ok=True)  # privilege separation directory
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=subprocess.DEVNULL,
                            stderr=open(workdir / "sshd.log", "w"))
    options = [f"IdentityFile={workdir / 'client_key'}", "StrictHostKeyChecking=no",
               "UserKnownHostsFile=/dev/null", "LogLevel=ERROR", "IdentitiesOnly=yes"]
    deadline = time.time() + 30
    while time.time() < deadline:
        probe = subprocess.run(["ssh", "-p", str(port), *sum((["-o", o] for o in options), []),
                                "-o", "BatchMode=yes", "127.0.0.2", "true"],
                               capture_output=True, timeout=30)
        if probe.returncode == 0:
            return proc, port, options
        if proc.poll() is not None:
            break
        time.sleep(0.3)
    proc.terminate()
    raise RuntimeError(f"sshd did not accept a login: {(workdir / 'sshd.log').read_text()}")
