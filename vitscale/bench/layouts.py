"""`vitscale bench step --nproc-per-node N --layout ...`: training-step images/s and bytes sent
per step of parallel layouts, side by side with pure data parallelism on the same processes.

Every layout trains the same model (same initial weights) on the same global batch with AdamW;
data loading is excluded. Layouts run in alternating rounds (reversed every other round) so
that drift and other load hit all alike; each reports its median round. A round ends when the
slowest rank ends (a barrier). Bytes per step are measured by the engine's CommLedger on the
first step (parallel/accounting.py) and shown beside parallel/costs.py's formula.

    vitscale bench step --model vit_lite_7_4 --batch 64 --nproc-per-node 4 \\
        --layout tp=2 --layout tp=4,sp --layout tp=2,zero=2 --layout tp=4,mode=2d
"""

from __future__ import annotations

import statistics

import torch
import torch.distributed as dist

from ..errors import ConfigError
from .common import bench_engine, random_batch, timed

_KEYS = {"tp", "mode", "depth", "sp", "head", "zero"}
_MODES = ("1d", "2d", "2.5d", "3d")


def parse_layout(spec: str) -> dict:
    """'tp=2,sp,head=class,zero=2' or 'tp=8,mode=2.5d,depth=2' -> the layout's dict; 'dp' is
    pure data parallelism."""
    out = {"tensor": 1, "mode": "1d", "depth": 1, "sequence_parallel": False,
           "class_parallel": False, "zero": None}
    if spec.strip() in ("dp", ""):
        return out
    for part in spec.split(","):
        key, _, value = part.strip().partition("=")
        if key not in _KEYS:
            raise ConfigError(f"--layout {spec!r}: unknown part {key!r}; use tp=T, "
                              "mode=1d|2d|2.5d|3d, depth=D, sp, head=class, zero=1|2|3 (e.g. "
                              "--layout tp=2,sp,zero=2 or --layout tp=4,mode=2d) or dp")
        try:
            if key in ("tp", "depth", "zero"):
                out[{"tp": "tensor"}.get(key, key)] = int(value)
        except ValueError:
            raise ConfigError(f"--layout {spec!r}: {key} needs a number, e.g. {key}=2") from None
        if key == "mode":
            if value not in _MODES:
                raise ConfigError(f"--layout {spec!r}: mode {value!r} is not one of "
                                  f"{', '.join(_MODES)}")
            out["mode"] = value
        if key == "sp":
            out["sequence_parallel"] = True
        elif key == "head":
            out["class_parallel"] = value == "class"
    return out


def describe(layout: dict) -> str:
    parts = [f"tp={layout['tensor']}"] if layout["tensor"] > 1 else ["dp"]
    if layout["tensor"] > 1 and layout["mode"] != "1d":
        parts.append(f"mode={layout['mode']}")
        if layout["mode"] == "2.5d":
            parts.append(f"depth={layout['depth']}")
    parts += ["sp"] * layout["sequence_parallel"] + ["head=class"] * layout["class_parallel"]
    parts += [f"zero={layout['zero']}"] if layout["zero"] else []
    return ",".join(parts)


def layout_config(layout: dict) -> dict:
    tensor = {"mode": layout["mode"] if layout["tensor"] > 1 else None,
              "size": layout["tensor"], "depth": layout["depth"],
              "sequence_parallel": layout["sequence_parallel"],
              "head": "class_parallel" if layout["class_parallel"] else "replicated"}
    config = {"parallel": {"tensor": tensor}}
    if layout["zero"]:
        config["zero"] = {"stage": layout["zero"]}
    return config


def bench_layouts(model: str, batch: int, layouts: list[dict], device: torch.device,
                  steps: int = 10, warmup: int = 3, rounds: int = 5, precision: str = "fp32",
                  seed: int = 0) -> list[dict]:
    """One row per layout (the first is pure data parallelism); call on every rank."""
    from ..parallel.costs import StepShape, communication
    world = dist.get_world_size()
    layouts = [parse_layout("dp")] + [l for l in layouts if l != parse_layout("dp")]
    images, labels = random_batch(model, batch, device, seed)
    engines, steps_of = [], {}
    for layout in layouts:
        engine = bench_engine(model, batch, device, seed, world_size=world,
                              precision=precision, **layout_config(layout))
        rank, parts = engine.plan.dims.loader_shard(engine.mesh)
        share = batch // parts
        x = images[rank * share:(rank + 1) * share]
        y = labels[rank * share:(rank + 1) * share]
        steps_of[describe(layout)] = (lambda e=engine, x=x, y=y: e.train_step(x, y))
        engines.append(engine)

    def round_of(name: str, n: int) -> float:
        dist.barrier()
        seconds = timed(steps_of[name], n, device)
        dist.barrier()
        return seconds

    for name in steps_of:
        round_of(name, warmup)  # also the measured first step of each engine
    times: dict[str, list[float]] = {name: [] for name in steps_of}
    for r in range(rounds):
        names = list(steps_of) if r % 2 == 0 else list(reversed(steps_of))
        for name in names:
            seconds = torch.tensor(round_of(name, steps))
            dist.all_reduce(seconds, op=dist.ReduceOp.MAX)
            times[name].append(seconds.item())
    rows = []
    base = batch * steps / statistics.median(times["dp"])
    for layout, engine in zip(layouts, engines):
        name = describe(layout)
        plan, acc = engine.plan, engine.accounting
        predicted = communication(StepShape(plan.model, plan.dims, plan.per_device_batch,
                                            plan.accumulation, plan.precision,
                                            engine.cfg.OPTIMIZER,
                                            checkpointing=engine.cfg.CHECKPOINT))
        images_per_s = batch * steps / statistics.median(times[name])
        rows.append({
            "layout": name, "dims": plan.dims.describe(),
            "data_parallel": plan.dims.data_parallel, "images_per_s": images_per_s,
            "vs_data_parallel": images_per_s / base,
            "bytes_per_step": acc["comm_bytes_per_step"]["total_bytes"],
            "bytes_by_dim": {d: sum(v["bytes"] for v in kinds.values())
                             for d, kinds in acc["comm_bytes_per_step"]["by_dim"].items()},
            "predicted_bytes_per_step": round(sum(v for d in predicted.values()
                                                  for v in d.values())),
            "predicted_bytes_by_dim": {d: round(sum(kinds.values()))
                                       for d, kinds in predicted.items()},
            "parameters_per_rank": acc["parameters_per_rank"],
            "activation_bytes_per_micro_batch": acc["activation_bytes_per_micro_batch"],
        })
    return rows
