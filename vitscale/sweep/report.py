"""`vitscale report --sweep RESULTS --x KEY [--series KEY]`: a sweep's results as plots.

    <results folder>/sweep_<X>[_by_<SERIES>].png    accuracy and wall time against KEY
    <results folder>/sweep_<X>[_by_<SERIES>].html   the plot and a table of every point

Runs with the same x (and series) value are repeats: the plots show their mean, with error bars
of one standard deviation (n - 1 in the denominator) when there are several. A key is looked up
in the record first (num_parameters, images_per_s, seed, ffn, ...), then among its resolved
config keys (MLP_DIM, FFF_DEPTH, `zero.stage`, ...); records without a value for the x key
are left out and counted on the page.
"""

from __future__ import annotations

import html
import math
import statistics
import textwrap
from pathlib import Path

from ..atomic import atomic_write, atomic_write_text
from ..errors import VitscaleError
from .results import read_results

METRICS = ("best_test_acc1", "final_test_acc1", "best_test_loss", "final_test_loss",
           "images_per_s", "wall_seconds")


def lookup(record: dict, key: str):
    """The value of `key` for a record: a record field, else a (dotted) resolved config key."""
    if key in record and not isinstance(record[key], dict):
        return record[key]
    node = record.get("config", {})
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return tuple(node) if isinstance(node, list) else node


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _mean_std(values: list[float]) -> tuple[float, float]:
    values = [v for v in values if v is not None]
    if not values:
        return math.nan, 0.0
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def group(records: list[dict], x: str, series: str | None) -> dict:
    """{series value: {x value: [records]}}, in first-seen series order and sorted x."""
    groups: dict = {}
    for r in records:
        xv = lookup(r, x)
        if xv is None:
            continue
        groups.setdefault(lookup(r, series) if series else None, {}).setdefault(xv, []).append(r)
    xs = {xv for points in groups.values() for xv in points}
    numeric = all(_is_number(v) for v in xs)
    ordered = sorted(xs) if numeric else sorted(xs, key=str)
    return {s: {xv: points[xv] for xv in ordered if xv in points} for s, points in groups.items()}


