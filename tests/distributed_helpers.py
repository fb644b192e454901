"""Helpers for tests that start real processes: free ports, a private sshd on loopback."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_sshd(workdir: Path) -> tuple[subprocess.Popen, int, list[str]]:
    """An sshd on 127.0.0.1 and 127.0.0.2 (two "hosts" on one machine) that accepts a fresh key.

    Returns (process, port, ssh -o options for the client).
    """
    if not os.path.exists(SSHD):
        raise RuntimeError("sshd is not installed: .ci/run installs it (Debian package "
                           "openssh-server); locally: apt-get install openssh-server")
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
