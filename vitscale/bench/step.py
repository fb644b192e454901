"""`vitscale bench step`: training-step images/s of vitscale's Engine against a plain PyTorch loop.

Both sides train the same model (same size, same initial weights) on the same batch with AdamW
and cross-entropy under the same precision; a step is forward, backward and optimizer step.
Data loading is excluded on purpose. The loops run in alternating rounds so that clock drift
and other load hit both alike, and each reports its median round. `--compile` adds vitscale with
`compile = True` (torch.compile per block) as a third column; the plain loop stays eager.
Each column also gets its MFU (train/mfu.py: the planner's FLOPs per image x images/s over the
peak of the device's row in planner/hardware.py; none for a device with no row).

    vitscale bench step --model vit_lite_7_4 --batch 128 --steps 20
"""

from __future__ import annotations

import contextlib
import statistics

import torch
import torch.nn.functional as F

from ..models import VisionTransformer, count_parameters, get_variant
from ..train.engine import pick_device
from ..train.mfu import utilisation
from .common import bench_engine, random_batch, timed


def bench_step(model: str, batch: int, steps: int = 10, warmup: int = 3, rounds: int = 5,
               device: str | None = None, precision: str = "fp32", compile: bool = False,
               seed: int = 0) -> dict:
    dev = pick_device(device)
    images, labels = random_batch(model, batch, dev, seed)
    engine = bench_engine(model, batch, dev, seed, precision=precision)
    compiled = bench_engine(model, batch, dev, seed, precision=precision,
                            compile=True) if compile else None

    torch.manual_seed(seed)
    plain_model = VisionTransformer(get_variant(model)).to(dev)
    plain_opt = torch.optim.AdamW(plain_model.parameters(), lr=1e-4, weight_decay=0.05)
    # The plain alternative: torch.autocast, plus a GradScaler for fp16, as the PyTorch docs show.
    dtype = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
    scaler = torch.amp.GradScaler(dev.type) if dtype == torch.float16 else None

    def plain_step():
        with torch.autocast(dev.type, dtype=dtype) if dtype else contextlib.nullcontext():
            loss = F.cross_entropy(plain_model(images), labels)
        (scaler.scale(loss) if scaler else loss).backward()
        if scaler:
            scaler.step(plain_opt)
            scaler.update()
        else:
            plain_opt.step()
        plain_opt.zero_grad(set_to_none=True)

    loops = {"vitscale": lambda: engine.train_step(images, labels), "plain_pytorch": plain_step}
    if compiled is not None:
        loops["vitscale_compiled"] = lambda: compiled.train_step(images, labels)
    for step in loops.values():
        timed(step, warmup, dev)  # also triggers compilation, outside the timed rounds
    times: dict[str, list[float]] = {name: [] for name in loops}
    for r in range(rounds):
        order = list(loops) if r % 2 == 0 else list(reversed(loops))
        for name in order:
            times[name].append(timed(loops[name], steps, dev))
    result = {name: batch * steps / statistics.median(ts) for name, ts in times.items()}
    extra = ({"vitscale_compiled_images_per_s": result["vitscale_compiled"],
              "compiled_ratio": result["vitscale_compiled"] / result["plain_pytorch"]}
             if compiled is not None else {})
    use = utilisation(get_variant(model), dev)
    mfu = {f"{'plain' if name == 'plain_pytorch' else name}_mfu": use.mfu(rate)
           for name, rate in result.items()}
    return {
        "model": model, "batch": batch, "steps": steps, "rounds": rounds,
        "precision": precision, "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "num_parameters": count_parameters(plain_model), "torch_version": torch.__version__,
        "vitscale_images_per_s": result["vitscale"],
        "plain_images_per_s": result["plain_pytorch"],
        "ratio": result["vitscale"] / result["plain_pytorch"], **extra,
        **mfu, "flops_per_image": use.flops_per_image, "peak_flops": use.peak_flops,
        "mfu_peak": use.peak,
    }