def write_sweep_report(results: str | Path, x: str, series: str | None = None,
                       metric: str = "best_test_acc1", out: str | Path | None = None) -> Path:
    """Draw the PNG and write the HTML page; returns the HTML path."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = Path(results)
    records = read_results(results)
    if not records:
        raise VitscaleError(f"{results} holds no sweep records: pass the results.jsonl that "
                            "`vitscale sweep` wrote (runs/sweeps/<config>/results.jsonl)")
    if metric not in METRICS:
        raise VitscaleError(f"--metric {metric!r} is not one of {', '.join(METRICS)}")
    groups = group(records, x, series)
    if not groups:
        keys = sorted(k for k, v in records[0].get("point", {}).items())
        raise VitscaleError(f"no record in {results} has a value for {x!r}: use a swept key "
                            f"({', '.join(keys) or 'none'}) or a config or record key such as "
                            "num_parameters")
    stem = f"sweep_{x}" + (f"_by_{series}" if series else "")
    stem = "".join(c if c.isalnum() or c in "._=-" else "-" for c in stem)
    png = Path(out).with_suffix(".png") if out else results.parent / f"{stem}.png"
    png.parent.mkdir(parents=True, exist_ok=True)
    xs_all = [xv for points in groups.values() for xv in points]
    numeric = all(_is_number(v) for v in xs_all)
    categories = list(dict.fromkeys(xs_all))

    # Categories (e.g. the `ffn` descriptions) need room for their wrapped labels.
    width = 11 if numeric else max(11, 1.3 * len(categories))
    fig, (ax_acc, ax_time) = plt.subplots(1, 2, figsize=(width, 4.5 if numeric else 5.5))
    for s, points in groups.items():
        pos = [xv if numeric else categories.index(xv) for xv in points]
        label = f"{series}={s}" if series else None
        for ax, key in ((ax_acc, metric), (ax_time, "wall_seconds")):
            stats = [_mean_std([r.get(key) for r in rs]) for rs in points.values()]
            ax.errorbar(pos, [m for m, _ in stats], yerr=[d for _, d in stats], marker="o",
                        capsize=4, label=label)
    for ax, title in ((ax_acc, _title(metric)), (ax_time, "run wall time (s)")):
        ax.set_xlabel(x), ax.set_title(title), ax.grid(alpha=0.3)
        if not numeric:
            ax.set_xticks(range(len(categories)),
                          [textwrap.fill(str(c), 16) for c in categories], fontsize=7)
        elif _log_scale(categories):
            ax.set_xscale("log", base=2)
        if series:
            ax.legend(fontsize=8)
    n_runs = sum(len(rs) for points in groups.values() for rs in points.values())
    fig.suptitle(f"{results.name}: {n_runs} runs, mean +- std over repeats", fontsize=10)
    fig.tight_layout()
    atomic_write(png, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)
    return _write_html(png.with_suffix(".html"), png, results, records, groups, x, series,
                       metric, n_runs)


def _title(metric: str) -> str:
    return {"best_test_acc1": "best test top-1 (%)", "final_test_acc1": "final test top-1 (%)",
            "images_per_s": "training images/s"}.get(metric, metric)


def _log_scale(xs: list) -> bool:
    """Powers of two spread over more than a factor 8 read better on a log axis."""
    positive = [v for v in xs if _is_number(v) and v > 0]
    return len(positive) == len(xs) > 2 and max(positive) / min(positive) > 8


def _fmt(mean: float, std: float, digits: int = 2, n: int = 1) -> str:
    if math.isnan(mean):
        return "-"
    return f"{mean:.{digits}f}" + (f" &plusmn; {std:.{digits}f}" if n > 1 else "")


def _write_html(path: Path, png: Path, results: Path, records, groups, x, series, metric,
                n_runs) -> Path:
    head = ([html.escape(series)] if series else []) + [
        html.escape(x), "runs", "seeds", html.escape(metric), "final test acc1", "parameters",
        "wall s", "images/s", "feed-forward"]
    rows = []
    for s, points in groups.items():
        for xv, rs in points.items():
            n = len(rs)
            cells = ([html.escape(str(s))] if series else []) + [
                html.escape(str(xv)), str(n),
                html.escape(", ".join(str(r.get("seed")) for r in rs)),
                _fmt(*_mean_std([r.get(metric) for r in rs]), n=n),
                _fmt(*_mean_std([r.get("final_test_acc1") for r in rs]), n=n),
                html.escape(", ".join(sorted({f"{r.get('num_parameters', 0) / 1e6:.3f}M"
                                              for r in rs}))),
                _fmt(*_mean_std([r.get("wall_seconds") for r in rs]), digits=0, n=n),
                _fmt(*_mean_std([r.get("images_per_s") for r in rs]), digits=0, n=n),
                html.escape("; ".join(sorted({str(r.get("ffn")) for r in rs})))]
            rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    left_out = len(records) - n_runs
    commits = sorted({str(r.get("commit")) for r in records})
    note = (f"<p>{n_runs} runs from {html.escape(str(results))}; error bars and &plusmn;: one "
            f"standard deviation over the runs of a row. Commits: "
            f"{html.escape(', '.join(commits))}."
            + (f" {left_out} records without a value for {html.escape(x)} are left out."
               if left_out else "") + "</p>")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>sweep "
            f"{html.escape(results.name)} by {html.escape(x)}</title><style>"
            f"body{{font-family:sans-serif;margin:2em}}td,th{{padding:0.2em 0.8em;"
            f"text-align:right}}img{{max-width:100%}}</style></head><body>"
            f"<h1>{html.escape(str(results))}: {html.escape(x)}</h1>{note}"
            f"<img src=\"{html.escape(png.name)}\" alt=\"sweep plot\"><table><tr>"
            + "".join(f"<th>{h}</th>" for h in head) + "</tr>" + "".join(rows)
            + "</table></body></html>\n")
    return atomic_write_text(path, page)
