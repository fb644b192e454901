"""1D tensor parallelism (Shoeybi et al. 2019, "Megatron-LM", Sec. 3) as a DTensor plan.

Each block's two matmul pairs are split over the T ranks of the "tp" mesh dimension so that
the pair needs one collective in forward and one in backward:

    attention   q, k, v  ColwiseParallel   W (D, D) -> rows split: each rank holds D/T outputs,
                                           i.e. H/T whole heads (the model's view(B, N, -1, hd)
                                           finds the local head count by itself)
                proj     RowwiseParallel   W (D, D) -> columns split; its partial sums are
                                           all-reduced: 2 (T-1)/T x B N D values per rank
    MLP         fc1      ColwiseParallel   (M, D) -> M/T hidden units per rank, GELU local
                fc2      RowwiseParallel   (D, M) -> all-reduce of B N D, as for proj

Backward mirrors it: the all-reduce of the block input's gradient sits in front of q/k/v and
fc1. q, k and v read one input, made a Replicate DTensor once in front of the attention
(PrepareModuleInput), so their three partial input gradients add up locally and cross the
network in one all-reduce, not three. Per block and step, 2 all-reduces of B N D values
forward and 2 backward (docs/parallelism.md gives the bytes; parallel/costs.py computes them).

Options (parallel['tensor']):
  * sequence_parallel (Korthikanti et al. 2022, "Reducing Activation Recomputation in Large
    Transformer Models", Sec. 4.2.2): between the matmul pairs, LayerNorms, dropout, DropPath
    and the residual stream hold N/T tokens per rank instead of all N. Each all-reduce becomes
    a reduce-scatter after proj/fc2 plus an all-gather after the next LayerNorm: the same
    bytes, and 1/T of the activations outside the matmuls. ViT's N = patches + 1 is usually
    not divisible by T (65, 197): token shards are uneven, which DTensor handles when told the
    global length (SequenceParallelNorm below; torch's SequenceParallel infers an even split).
  * head='class_parallel': the classifier is ColwiseParallel over classes and the logits stay
    a DTensor sharded on the class dimension; cross-entropy runs on the shards under
    `loss_parallel` (two all-reduces of B values instead of gathering B x C logits).

Patch embedding, class token, position embedding and (without sequence parallelism) the
LayerNorms are replicated: every tensor rank holds and updates the same copy, and their
gradients agree without communication because every input they see is replicated.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.distributed.tensor import DTensor, Replicate, Shard, distribute_module
from torch.distributed.tensor.parallel import (ColwiseParallel, ParallelStyle, PrepareModuleInput,
                                               RowwiseParallel, parallelize_module)

from ...errors import ConfigError
from ...models.vit import MLP, Attention


class SequenceParallelNorm(ParallelStyle):
    """A LayerNorm on a token shard that hands the next matmul all N tokens.

    Input: this rank's (B, N_r, D) token shard, a plain tensor, N_r as torch.chunk splits N.
    The norm runs on the shard (its weight and bias are Replicate DTensors, so their gradients
    come out as partial sums that DTensor reduces over the tensor group), then the output is
    all-gathered over tokens: (T-1)/T x B N D values per rank. The output stays a Replicate
    DTensor, so that the partial input gradients of every matmul reading it (q, k and v) add
    up before its backward, one reduce-scatter; `use_local_output` hands a plain tensor on
    (the final norm, read once by the head).
    """

    def __init__(self, seq_length: int, use_local_output: bool = False):
        super().__init__()
        self.seq_length = seq_length
        self.use_local_output = use_local_output

    @staticmethod
    def _replicate_params(name, module, mesh):
        for p_name, param in list(module.named_parameters(recurse=False)):
            module.register_parameter(p_name, nn.Parameter(
                DTensor.from_local(param, mesh, [Replicate()], run_check=False)))

    def _shard_input(self, module, inputs, mesh):
        x = inputs[0]
        # The global shape must be given: from_local would otherwise assume N = N_r x T.
        shape = (x.shape[0], self.seq_length, *x.shape[2:])
        stride = torch.empty(shape, device="meta").stride()
        return DTensor.from_local(x, mesh, [Shard(1)], run_check=False, shape=shape,
                                  stride=stride)

    def _gather_output(self, module, output, mesh):
        output = output.redistribute(placements=[Replicate()])
        # Gathering uneven token shards can leave a strided local tensor, which torch 2.11's
        # DTensor linear fails to view. contiguous() would not reach it (the DTensor's own
        # strides say contiguous); a clone does, and passes gradients through unchanged.
        if not output._local_tensor.is_contiguous():
            output = output.clone(memory_format=torch.contiguous_format)
        return output.to_local() if self.use_local_output else output

    def _apply(self, module: nn.Module, device_mesh) -> nn.Module:
        return distribute_module(module, device_mesh, self._replicate_params,
                                 self._shard_input, self._gather_output)


def _split_linears(block: nn.Module, strict: bool = True) -> list[tuple[str, str]]:
    """(child path, 'colwise' | 'rowwise') for every Linear 1D splits in `block`, by module
    type, so that feed-forward variants made of MLPs (pairs, absolute widths) split alike.
    A child with parameters that has no 1D rule (FFF) raises when `strict`, else it is left
    replicated: the cost model also reads this for layouts without tensor parallelism, and
    plan.py refuses FFF with tensor size > 1 before anything is costed."""
    out = []
    for name, module in block.named_children():
        if isinstance(module, Attention):
            out += [(f"{name}.{lin}", "colwise") for lin in ("q", "k", "v")]
            out.append((f"{name}.proj", "rowwise"))
        elif isinstance(module, MLP):
            out += [(f"{name}.fc1", "colwise"), (f"{name}.fc2", "rowwise")]
        elif strict and not isinstance(module, nn.LayerNorm) and any(
                True for _ in module.parameters()):
            raise ConfigError(f"1D tensor parallelism has no plan for {type(module).__name__} "
                              f"(block.{name}): use a plain MLP feed-forward, or tensor size 1")
    return out


def block_plan(block: nn.Module, sequence_parallel: bool, seq_length: int) -> dict:
    """The 1D plan of one transformer block (see the module docstring)."""
    after_pair = Shard(1) if sequence_parallel else Replicate()   # what proj/fc2 hand back
    plan: dict[str, ParallelStyle] = {}
    for path, style in _split_linears(block):
        plan[path] = ColwiseParallel() if style == "colwise" else \
            RowwiseParallel(output_layouts=after_pair)
    for name, module in block.named_children():
        if isinstance(module, Attention) and not sequence_parallel:
            # One Replicate DTensor for q, k and v to read (with sequence parallelism the
            # norm in front hands one over).
            plan[name] = PrepareModuleInput(input_layouts=(Replicate(),),
                                            desired_input_layouts=(Replicate(),))
        elif isinstance(module, nn.LayerNorm) and sequence_parallel:
            plan[name] = SequenceParallelNorm(seq_length)
    return plan


def split_dims(model: nn.Module, class_parallel_head: bool) -> dict[str, int | None]:
    """{parameter name: the dimension 1D splits it along, or None if replicated}: the same
    rules as block_plan and apply_1d, for the cost model (parallel/costs.py)."""
    dims: dict[str, int | None] = {name: None for name, _ in model.named_parameters()}
    for i, block in enumerate(model.blocks):
        for path, style in _split_linears(block, strict=False):
            dims[f"blocks.{i}.{path}.weight"] = 0 if style == "colwise" else 1
            if f"blocks.{i}.{path}.bias" in dims and style == "colwise":
                dims[f"blocks.{i}.{path}.bias"] = 0
    if class_parallel_head:
        dims["head.weight"], dims["head.bias"] = 0, 0
    return dims


def apply_1d(model: nn.Module, tp_mesh, sequence_parallel: bool, class_parallel_head: bool
             ) -> None:
    """Shard `model` (on any device, meta included) in place over the 1-D mesh `tp_mesh`."""
    seq_length = model.size.seq_length
    for block in model.blocks:
        parallelize_module(block, tp_mesh, block_plan(block, sequence_parallel, seq_length))
    top: dict[str, ParallelStyle] = {}
    if sequence_parallel:
        # Replicate -> Shard(1) is a local slice: each rank keeps its tokens, no communication.
        top["blocks.0"] = PrepareModuleInput(input_layouts=Replicate(),
                                             desired_input_layouts=Shard(1),
                                             use_local_output=True)
        top["norm"] = SequenceParallelNorm(seq_length, use_local_output=True)
    if class_parallel_head:
        top["head"] = ColwiseParallel(use_local_output=False)
    if top:
        parallelize_module(model, tp_mesh, top)
