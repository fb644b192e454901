"""How a parallelized model's outputs are laid out, and the reductions that follow from it.

Every tensor-parallel mode returns an OutputLayout (DESIGN.md, "Tensor modes"). The engine
computes the loss, the accuracy, the training meter and evaluation through it, so that no
sum counts a rank twice: tensor-parallel peers of one data-parallel rank see the same images,
so a metric's sums add up over the data-parallel group only, never over all ranks.

    1D, replicated head      logits (b, C) a plain tensor, equal on every tensor rank
    1D, class-parallel head  logits a DTensor (b, C) sharded over classes on "tp"; the loss
                             runs on the shards under loss_parallel
    2D, 2.5D, 3D             logits (b/s, C) of this rank's share of the batch (s = q, d q,
                             q^2): the batch is split over data-parallel ranks and over the
                             grid's batch dimensions too, and each rank backpropagates its
                             share of the global mean (grad_scale = 1/s), so that gradients
                             summed over the grid are those of the mean
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F

from ..data.mix import classification_loss, soft_targets


@dataclass
class OutputLayout:
    batch_groups: tuple = ()        # ProcessGroups over which the batch is split
    class_parallel: bool = False    # logits are a DTensor sharded on the class dimension
    grad_scale: float = 1.0         # what each rank's mean loss is weighted by in backward
    batch_part: tuple[int, int] = (0, 1)  # (this rank's part, parts): a grid's batch split

    def evaluation_part(self, x: torch.Tensor, y: torch.Tensor):
        """This rank's part of an evaluation batch that every rank of its tensor group reads:
        padded to a multiple of the parts with label -1 (left out of every metric), so that
        all parts have one size, as the grid's collectives need."""
        part, parts = self.batch_part
        if parts == 1:
            return x, y
        pad = -len(y) % parts
        if pad:
            x = torch.cat([x, x.new_zeros((pad, *x.shape[1:]))])
            y = torch.cat([y, y.new_full((pad, *y.shape[1:]), -1)])
        return x.chunk(parts)[part], y.chunk(parts)[part]

    def loss_context(self):
        """Wraps the loss and its backward (loss_parallel needs both inside)."""
        if not self.class_parallel:
            return contextlib.nullcontext()
        from torch.distributed.tensor.parallel import loss_parallel
        return loss_parallel()

    def loss(self, logits: torch.Tensor, targets: torch.Tensor,
             label_smoothing: float = 0.0) -> torch.Tensor:
        """Mean cross-entropy over this rank's images (call inside `loss_context`)."""
        if not self.class_parallel:
            return classification_loss(logits, targets, label_smoothing)
        if not targets.is_floating_point() and label_smoothing == 0:
            return F.cross_entropy(logits.float(), targets)   # loss_parallel's own kernel
        # loss_parallel takes class indices only: soft targets (Mixup/CutMix) and label
        # smoothing go through ShardedSoftCrossEntropy, each rank over its own classes.
        from torch.distributed.tensor import Shard, distribute_tensor
        if not targets.is_floating_point():
            targets = soft_targets(targets, logits.shape[-1], label_smoothing)
        mesh = logits.device_mesh
        local_targets = distribute_tensor(targets.float(), mesh, [Shard(1)],
                                          src_data_rank=None).to_local()  # a slice, no transfer
        local_logits = logits.to_local(grad_placements=[Shard(1)])
        return ShardedSoftCrossEntropy.apply(local_logits, local_targets, mesh.get_group())

    @staticmethod
    def full(t: torch.Tensor) -> torch.Tensor:
        """A plain tensor with the whole value (gathers a DTensor's shards)."""
        from ..optim.norms import DTensor
        if isinstance(t, DTensor):
            return t.full_tensor()
        return t

    def sum_over_batch(self, totals: torch.Tensor) -> torch.Tensor:
        """All-reduce per-rank sums (loss x images, hits, images) into global sums, in place."""
        for group in self.batch_groups:
            dist.all_reduce(totals, group=group)
        return totals


class ShardedSoftCrossEntropy(torch.autograd.Function):
    """Mean over b rows of -sum_k t_k log softmax(z)_k, with the logits z and the targets t
    split over classes on `group` (Megatron's vocabulary-parallel cross-entropy, Shoeybi et
    al. 2019 Sec. 3, extended to probability targets, which loss_parallel does not take).

    Each rank holds z_r, t_r of shape (b, C_r). Per row, with m the global maximum,
    lse = m + log sum_k exp(z_k - m) and loss = lse * sum_k t_k - sum_k t_k z_k. Forward:
    one all-reduce MAX of b values (the maxima), one all-reduce SUM of 3b (the exp-sums, the
    target sums, the dot products). Backward is local: dL/dz_r = (softmax(z)_r sum t - t_r) / b.
    """

    @staticmethod
    def forward(ctx, logits, targets, group):
        z, t = logits.float(), targets.float()
        if z.shape[1]:
            m = z.amax(dim=1)
        else:  # a rank may hold no class when T does not divide C
            m = torch.full((z.shape[0],), float("-inf"), device=z.device)
        dist.all_reduce(m, op=dist.ReduceOp.MAX, group=group)
        e = torch.exp(z - m[:, None])
        sums = torch.stack([e.sum(1), t.sum(1), (t * z).sum(1)])
        dist.all_reduce(sums, group=group)
        exp_sum, t_sum, dot = sums
        lse = m + exp_sum.log()
        ctx.save_for_backward(e / exp_sum[:, None], t, t_sum)
        ctx.logits_dtype = logits.dtype
        return (lse * t_sum - dot).mean()

    @staticmethod
    def backward(ctx, grad):
        softmax, t, t_sum = ctx.saved_tensors
        dz = (softmax * t_sum[:, None] - t) * (grad / t.shape[0])
        return dz.to(ctx.logits_dtype), None, None
