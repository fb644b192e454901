"""`vitscale models`: the one table of model sizes, with parameter counts."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("models", help="list the named model sizes")
    p.set_defaults(func=run)


def run(args) -> int:
    import torch

    from ..models import VARIANTS, build_model, count_parameters, describe_feed_forward
    print(f"{'name':<26} {'width':>5} {'depth':>5} {'heads':>5} {'mlp':>4} {'patch':>5} "
          f"{'img':>4} {'params':>8}  feed-forward")
    for name, s in VARIANTS.items():
        with torch.device("meta"):
            n = count_parameters(build_model(s))
        print(f"{name:<26} {s.width:>5} {s.depth:>5} {s.heads:>5} {s.mlp_ratio:>4g} "
              f"{s.patch:>5} {s.img_size:>4} {n / 1e6:>7.2f}M  {describe_feed_forward(s)}")
    return 0
