"""Evaluation: loss, top-1, top-5 and per-class accuracy over a loader, with counts summed
(never averaged averages), so that shards and ranks add up exactly. The sums are reduced as the
model's OutputLayout says: over the data-parallel ranks, which see different images, never
over tensor-parallel peers, which see the same ones.
"""

from __future__ import annotations

import contextlib
import time

import torch
import torch.distributed as dist
import torch.nn.functional as F


@torch.no_grad()
def evaluate_model(model, loader, num_classes: int, autocast=contextlib.nullcontext,
                   cast_input=lambda x: x, per_class: bool = False, layout=None,
                   tta_flip: bool = False) -> dict:
    """Metrics in % (accuracy) and nats (loss) over every batch of `loader`.

    `tta_flip`: test-time augmentation, the logits averaged over each image and its
    horizontal mirror (the flip the training augments with; airbench's evaluation).

    `layout` (parallel/layout.py) says how logits are laid out and over which ranks the
    batches are split; without one, the model is whole and this process sees every batch.
    """
    from .optim.norms import local
    model.eval()
    device = local(next(model.parameters())).device
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    hits = torch.zeros(2, device=device, dtype=torch.int64)          # top-1, top-5
    class_hits = torch.zeros(num_classes, device=device, dtype=torch.int64)
    class_count = torch.zeros(num_classes, device=device, dtype=torch.int64)
    start = time.perf_counter()
    for x, y in loader:
        if layout is not None:
            x, y = layout.evaluation_part(x, y)   # a grid mode's share (labels -1: padding)
        with autocast():
            logits = model(cast_input(x))
            if tta_flip:
                logits = (logits + model(cast_input(x.flip(-1)))) / 2
        if layout is not None:
            logits = layout.full(logits)  # class-parallel logits: gather the b x C values
        loss_sum += F.cross_entropy(logits.float(), y, reduction="sum", ignore_index=-1)
        top = logits.topk(min(5, logits.shape[-1]), dim=-1).indices == y[:, None]
        hits += torch.stack([top[:, 0].sum(), top.any(dim=-1).sum()])
        real = y[y >= 0]
        class_hits += torch.bincount(y[top[:, 0]], minlength=num_classes)
        class_count += torch.bincount(real, minlength=num_classes)
    totals = torch.cat([loss_sum.float().view(1), hits.float(), class_hits.float(),
                        class_count.float()])
    if layout is not None:
        layout.sum_over_batch(totals)  # one collective: sums over data-parallel shards
    elif dist.is_available() and dist.is_initialized():
        dist.all_reduce(totals)
    seconds = time.perf_counter() - start
    count = max(int(totals[3 + num_classes:].sum().item()), 1)
    result = {"loss": totals[0].item() / count, "acc1": 100.0 * totals[1].item() / count,
              "acc5": 100.0 * totals[2].item() / count, "images": count,
              "images_per_s": count / max(seconds, 1e-9)}
    if per_class:
        ch, cc = totals[3:3 + num_classes], totals[3 + num_classes:]
        result["per_class_acc1"] = (100.0 * ch / cc.clamp(min=1)).tolist()
    return result
