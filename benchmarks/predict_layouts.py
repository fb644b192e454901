"""Predicted bytes per rank per optimizer step and parameters per rank on 8 GPUs (one node),
from parallel/costs.py's formulas alone: the "prediction for 8" table in docs/parallelism.md.

    python benchmarks/predict_layouts.py

No GPU or process group is needed: ParallelDims and the formulas are plain Python.
"""

from __future__ import annotations

from vitscale.config import config_from_dict
from vitscale.distributed.mesh import ParallelDims
from vitscale.models import ViTSize, get_variant
from vitscale.errors import ConfigError
from vitscale.parallel.costs import StepShape, communication, parameters_held

SEED_003 = ViTSize(width=4096, depth=32, heads=64, mlp_ratio=4.0, patch=16, img_size=224)
MODELS = [("vit_small_patch16_224", get_variant("vit_small_patch16_224"), 256),
          ("vit_base_patch16_224", get_variant("vit_base_patch16_224"), 256),
          ("seed 003 (4096 x 32)", SEED_003, 64)]
LAYOUTS = [("dp=8", {}, None), ("dp=8, zero=2", {}, 2), ("tp=2 x dp=4", {"size": 2}, None),
           ("tp=4 x dp=2", {"size": 4}, None), ("tp=8", {"size": 8}, None),
           ("tp=8, sp", {"size": 8, "sequence_parallel": True}, None)]


def dims_for(tensor: dict, zero, size: ViTSize) -> ParallelDims:
    t = {"mode": "1d", **tensor} if tensor else {}
    cfg = config_from_dict({"BATCH_SIZE": 8, "parallel": {"tensor": t},
                            "zero": {"stage": zero} if zero else None})
    return ParallelDims.from_config(cfg, 8, size.heads, size.width, size.depth)


def main() -> None:
    print("| model | global batch | layout | parameters per rank | GB sent per rank per step "
          "(bf16) | of which tp | of which dp |")
    print("|---|---|---|---|---|---|---|")
    for name, size, batch in MODELS:
        for label, tensor, zero in LAYOUTS:
            try:
                dims = dims_for(tensor, zero, size)
            except ConfigError:
                print(f"| {name} | {batch} | {label} | - ({size.heads} heads do not split "
                      f"{tensor['size']} ways) | | | |")
                continue
            comm = communication(StepShape(size, dims, micro_batch=batch // dims.data,
                                           precision="bf16", clip=True))
            per_dim = {d: sum(k.values()) for d, k in comm.items()}
            total = sum(per_dim.values())
            print(f"| {name} | {batch} | {label} | {parameters_held(size, dims):,} | "
                  f"{total / 1e9:.3f} | {per_dim.get('tp', 0) / 1e9:.3f} | "
                  f"{per_dim.get('dp', 0) / 1e9:.3f} |")


if __name__ == "__main__":
    main()
