"""Disk cache of decoded datasets: decode JPEGs once, then load a uint8 tensor in a second.

Files live in $VITSCALE_CACHE (default ~/.cache/vitscale). They are written to a temporary
name and renamed, so an interrupted run never leaves a half-written cache behind, and read with
torch.load(weights_only=True), which cannot execute code.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

from ..atomic import atomic_write


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
