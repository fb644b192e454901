"""The results file of a sweep: one JSON object per finished run, one per line.

A record holds what it takes to compare and reproduce runs (seed 004's results file):

    id              hash of the resolved config: the run's identity (a rerun skips it)
    commit          `git describe`-style commit of the vitscale source, "-dirty" if modified
    config_file     the config the sweep ran; point: the grid's values; seed; repeat
    config          every resolved key (the model keys as the run resolved them)
    ffn, num_parameters, plan    the feed-forward sublayer, parameters, the run's derived values
    best_test_acc1, best_test_epoch, best_test_loss     best evaluation on the test split
    final_test_acc1, final_test_acc5, final_test_loss   the last evaluation
    wall_seconds    the run's own wall time; process_seconds: with start-up, as the sweep saw it
    images_per_s    median training throughput over the run's logged intervals
    device, torch_version, vitscale_version, finished_at, run_dir

Records are appended whole, one line per write, so a reader never sees half of one.
"""

from __future__ import annotations

import hashlib
import json
import statistics
import subprocess
import time
from pathlib import Path

from ..config import Config
from ..data.datasets import DATASETS
from ..errors import VitscaleError
from ..plan import FFN_KEYS

# Config keys of the model size -> ViTSize fields (the rest are in plan.FFN_KEYS).
_SIZE_FIELDS = {"IMG_SIZE": "img_size", "PATCH_SIZE": "patch", "HIDDEN_SIZE": "width",
                "DEPTH": "depth", "NUM_HEADS": "heads", "MLP_RATIO": "mlp_ratio",
                "NUM_CLASSES": "num_classes", "QKV_BIAS": "qkv_bias", **FFN_KEYS}


def run_id(cfg: Config) -> str:
    """The identity of a run: a hash of every key of its config (seed included)."""
    text = json.dumps(cfg.to_dict(), sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def resolved_config(config: dict, model: dict) -> dict:
    """A run's config dict with the model keys as the run resolved them (`model`: the ViTSize
    fields its export records), so MLP_RATIO or DEPTH from a MODEL name are there too."""
    out = dict(config)
    for key, name in _SIZE_FIELDS.items():
        if name in model:
            out[key] = model[name]
    return out


def read_results(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            pass  # a line cut by a crash mid-write: that run is simply run again
    return records


def append_record(path: str | Path, record: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(record, default=str) + "\n")


def source_commit() -> str | None:
    """The commit of the vitscale checkout that runs, '-dirty' when it has changes."""
    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=10", "HEAD"],
                              capture_output=True, text=True, timeout=30)
        if head.returncode:
            return None
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "-uno"],
                               capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("-dirty" if dirty else "")


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise VitscaleError(f"{path} is missing: the run did not finish writing its directory")
    return json.loads(path.read_text())


def build_record(*, cfg: Config, config_file: str, point, seed: int, run_dir: Path,
                 process_seconds: float, commit: str | None) -> dict:
    """The results record of a finished run, read from its run directory (what the run itself
    resolved: config.json, model_final.json, summary.json, metrics.jsonl)."""
    saved = _read_json(run_dir / "config.json")
    model = _read_json(run_dir / "model_final.json").get("model", {})
    summary = _read_json(run_dir / "summary.json")
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()
               if line.strip()]
    plan = saved.get("plan", {})
    info = DATASETS.get(plan.get("dataset"))
    split = info.eval_split if info else "test"
    evals = [r for r in metrics if r["split"] == split]
    train = [r for r in metrics if r["split"] == "train" and r.get("images_per_s")]
    best = max(evals, key=lambda r: r["acc1"]) if evals else {}
    final = evals[-1] if evals else {}
    return {
        "id": run_id(cfg), "commit": commit, "config_file": config_file,
        "point": dict(point.values), "seed": seed, "repeat": point.repeat,
        "ffn": plan.get("ffn"), "num_parameters": summary["num_parameters"],
        "test_split": split,
        "best_test_acc1": best.get("acc1"), "best_test_epoch": best.get("epoch"),
        "best_test_loss": best.get("loss"),
        "final_test_acc1": final.get("acc1"), "final_test_acc5": final.get("acc5"),
        "final_test_loss": final.get("loss"),
        "epochs": summary["epochs"], "steps": summary["steps"],
        "wall_seconds": summary["wall_seconds"], "process_seconds": process_seconds,
        "images_per_s": statistics.median(r["images_per_s"] for r in train) if train else None,
        "device": summary.get("device"), "torch_version": summary.get("torch_version"),
        "vitscale_version": summary.get("vitscale_version"),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "run_dir": str(run_dir),
        "config": resolved_config(saved.get("config", cfg.to_dict()), model), "plan": plan,
    }
