"""Failure propagation: when a rank dies, fails or hangs, every rank exits within a bound and
says which rank it was (Colossal-AI users report silent hangs, e.g. its issue #1795: a
pipeline run stuck at iteration 12 across 2 nodes).

Three mechanisms, all bounded by `dist_timeout` seconds:

  * a failing rank (any exception) writes `vitscale/failed` = "rank R: <message>" into the
    process group's key-value store before it exits; the others poll that key;
  * each rank bumps a heartbeat counter in the store every `interval` seconds; rank 0 watches
    all counters, every other rank watches rank 0's. A counter that stops moving for
    `dist_timeout` seconds means that process is gone (killed, OOM, lost node): the watcher
    records it as the failure and exits. A store that stops answering means rank 0 (which
    hosts it) is gone;
  * a collective that waits longer than `dist_timeout` (a rank alive but stuck) raises in
    torch; the message then names the ranks whose step count is behind the others'.

A watcher that finds a failure logs `... stopping rank R` (on every rank: only this rank
knows) and leaves with os._exit(1):
a rank blocked inside a collective cannot be unwound any other way.
"""

from __future__ import annotations

import logging
import os
import threading
import time

import torch.distributed as dist

from ..logs import EVERY_RANK

log = logging.getLogger(__name__)

_PREFIX = "vitscale/"
_active: "Watchdog | None" = None


def _store():
    return dist.distributed_c10d._get_default_store()


class Watchdog(threading.Thread):
    def __init__(self, rank: int, world: int, timeout: float):
        super().__init__(name="vitscale-watchdog", daemon=True)
        self.rank, self.world, self.timeout = rank, world, timeout
        self.interval = max(0.5, min(5.0, timeout / 10))
        self.store = _store()
        self.step = 0
        self.stopping = threading.Event()
        watched = range(world) if rank == 0 else [0]
        self.seen = {r: (None, time.monotonic()) for r in watched if r != rank}

    # ---- the thread ---------------------------------------------------------------------

    def run(self) -> None:
        while not self.stopping.wait(self.interval):
            try:
                self.store.add(f"{_PREFIX}beat/{self.rank}", 1)
                self.store.set(f"{_PREFIX}step/{self.rank}", str(self.step))
                if self.store.check([f"{_PREFIX}failed"]):
                    self._exit(self.store.get(f"{_PREFIX}failed").decode())
                now = time.monotonic()
                for r, (count, since) in self.seen.items():
                    current = self.store.add(f"{_PREFIX}beat/{r}", 0)
                    if current != count:
                        self.seen[r] = (current, now)
                    elif now - since > self.timeout:
                        self.fail(r, f"rank {r} stopped responding (no heartbeat for "
                                     f"{now - since:.0f} s: killed, out of memory or lost)")
            except Exception:  # the store is gone: rank 0, which hosts it, is gone
                if self.stopping.is_set():
                    return
                self._exit("rank 0 stopped responding (its rendezvous store is unreachable: "
                           "killed, out of memory or lost)")

    def fail(self, rank: int, message: str) -> None:
        try:
            self.store.compare_set(f"{_PREFIX}failed", "", message)
            message = self.store.get(f"{_PREFIX}failed").decode()  # the first report wins
        except Exception:
            pass
        self._exit(message)

    def _exit(self, message: str) -> None:
        if self.stopping.is_set():
            return
        log.error(f"{message}; stopping rank {self.rank}", extra=EVERY_RANK)
        for handler in logging.getLogger("vitscale").handlers:
            handler.flush()  # os._exit skips the interpreter's flushing
        os._exit(1)

    # ---- used by the main thread ---------------------------------------------------------

    def diagnose(self, error: BaseException) -> str:
        """After a collective failed: wait (bounded) for the failure report, else name laggards."""
        deadline = time.monotonic() + self.timeout + 2 * self.interval
        while time.monotonic() < deadline:
            try:
                if self.store.check([f"{_PREFIX}failed"]):
                    return self.store.get(f"{_PREFIX}failed").decode()
            except Exception:
                return "rank 0 stopped responding (its rendezvous store is unreachable)"
            time.sleep(self.interval / 2)
        try:
            steps = {r: int(self.store.get(f"{_PREFIX}step/{r}")) for r in range(self.world)
                     if self.store.check([f"{_PREFIX}step/{r}"])}
        except Exception:
            steps = {}
        if steps and min(steps.values()) < max(steps.values()):
            behind = sorted(r for r, s in steps.items() if s < max(steps.values()))
            return (f"rank(s) {', '.join(map(str, behind))} fell behind (step "
                    f"{min(steps.values())} vs {max(steps.values())}) and a collective timed "
                    f"out: {type(error).__name__}: {error}")
        return f"a collective failed on rank {self.rank}: {type(error).__name__}: {error}"


def start(rank: int, world: int, timeout: float) -> Watchdog | None:
    global _active
    try:
        _active = Watchdog(rank, world, timeout)
    except Exception:  # no key-value store to watch (should not happen with torch >= 2.6)
        return None
    _active.start()
    return _active


def active() -> Watchdog | None:
    return _active


def note_step(step: int) -> None:
    if _active is not None:
        _active.step = step


_COMMUNICATION_MARKERS = ("connection closed", "connection reset", "timed out", "timeout",
                          "gloo", "nccl", "broken pipe", "peer")


def _is_communication_error(error: BaseException) -> bool:
    """A collective that failed because of another rank, rather than this rank's own error."""
    if isinstance(error, dist.DistError):
        return True
    return isinstance(error, RuntimeError) and any(
        m in str(error).lower() for m in _COMMUNICATION_MARKERS)


def report_failure(error: BaseException) -> str:
    """Called on a failing rank: publish the failure (or learn whose it was); the message."""
    if _active is None:
        return f"{type(error).__name__}: {error}"
    if _is_communication_error(error):
        message = _active.diagnose(error)
    else:
        message = f"rank {_active.rank} failed: {type(error).__name__}: {error}"
    try:
        _active.store.compare_set(f"{_PREFIX}failed", "", message)
    except Exception:
        pass
    _active.stopping.set()
    return message


def stop() -> None:
    global _active
    if _active is not None:
        _active.stopping.set()
        _active = None
