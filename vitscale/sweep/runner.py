"""Run a sweep: every point of the grid as a normal `vitscale train` run in its own process
and run directory, one after another on one device, or several at once over the GPUs (one GPU
each, through CUDA_VISIBLE_DEVICES). A finished run appends its record to the results file;
a run whose record is already there is skipped, and an interrupted run resumes from its last
checkpoint, so the same command continues an interrupted sweep.

Every point is loaded and planned before the first run starts: a bad key or value stops the
sweep with one line, having run nothing. A run that fails is reported with the last line of its
log (<run dir>/sweep.log) and the sweep goes on; the command then exits non-zero.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..config import Config, load_config
from ..plan import make_plan
from .grid import Point, expand_grid
from .results import append_record, build_record, read_results, run_id, source_commit

log = logging.getLogger(__name__)


@dataclass
class Run:
    point: Point
    cfg: Config
    overrides: list[str]    # the --set options of this run (the sweep's, the grid's, SEED)
    seed: int
    id: str
    run_dir: Path

    def label(self) -> str:
        return f"{self.point.label()} seed={self.seed}"


@dataclass
class Outcome:
    done: list[Run] = field(default_factory=list)
    skipped: list[Run] = field(default_factory=list)
    failed: list[tuple[Run, str]] = field(default_factory=list)   # (run, reason)


def _slug(point: Point) -> str:
    text = "_".join(f"{k}={v}" for k, v in point.values) or "base"
    return re.sub(r"[^A-Za-z0-9._=+-]+", "-", text).strip("-")[:80]


def plan_runs(config_file: str, grid: list[str], repeats: int, sets: list[str],
              out_dir: Path) -> list[Run]:
    """Load and plan every run of the grid (bad input raises ConfigError here)."""
    runs = []
    for point in expand_grid(grid, repeats):
        base = load_config(config_file, [*sets, *point.overrides()])
        seed = base.SEED + point.repeat
        overrides = [*sets, *point.overrides(), f"SEED={seed}"]
        cfg = load_config(config_file, overrides) if point.repeat else base
        make_plan(cfg)  # every cross-key check, before any run starts
        rid = run_id(cfg)
        runs.append(Run(point, cfg, overrides, seed, rid,
                        out_dir.resolve() / "runs" / f"{_slug(point)}-seed{seed}-{rid[:6]}"))
    return runs


def _command(run: Run, config_file: str, data: str | None, device: str | None) -> list[str]:
    cmd = [sys.executable, "-m", "vitscale", "train", config_file, "--run-dir", str(run.run_dir),
           "--no-progress"]
    for item in run.overrides:
        cmd += ["--set", item]
    if data:
        cmd += ["--data", str(data)]
    if device:
        cmd += ["--device", device]
    return cmd


def _last_line(path: Path) -> str:
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no log"
    return lines[-1] if lines else "empty log"


@dataclass
class _Active:
    run: Run
    index: int
    proc: subprocess.Popen
    start: float
    log_file: object
    slot: str | None    # the GPU index it runs on, None without GPUs


def run_sweep(runs: list[Run], results: Path, config_file: str, *, data: str | None = None,
              device: str | None = None, gpus: list[str] | None = None, jobs: int = 1,
              echo=print) -> Outcome:
    """Run `runs` not yet in `results`; `gpus` (CUDA indices) gives each run its own GPU."""
    outcome = Outcome()
    recorded = {r.get("id") for r in read_results(results)}
    seen: set[str] = set()
    todo: list[tuple[int, Run]] = []
    for i, run in enumerate(runs, 1):
        why = ("already in " + str(results) if run.id in recorded else
               "same resolved config as an earlier point" if run.id in seen else None)
        if why:
            outcome.skipped.append(run)
            echo(f"[{i}/{len(runs)}] {run.label()}: skipped, {why}")
        else:
            seen.add(run.id)
            todo.append((i, run))
    free: list[str | None] = ([gpus[k % len(gpus)] for k in range(jobs)] if gpus
                              else [None] * jobs)   # one slot per concurrent run
    active: list[_Active] = []
    commit = source_commit()
    try:
        while todo or active:
            while todo and free:
                i, run = todo.pop(0)
                active.append(_start(run, i, len(runs), free.pop(0), config_file, data, device,
                                     echo))
            for job in [j for j in active if j.proc.poll() is not None]:
                active.remove(job)
                free.append(job.slot)
                _finish(job, len(runs), results, config_file, commit, outcome, echo)
            if active:
                time.sleep(0.5)
    except KeyboardInterrupt:
        # Every run saves a checkpoint at its next step and stops; the same command resumes.
        for job in active:
            if job.proc.poll() is None:
                job.proc.send_signal(signal.SIGTERM)
        for job in active:
            job.proc.wait()
            job.log_file.close()
        raise
    return outcome


def _start(run: Run, index: int, total: int, slot: str | None, config_file: str, data, device,
           echo) -> _Active:
    run.run_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    where = ""
    if slot is not None:
        env["CUDA_VISIBLE_DEVICES"] = slot
        where = f" on GPU {slot}"
    log_file = open(run.run_dir / "sweep.log", "a")
    echo(f"[{index}/{total}] {run.label()}: running{where} in {run.run_dir}")
    log.debug("sweep run %s: %s", run.id, " ".join(_command(run, config_file, data, device)))
    proc = subprocess.Popen(_command(run, config_file, data, device), stdout=log_file,
                            stderr=subprocess.STDOUT, env=env)
    return _Active(run, index, proc, time.perf_counter(), log_file, slot)


def _finish(job: _Active, total: int, results: Path, config_file: str, commit, outcome: Outcome,
            echo) -> None:
    job.log_file.close()
    run, seconds = job.run, time.perf_counter() - job.start
    head = f"[{job.index}/{total}] {run.label()}:"
    if job.proc.returncode != 0:
        reason = (f"exit {job.proc.returncode}: {_last_line(run.run_dir / 'sweep.log')} "
                  f"(log: {run.run_dir / 'sweep.log'})")
        outcome.failed.append((run, reason))
        echo(f"{head} FAILED, {reason}")
        return
    record = build_record(cfg=run.cfg, config_file=config_file, point=run.point, seed=run.seed,
                          run_dir=run.run_dir, process_seconds=seconds, commit=commit)
    append_record(results, record)
    outcome.done.append(run)
    speed = f", {record['images_per_s']:.0f} img/s" if record["images_per_s"] else ""
    echo(f"{head} best {record['test_split']} acc1 {record['best_test_acc1']:.2f}%, final "
         f"{record['final_test_acc1']:.2f}%, {record['num_parameters'] / 1e6:.3f}M params, "
         f"{record['wall_seconds']:.1f} s{speed}")
