"""What one rank holds and sends: parameters, activations and communication, measured.

The measured side of the one cost model (parallel/costs.py is the analytic side; tests and
docs/parallelism.md hold the two against each other). The engine measures its first
optimizer step and records the result in the log, metrics.jsonl and summary.json.

* CommLedger counts every collective that passes the dispatcher while it is active: DTensor's
  (tensor parallelism, loss_parallel), FSDP2's, DDP's bucketed all-reduce and any explicit
  one (norms, metrics). Bytes are per rank, as a ring algorithm moves them (what NCCL's tests
  call bus bytes), for a message of S bytes on a group of n ranks:

      all-reduce 2 (n-1)/n S     all-gather (n-1)/n S_out     reduce-scatter (n-1)/n S_in
      broadcast (n-1)/n S        all-to-all (n-1)/n S_in      send S

  Groups of one rank move nothing and are not recorded. Each collective is filed under the
  mesh dimension of its group ("tp", "dp", ...; "world" for the default group).
* ActivationMeter sums the bytes of the tensors autograd keeps for backward during a forward
  pass (unique storages, parameters excluded): the activation memory of one micro-batch. A
  checkpointed block keeps only its input, which the meter adds; its recomputation in
  backward briefly holds one block's activations on top.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict

import torch
import torch.distributed as dist
from torch.utils._python_dispatch import TorchDispatchMode

_COMM_NAMESPACES = ("_c10d_functional", "c10d", "c10d_functional")
_KINDS = (("all_reduce", "all_reduce"), ("allreduce", "all_reduce"),
          ("all_gather", "all_gather"), ("allgather", "all_gather"),
          ("reduce_scatter", "reduce_scatter"), ("broadcast", "broadcast"),
          ("all_to_all", "all_to_all"), ("alltoall", "all_to_all"), ("send", "send"))


def _kind(func) -> str | None:
    if getattr(func, "namespace", None) not in _COMM_NAMESPACES:
        return None
    name = func._opname
    return next((kind for key, kind in _KINDS if key in name), None)


def _tensor_bytes(value) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, (list, tuple)):
        return sum(_tensor_bytes(v) for v in value)
    return 0


def bus_bytes(kind: str, message_bytes: float, n: int) -> float:
    """Bytes one rank sends for a collective of `message_bytes` on `n` ranks (see above).
    For all-gather `message_bytes` is the gathered output; for the others, the input."""
    if n <= 1:
        return 0.0
    if kind == "all_reduce":
        return 2 * (n - 1) / n * message_bytes
    if kind == "send":
        return float(message_bytes)
    return (n - 1) / n * message_bytes


def mesh_group_names(mesh) -> dict[frozenset, str]:
    """{ranks of a group: mesh dimension name} for every dimension of `mesh` and the world.

    Groups are recognised by their members, not their names: several meshes over the same
    ranks may share, or not share, process groups."""
    names: dict[frozenset, str] = {}
    if not (dist.is_available() and dist.is_initialized()):
        return names
    if mesh is not None:
        for dim in mesh.mesh_dim_names:
            ranks = frozenset(dist.get_process_group_ranks(mesh.get_group(dim)))
            if len(ranks) > 1:
                names.setdefault(ranks, "dp" if dim.startswith("dp_") else dim)
    names.setdefault(frozenset(range(dist.get_world_size())), "world")
    return names


class CommLedger(TorchDispatchMode):
    """Records (mesh dimension, collective) -> calls and bytes per rank while active."""

    def __init__(self, group_names: dict[frozenset, str]):
        super().__init__()
        self.group_names = group_names
        self.calls: dict[tuple[str, str], int] = defaultdict(int)
        self.bytes: dict[tuple[str, str], float] = defaultdict(float)
        self.events: list[tuple[str, str, float]] = []   # (dim, collective, bytes) in order

    def _group(self, func, args, kwargs) -> tuple[str, int]:
        """(mesh dimension, size) of the process group a collective runs on."""
        from torch.distributed.distributed_c10d import ProcessGroup, _resolve_process_group
        group = None
        schema = func._schema.arguments
        names = [a.name for a in schema]
        for i, a in enumerate(schema):              # c10d ops carry a ProcessGroup object
            if "ProcessGroup" in str(a.type) and i < len(args):
                v = args[i]
                group = ProcessGroup.unbox(v) if isinstance(v, torch.ScriptObject) else v
        if group is None:                           # functional collectives name it
            if "group_name" in names and names.index("group_name") < len(args):
                group = _resolve_process_group(args[names.index("group_name")])
            elif "group_name" in kwargs:
                group = _resolve_process_group(kwargs["group_name"])
        if group is None:
            return "other", 1
        ranks = frozenset(dist.get_process_group_ranks(group))
        return self.group_names.get(ranks, "other"), len(ranks)

    def _message_bytes(self, func, kind: str, args, n: int) -> int:
        schema = [a.name for a in func._schema.arguments]
        named = dict(zip(schema, args))
        if kind == "all_gather":
            if "output_tensor" in named:          # c10d._allgather_base_(output, input, ...)
                return _tensor_bytes(named["output_tensor"])
            if "output_tensors" in named:
                return _tensor_bytes(named["output_tensors"])
            return n * _tensor_bytes(named.get("input", named.get("inputs", args[0])))
        for key in ("input_tensor", "input", "inputs", "tensors", "input_tensors", "tensor"):
            if key in named:
                return _tensor_bytes(named[key])
        return _tensor_bytes(args[0])

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        from ..optim.norms import DTensor
        if isinstance(func, torch._ops.HigherOrderOperator):
            return func(*args, **kwargs)
        if any(t is DTensor or (isinstance(t, type) and issubclass(t, DTensor)) for t in types):
            return NotImplemented  # let DTensor turn the op into collectives; we see those
        kind = _kind(func)
        if kind is not None:
            dim, n = self._group(func, args, kwargs)
            if n > 1:
                sent = bus_bytes(kind, self._message_bytes(func, kind, args, n), n)
                self.calls[(dim, kind)] += 1
                self.bytes[(dim, kind)] += sent
                self.events.append((dim, kind, sent))
        return func(*args, **kwargs)

    def summary(self) -> dict:
        """{dim: {collective: {"calls": c, "bytes": b}}} plus {"total_bytes": ...}."""
        out: dict = {}
        for (dim, kind), calls in sorted(self.calls.items()):
            out.setdefault(dim, {})[kind] = {"calls": calls, "bytes": round(self.bytes[(dim, kind)])}
        return {"by_dim": out, "total_bytes": round(sum(self.bytes.values()))}


class ActivationMeter:
    """Bytes kept for backward by the forward passes run inside `measure()`."""

    def __init__(self, model: torch.nn.Module):
        from ..optim.norms import local
        self.params = {local(p).untyped_storage().data_ptr() for p in model.parameters()
                       if local(p).device.type != "meta"}
        self.model = model
        self.seen: dict[int, int] = {}

    def _pack(self, t: torch.Tensor):
        from ..optim.norms import local
        if isinstance(t, torch.nn.Parameter) or isinstance(t._base, torch.nn.Parameter):
            return t  # a weight (or its transpose) saved for its gradient: not new memory
        storage = local(t).untyped_storage()
        ptr = storage.data_ptr()
        if ptr not in self.params:
            self.seen.setdefault(ptr, storage.nbytes())
        return t

    def _checkpoint_input(self, module, args):
        if torch.is_grad_enabled():
            for a in args:
                if isinstance(a, torch.Tensor):
                    self._pack(a)

    @contextlib.contextmanager
    def measure(self):
        from .checkpointing import is_checkpointed
        handles = [m.register_forward_pre_hook(self._checkpoint_input)
                   for m in self.model.modules() if is_checkpointed(m)]
        try:
            with torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t):
                yield self
        finally:
            for h in handles:
                h.remove()

    @property
    def bytes(self) -> int:
        return sum(self.seen.values())


def parameter_footprint(model: torch.nn.Module) -> dict:
    """Parameters this rank holds (its shards) next to the model's total."""
    import math

    from ..optim.norms import local
    from .tensor.grid import full_shape
    params = list(model.parameters())
    held = sum(local(p).numel() for p in params)
    return {"parameters_per_rank": held,
            "parameter_bytes_per_rank": sum(local(p).numel() * local(p).element_size()
                                            for p in params),
            "parameters_total": sum(math.prod(full_shape(p)) for p in params)}
