"""The run directory: everything a run leaves behind, readable without vitscale.

    runs/<name>/
      config.py       the resolved config as a config file: `vitscale train` it to reproduce
      config.json     the same, machine-readable, plus the derived plan
      metrics.jsonl   one JSON object per logged train interval and per evaluation
      summary.json    best and final accuracy, epochs, wall time, device, versions (at the end)
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from .hooks import Hook


def default_run_dir(config_path: str | os.PathLike, root: str | os.PathLike = "runs") -> Path:
    """runs/<config name>, or runs/<config name>-2, -3, ... if that one is taken."""
    base = Path(root) / Path(config_path).stem
    candidate, n = base, 1
    while candidate.exists() and any(candidate.iterdir()):
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def write_json_atomic(path: Path, payload: dict) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(payload, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


class RunFiles(Hook):
    """Writes the run directory's files (created at run start, never before)."""

    def __init__(self, run_dir: str | os.PathLike):
        self.run_dir = Path(run_dir)
        self.metrics = None

    def on_run_start(self, trainer) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "config.py").write_text(trainer.cfg.to_python())
        write_json_atomic(self.run_dir / "config.json",
                          {"config": trainer.cfg.to_dict(), "plan": trainer.engine.plan.derived(),
                           "num_parameters": trainer.engine.num_parameters,
                           "environment": trainer.environment})
        self.metrics = open(self.run_dir / "metrics.jsonl", "a", buffering=1)

    def _write(self, record: dict) -> None:
        self.metrics.write(json.dumps(record) + "\n")

    def on_step_end(self, trainer, output) -> None:
        if trainer.log_record is not None:
            self._write(trainer.log_record)

    def on_eval_end(self, trainer, record: dict) -> None:
        self._write(record)

    def on_run_end(self, trainer, summary: dict) -> None:
        self.metrics.close()
        write_json_atomic(self.run_dir / "summary.json", summary)
