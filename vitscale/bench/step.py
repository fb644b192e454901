"""`vitscale bench step`: training-step images/s of vitscale's Engine against a plain PyTorch loop.

Both sides train the same model (same size, same initial weights) on the same batch with AdamW
and cross-entropy under the same precision; a step is forward, backward and optimizer step.
Data loading is excluded on purpose. The loops run in alternating rounds so that clock drift
and other load hit both alike, and each reports its median round. `--compile` adds vitscale with
`compile = True` (torch.compile per block) as a third column; the plain loop stays eager.

    vitscale bench step --model vit_lite_7_4 --batch 128 --steps 20
"""

from __future__ import annotations

import dataclasses
import statistics
import time

import torch
import torch.nn.functional as F

from ..config import config_from_dict
from ..models import VisionTransformer, count_parameters, get_variant
from ..parallel import parallelize
from ..plan import make_plan
from ..precision import build_policy
from ..train.engine import Engine, pick_device


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(step, n: int, device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    for _ in range(n):
        step()
    _sync(device)
    return time.perf_counter() - start


def bench_step(model: str, batch: int, steps: int = 10, warmup: int = 3, rounds: int = 5,
               device: str | None = None, precision: str = "fp32", compile: bool = False,
               seed: int = 0) -> dict:
    dev = pick_device(device)
    values = {"MODEL": model, "BATCH_SIZE": batch, "precision": precision,
              "LEARNING_RATE": 1e-4, "WEIGHT_DECAY": 0.05, "NUM_EPOCHS": 1}
    cfg = config_from_dict(values, source="bench")
    size = get_variant(model)
    plan = dataclasses.replace(make_plan(cfg), model=size, model_name=model)
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = cfg.tf32
        torch.backends.cudnn.allow_tf32 = cfg.tf32

    g = torch.Generator().manual_seed(seed)
    images = torch.randn(batch, 3, size.img_size, size.img_size, generator=g).to(dev)
    labels = torch.randint(0, size.num_classes, (batch,), generator=g).to(dev)

    torch.manual_seed(seed)
    engine = Engine(cfg, plan, VisionTransformer(size).to(dev), dev)
    compiled = None
    if compile:
        compiled_cfg = config_from_dict({**values, "compile": True}, source="bench")
        torch.manual_seed(seed)
        compiled = Engine(compiled_cfg, plan,
                          parallelize(VisionTransformer(size).to(dev), compiled_cfg), dev)

    torch.manual_seed(seed)
    plain_model = VisionTransformer(size).to(dev)
    plain_opt = torch.optim.AdamW(plain_model.parameters(), lr=1e-4, weight_decay=0.05)
    policy = build_policy(precision, dev)
    scaler = policy.make_scaler()

    def plain_step():
        with policy.autocast():
            loss = F.cross_entropy(plain_model(images), labels)
        (scaler.scale(loss) if scaler else loss).backward()
        if scaler:
            scaler.step(plain_opt)
            scaler.update()
        else:
            plain_opt.step()
        plain_opt.zero_grad(set_to_none=True)

    def vitscale_step():
        engine.train_step(images, labels)

    loops = {"vitscale": vitscale_step, "plain_pytorch": plain_step}
    if compiled is not None:
        loops["vitscale_compiled"] = lambda: compiled.train_step(images, labels)
    for step in loops.values():
        _timed(step, warmup, dev)  # also triggers compilation, outside the timed rounds
    times: dict[str, list[float]] = {name: [] for name in loops}
    for r in range(rounds):
        order = list(loops) if r % 2 == 0 else list(reversed(loops))
        for name in order:
            times[name].append(_timed(loops[name], steps, dev))
    result = {name: batch * steps / statistics.median(ts) for name, ts in times.items()}
    extra = ({"vitscale_compiled_images_per_s": result["vitscale_compiled"],
              "compiled_ratio": result["vitscale_compiled"] / result["plain_pytorch"]}
             if compiled is not None else {})
    return {
        "model": model, "batch": batch, "steps": steps, "rounds": rounds,
        "precision": precision, "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "num_parameters": count_parameters(plain_model), "torch_version": torch.__version__,
        "vitscale_images_per_s": result["vitscale"],
        "plain_images_per_s": result["plain_pytorch"],
        "ratio": result["vitscale"] / result["plain_pytorch"], **extra,
    }
