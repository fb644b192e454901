"""Which samples each data-parallel rank reads, in which order: the same rule for every pipeline.

Order depends only on (seed, epoch). A training epoch is a random permutation cut into global
batches of R x b images (R data-parallel ranks, b per rank); rank r reads slice r of every
global batch. So the global batch of step k is the same set of images on 1, 2 or 4 ranks:
a run gives the same result whatever the world size, and a checkpoint taken on one layout
resumes on another. The remainder that does not fill a global batch is dropped (as
DistributedSampler(drop_last=True) does).

Evaluation keeps every sample: rank r reads samples r, r + R, r + 2R, ... and the metrics are
summed across ranks (evaluate.py).

Tensor- and pipeline-parallel peers share a data-parallel rank (the mesh's "dp" coordinate),
so they read the same batch.
"""

from __future__ import annotations

import torch


def epoch_generator(seed: int, epoch: int, stream: int = 0) -> torch.Generator:
    """A CPU generator for one (seed, epoch, stream); streams keep order and augmentation apart."""
    return torch.Generator().manual_seed(seed * 100_003 + epoch * 7919 + stream)


def train_steps(n: int, batch: int, world_size: int) -> int:
    """Global batches in a training epoch of `n` samples (the remainder is dropped)."""
    return n // (batch * world_size)


def train_order(n: int, *, seed: int, epoch: int, batch: int, world_size: int,
                rank: int) -> torch.Tensor:
    """Indices rank `rank` reads in training epoch `epoch`, batch after batch ((steps * b,))."""
    order = torch.randperm(n, generator=epoch_generator(seed, epoch))
    steps = train_steps(n, batch, world_size)
    # (step, rank, b): rank r reads slice r of every global batch.
    return order[: steps * batch * world_size].view(steps, world_size, batch)[:, rank].reshape(-1)


def eval_order(n: int, *, world_size: int, rank: int) -> torch.Tensor:
    """Every sample once over all ranks, in dataset order (strided across ranks)."""
    return torch.arange(rank, n, world_size)


def eval_batches(n: int, batch: int, world_size: int, rank: int) -> int:
    return -(-len(range(rank, n, world_size)) // batch)
