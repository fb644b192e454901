"""`vitscale report RUN_DIR`: PNG plots and an HTML page from a run's metrics.jsonl.

    <run>/report/curves_epoch.png   loss and accuracy against epoch (train, val, test)
    <run>/report/curves_time.png    the same against wall time
    <run>/report/lr.png             learning rate against optimizer step
    <run>/report/throughput.png     training images/s against optimizer step
    <run>/report.html               summary, derived values and the plots

Every run writes them when it ends; the command redraws them at any time, also while the run
is still going.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from .atomic import atomic_write_text
from .errors import VitscaleError
from .logs import is_rank0
from .train.hooks import Hook

_COLORS = {"train": "tab:blue", "val": "tab:orange", "test": "tab:green"}


def read_metrics(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise VitscaleError(f"{path} does not exist: pass a run directory written by "
                            "`vitscale train` (runs/<name>)")
    records = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line being written right now
        if record.get("split") != "accounting":  # measured costs, not a learning curve
            records.append(record)
    return records


def _steps_per_epoch(run_dir: Path, records: list[dict]) -> float:
    try:
        return json.loads((run_dir / "config.json").read_text())["plan"]["steps_per_epoch"]
    except (OSError, KeyError, ValueError):
        ends = [r for r in records if r["split"] != "train"]
        return ends[0]["step"] / ends[0]["epoch"] if ends else 1.0


def write_report(run_dir: str | Path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    records = read_metrics(run_dir)
    out = run_dir / "report"
    out.mkdir(exist_ok=True)
    spe = _steps_per_epoch(run_dir, records)
    splits = {}
    for r in records:
        splits.setdefault(r["split"], []).append(r)

    def x_of(r, axis):
        if axis == "epoch":
            return r["step"] / spe if r["split"] == "train" else r["epoch"]
        return r["wall_s"] / 60

    for axis, name, label in (("epoch", "curves_epoch.png", "epoch"),
                              ("time", "curves_time.png", "wall time (minutes)")):
        fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
        for split, rs in splits.items():
            xs = [x_of(r, axis) for r in rs]
            style = dict(color=_COLORS.get(split), label=split,
                         marker=None if split == "train" else "o", markersize=3)
            ax_loss.plot(xs, [r["loss"] for r in rs], **style)
            ax_acc.plot(xs, [r["acc1"] for r in rs], **style)
        for ax, title in ((ax_loss, "loss"), (ax_acc, "top-1 accuracy (%)")):
            ax.set_xlabel(label), ax.set_title(title), ax.grid(alpha=0.3), ax.legend()
        fig.tight_layout()
        fig.savefig(out / name, dpi=100)
        plt.close(fig)
    train = splits.get("train", [])
    for key, name, title in (("lr", "lr.png", "learning rate"),
                             ("images_per_s", "throughput.png", "training images/s")):
        fig, ax = plt.subplots(figsize=(5.5, 3.5))
        ax.plot([r["step"] for r in train], [r[key] for r in train], color="tab:blue")
        ax.set_xlabel("optimizer step"), ax.set_title(title), ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(out / name, dpi=100)
        plt.close(fig)
    return _write_html(run_dir, splits)


def _write_html(run_dir: Path, splits: dict) -> Path:
    rows = []
    summary_path = run_dir / "summary.json"
    if summary_path.is_file():
        summary = json.loads(summary_path.read_text())
        rows = [(k, v) for k, v in summary.items()]
    else:
        rows = [("status", "running (no summary.json yet)")]
        for split, rs in splits.items():
            rows.append((f"last {split} acc1", f"{rs[-1]['acc1']:.2f}% (epoch {rs[-1]['epoch']})"))
    try:
        plan = json.loads((run_dir / "config.json").read_text())["plan"]
    except (OSError, KeyError, ValueError):
        plan = {}
    table = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                    for k, v in [*rows, *plan.items()])
    images = "".join(f'<img src="report/{n}" alt="{n}">' for n in
                     ("curves_epoch.png", "curves_time.png", "lr.png", "throughput.png"))
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>vitscale run "
            f"{html.escape(run_dir.name)}</title><style>body{{font-family:sans-serif;margin:2em}}"
            f"th{{text-align:left;padding-right:1em}}img{{max-width:100%;margin:0.5em 0}}"
            f"</style></head><body><h1>{html.escape(run_dir.name)}</h1><table>{table}</table>"
            f"{images}</body></html>\n")
    return atomic_write_text(run_dir / "report.html", page)


class ReportHook(Hook):
    """Writes the report when the run ends (rank 0)."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)

    def on_run_end(self, trainer, summary: dict) -> None:
        if is_rank0():
            write_report(self.run_dir)
