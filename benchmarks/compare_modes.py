"""Which tensor mode sends the fewest bytes for which model: parallel/costs.py's formulas for
1D, 2D, 2.5D and 3D at T = 4 and 8, per rank per step (bf16 autocast, one data-parallel rank,
batch 64 per tensor group). The table in docs/parallelism.md; the formulas are held to the
measured bytes by tests/test_tensor_parallel.py and benchmarks/parallel_layouts.py.

    python benchmarks/compare_modes.py
"""

from __future__ import annotations

from vitscale.config import config_from_dict
from vitscale.distributed.mesh import ParallelDims
from vitscale.errors import ConfigError
from vitscale.models import ViTSize, get_variant
from vitscale.parallel.costs import StepShape, communication, parameters_per_rank

SEED_003 = ViTSize(width=4096, depth=32, heads=64, mlp_ratio=4.0, patch=16, img_size=224)
MODELS = [("ViT-Lite-7/4 (32 px)", get_variant("vit_lite_7_4")),
          ("ViT-S/16", get_variant("vit_small_patch16_224")),
          ("ViT-B/16", get_variant("vit_base_patch16_224")),
          ("ViT-L/16", get_variant("vit_large_patch16_224")),
          ("seed 003 (4096 x 32)", SEED_003)]
MODES = [("1d", 4, 1), ("2d", 4, 1), ("1d", 8, 1), ("2.5d", 8, 2), ("3d", 8, 1)]
BATCH = 64


def row(size: ViTSize):
    cells = []
    for mode, t, depth in MODES:
        try:
            cfg = config_from_dict({"BATCH_SIZE": BATCH, "parallel": {"tensor": {
                "mode": mode, "size": t, "depth": depth}}})
            dims = ParallelDims.from_config(cfg, t, size.heads, size.width, size.depth)
            dims.check_shapes(size.mlp_hidden, size.width, BATCH)
        except ConfigError:
            cells.append(None)
            continue
        comm = communication(StepShape(size, dims, micro_batch=BATCH, precision="bf16"))
        cells.append((sum(v for d in comm.values() for v in d.values()),
                      parameters_per_rank(size, dims)))
    return cells


def main() -> None:
    head = " | ".join(f"{m.upper()} T={t}" + (f" d={d}" if d > 1 else "") for m, t, d in MODES)
    print(f"| model | {head} | fewest bytes at T=4 | at T=8 |")
    print("|---|" + "---|" * (len(MODES) + 2))
    for name, size in MODELS:
        cells = row(size)
        text = [f"{b / 1e9:.2f} GB, {p / 1e6:.1f}M params" if c else "-"
                for c in cells for b, p in [c or (0, 0)]]
        best = []
        for ts in (4, 8):
            options = [(c[0], f"{m.upper()}") for (m, t, _), c in zip(MODES, cells)
                       if c and t == ts]
            best.append(min(options)[1] if options else "-")
        print(f"| {name} | {' | '.join(text)} | {best[0]} | {best[1]} |")


if __name__ == "__main__":
    main()
