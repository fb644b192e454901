"""Disk cache of decoded datasets: decode JPEGs once, then load a uint8 tensor in a second.

Files live in $VITSCALE_CACHE (default ~/.cache/vitscale). They are written to a temporary
name and renamed, so an interrupted run never leaves a half-written cache behind, and read with
torch.load(weights_only=True), which cannot execute code.

An entry is built by one process at a time (`building`): the ranks of a node that start
together on a cold cache would otherwise each decode the whole dataset (8 ranks on 2 cores:
8 times the work, 16 decoding workers). The first takes the entry's lock and builds it; the
others wait on the lock, then read what it wrote.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from ..atomic import atomic_write

try:
    import fcntl
except ImportError:  # not POSIX: no lock; each process builds its own copy (slower, correct)
    fcntl = None

log = logging.getLogger(__name__)


def cache_dir() -> Path:
    return Path(os.environ.get("VITSCALE_CACHE", Path.home() / ".cache" / "vitscale"))


def fingerprint(paths: list[Path]) -> str:
    """A key that changes when any source file or folder is replaced or modified."""
    h = hashlib.sha1()
    for p in sorted(paths):
        st = p.stat()
        h.update(f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def load(name: str) -> dict | None:
    path = cache_dir() / name
    if not path.is_file():
        return None
    try:
        return torch.load(path, weights_only=True)
    except Exception:  # a corrupt cache is rebuilt, never trusted
        return None


def save(name: str, payload: dict) -> None:
    directory = cache_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        atomic_write(directory / name, lambda tmp: torch.save(payload, tmp))
    except OSError:
        return  # a read-only or full cache folder costs speed, not correctness


@contextmanager
def building(name: str, what: str) -> Iterator[bool]:
    """Hold the lock of cache entry `name` while building it (an flock on a file beside it,
    released by the OS if this process dies); yields whether it is held. Callers look for the
    entry again inside: a process that waited finds it built. Without a writable cache folder
    or on a system without flock there is no lock (False)."""
    directory = cache_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        handle = open(directory / f".{name}.lock", "a")
    except OSError:
        handle = None
    if handle is None or fcntl is None:
        yield False
        return
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("another process is preparing %s in %s: waiting for it", what, directory)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
