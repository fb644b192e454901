"""The one precision policy: every decision about dtypes, loss scaling and master weights.

| mode        | config                                  | weights (model / optimizer) | compute            | loss scaling          |
|-------------|-----------------------------------------|-----------------------------|--------------------|-----------------------|
| fp32        | (default)                               | fp32 / fp32                 | fp32 (TF32 on GPU) | -                     |
| fp16        | fp16 = dict(mode=AMP_TYPE.TORCH)        | fp32 / fp32                 | autocast fp16      | torch GradScaler      |
| naive_fp16  | fp16 = dict(mode=AMP_TYPE.NAIVE, ...)   | fp16 / fp32 master copies   | fp16 everywhere    | DynamicLossScaler     |
| apex        | fp16 = dict(mode=AMP_TYPE.APEX)         | apex O1 (NVIDIA apex)       | apex O1 casts      | apex                  |
| bf16        | precision = 'bf16'                      | fp32 / fp32                 | autocast bf16      | - (fp32's exponent)   |
| pure_bf16   | precision = 'pure_bf16'                 | bf16 / fp32 master copies   | bf16 everywhere    | -                     |

Seed 002 compares fp32, torch AMP, apex O1 and naive fp16 on ViT-B/16. The naive mode follows
Colossal-AI's NaiveAMP (Micikevicius et al. 2018, "Mixed Precision Training"): the model is
cast to fp16, the optimizer steps fp32 master copies, and a dynamic loss scaler multiplies the
loss before backward, skips a step whose gradients overflow, backs off after `hysteresis`
overflows and grows after `growth_interval` clean steps.

The policy in force is printed at start (`Precision.describe`).
"""

from __future__ import annotations

import contextlib
import enum
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .errors import ConfigError


class AMP_TYPE(str, enum.Enum):  # noqa: N801 - the seeds' spelling, available inside config files
    """Mixed-precision back ends, as named by Colossal-AI configs (`fp16 = dict(mode=...)`)."""

    TORCH = "torch"
    NAIVE = "naive"
    APEX = "apex"
    # Colossal-AI's first releases called naive fp16 PARALLEL (`fp16 = dict(mode=AMP_TYPE.PARALLEL)`
    # in its early ViT configs): an alias, so AMP_TYPE.PARALLEL is AMP_TYPE.NAIVE.
    PARALLEL = "naive"

    def __repr__(self) -> str:  # printed in resolved configs
        return f"AMP_TYPE.{self.name}"


PRECISIONS = ("fp32", "fp16", "bf16", "naive_fp16", "pure_bf16", "apex")
_FP16_MODES = {AMP_TYPE.TORCH: "fp16", AMP_TYPE.NAIVE: "naive_fp16", AMP_TYPE.APEX: "apex"}
_APEX_HELP = ("fp16 mode AMP_TYPE.APEX needs NVIDIA apex, which is not installed: install it "
              "from https://github.com/NVIDIA/apex, or use fp16 = dict(mode=AMP_TYPE.TORCH)")


def resolve_precision_name(precision: str | None, fp16_mode: AMP_TYPE | None) -> str:
    """The precision name from `precision = ...` and `fp16 = dict(mode=...)` (checked to agree)."""
    if fp16_mode is not None:
        name = _FP16_MODES[fp16_mode]
        if precision not in (None, name):
            raise ConfigError(f"fp16 = dict(mode={fp16_mode!r}) conflicts with precision = "
                              f"{precision!r}: keep one of the two")
        return name
    return precision or "fp32"


def check_available(name: str) -> None:
    """Fail at start, with the fix, if the mode needs something this machine lacks."""
    if name == "apex":
        try:
            import apex.amp  # noqa: F401
        except ImportError:
            raise ConfigError(_APEX_HELP) from None


@dataclass
class ScalerSettings:
    """Dynamic loss-scale options, as given in `fp16 = dict(mode=..., init_scale=..., ...)`."""

    init_scale: float = 2.0**16
    growth_factor: float = 2.0
    backoff_factor: float = 0.5
    growth_interval: int = 1000
    hysteresis: int = 2
    min_scale: float = 1.0
    max_scale: float = 2.0**24


class DynamicLossScaler:
    """The naive mode's loss scale (Colossal-AI's DynamicGradScaler rules).

    After an overflowing step: the growth count restarts, the hysteresis budget drops by one,
    and once it is spent the scale is multiplied by `backoff_factor` (not below min_scale).
    After `growth_interval` clean steps in a row: the scale is multiplied by `growth_factor`
    (not above max_scale) and the hysteresis budget is refilled.
    """

    def __init__(self, settings: ScalerSettings):
        self.settings = settings
        self.scale = float(settings.init_scale)
        self.growth_tracker = 0
        self.hysteresis_tracker = settings.hysteresis

    def update(self, overflow: bool) -> None:
        s = self.settings
        if overflow:
            self.growth_tracker = 0
            self.hysteresis_tracker -= 1
            if self.hysteresis_tracker <= 0:
                self.scale = max(self.scale * s.backoff_factor, s.min_scale)
        else:
            self.growth_tracker += 1
            if self.growth_tracker == s.growth_interval:
                self.growth_tracker = 0
                self.hysteresis_tracker = s.hysteresis
                self.scale = min(self.scale * s.growth_factor, s.max_scale)

    def state_dict(self) -> dict:
        return {"scale": self.scale, "growth_tracker": self.growth_tracker,
                "hysteresis_tracker": self.hysteresis_tracker}

    def load_state_dict(self, state: dict) -> None:
        self.scale = float(state["scale"])
        self.growth_tracker = int(state["growth_tracker"])
        self.hysteresis_tracker = int(state["hysteresis_tracker"])


def _optimizer_params(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [p for group in optimizer.param_groups for p in group["params"]]


def _clip(optimizer: torch.optim.Optimizer, clip: float | None, groups: tuple = ()
          ) -> torch.Tensor | None:
    if not clip:
        return None
    from .optim.norms import clip_grad_norm_
    return clip_grad_norm_(_optimizer_params(optimizer), clip, groups)


class Precision:
    """fp32, and the interface every mode implements. The Engine calls, in order:

    prepare_model(model) -> optimizer_groups(groups) -> attach(model, optimizer), once;
    then per micro-step autocast() around the forward, cast_input(x), backward(loss);
    then per optimizer step step(optimizer, clip) -> True if the optimizer stepped.
    """

    name = "fp32"
    loss_scale: float | None = None
    # Process groups over which the gradient norm for clipping also adds up: the pipeline
    # group, whose other ranks hold the other stages' parameters (set by the engine).
    norm_groups: tuple = ()

    def __init__(self, device: torch.device):
        self.device = device
        self.skipped_steps = 0
        self.last_grad_norm: torch.Tensor | None = None  # before clipping, when clipping

    def describe(self) -> str:
        tf32 = " (TF32 matmuls on GPU)" if self.device.type == "cuda" else ""
        return f"fp32: float32 weights, activations and gradients{tf32}"

    def prepare_model(self, model):
        return model

    def optimizer_groups(self, groups: list[dict]) -> list[dict]:
        return groups

    def state_module(self, model):
        """The module whose parameters the optimizer steps (checkpoints and exports read it)."""
        return model

    def after_load(self, model) -> None:
        """Called after a checkpoint was loaded into `state_module(model)`."""

    def attach(self, model, optimizer):
        return model, optimizer

    def autocast(self):
        return contextlib.nullcontext()

    def cast_input(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def step(self, optimizer: torch.optim.Optimizer, clip: float | None) -> bool:
        self.last_grad_norm = _clip(optimizer, clip, self.norm_groups)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return True

    def state_dict(self) -> dict:
        """Skipped steps, and the loss scaler's state in the modes that have one."""
        scaler = getattr(self, "scaler", None)
        return {"skipped_steps": self.skipped_steps,
                **({"scaler": scaler.state_dict()} if scaler else {})}

    def load_state_dict(self, state: dict) -> None:
        self.skipped_steps = int(state.get("skipped_steps", 0))
        scaler = getattr(self, "scaler", None)
        if scaler and "scaler" in state:
            scaler.load_state_dict(state["scaler"])


class AgreeingGradScaler(torch.amp.GradScaler):
    """torch's dynamic GradScaler, for gradients that are DTensors or shards.

    Unscaling runs on each gradient's local tensor (torch's version feeds plain and DTensor
    gradients to one foreach kernel, which DTensor refuses), and the overflow flag is
    all-reduced (MAX, one value) over every rank, so that all ranks skip the same steps and
    keep the same scale: a shard can overflow where its peers do not. FSDP1's
    ShardedGradScaler makes the same two changes for flat parameters.
    """

    def _unscale_grads_(self, optimizer, inv_scale, found_inf, allow_fp16):
        from .optim.norms import local
        by_device: dict[tuple, list[torch.Tensor]] = {}
        for group in optimizer.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    g = local(p.grad)
                    by_device.setdefault((g.device, g.dtype), []).append(g)
        found = {}
        for (device, _), grads in by_device.items():
            flag = found.setdefault(device, found_inf.to(device))
            torch._amp_foreach_non_finite_check_and_unscale_(grads, flag, inv_scale.to(device))
        return found or {found_inf.device: found_inf}

    def unscale_(self, optimizer) -> None:
        super().unscale_(optimizer)
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            for flag in self._per_optimizer_states[id(optimizer)]["found_inf_per_device"].values():
                dist.all_reduce(flag, op=dist.ReduceOp.MAX)


class AutocastPrecision(Precision):
    """fp32 weights, autocast compute; fp16 adds a dynamic GradScaler (AgreeingGradScaler)."""

    def __init__(self, device: torch.device, dtype: torch.dtype, scaler: ScalerSettings | None):
        super().__init__(device)
        self.dtype = dtype
        self.name = "fp16" if dtype == torch.float16 else "bf16"
        self.scaler = None if scaler is None else AgreeingGradScaler(
            device.type, init_scale=scaler.init_scale, growth_factor=scaler.growth_factor,
            backoff_factor=scaler.backoff_factor, growth_interval=scaler.growth_interval)

    def describe(self) -> str:
        if self.scaler is None:
            return "bf16: float32 weights, autocast to bfloat16, no loss scaling"
        return "fp16 (torch AMP): float32 weights, autocast to float16, dynamic loss scaling"

    def autocast(self):
        return torch.autocast(self.device.type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler else loss).backward()

    def step(self, optimizer, clip):
        if self.scaler is None:
            return super().step(optimizer, clip)
        self.scaler.unscale_(optimizer)
        self.last_grad_norm = _clip(optimizer, clip, self.norm_groups)
        self.scaler.step(optimizer)
        self.scaler.update()
        optimizer.zero_grad(set_to_none=True)
        return True  # the scaler may skip internally; its scale records that

    @property
    def loss_scale(self):
        return self.scaler.get_scale() if self.scaler else None


class MasterWeightPrecision(Precision):
    """Model in fp16/bf16, optimizer on fp32 master copies (naive_fp16 and pure_bf16)."""

    def __init__(self, device: torch.device, dtype: torch.dtype, scaler: ScalerSettings | None):
        super().__init__(device)
        self.dtype = dtype
        self.name = "naive_fp16" if dtype == torch.float16 else "pure_bf16"
        self.scaler = DynamicLossScaler(scaler) if scaler is not None else None
        self.master = None                # fp32 copy of the model: the optimizer steps it
        self.pairs: list[tuple[torch.Tensor, torch.Tensor]] = []  # (model param, master)

    def describe(self) -> str:
        if self.scaler is None:
            return "pure_bf16: bfloat16 weights and activations, fp32 master weights, no loss scaling"
        return ("naive_fp16: float16 weights and activations, fp32 master weights, dynamic loss "
                f"scale {self.scaler.scale:g} (x{self.scaler.settings.growth_factor:g} every "
                f"{self.scaler.settings.growth_interval} clean steps, "
                f"x{self.scaler.settings.backoff_factor:g} after "
                f"{self.scaler.settings.hysteresis} overflows)")

    @property
    def loss_scale(self):
        return self.scaler.scale if self.scaler else None

    def prepare_model(self, model):
        import copy
        self.master = copy.deepcopy(model).float()   # same names, fp32: checkpoints use it
        self._master_of = {id(p): m for p, m in zip(model.parameters(), self.master.parameters())}
        return model.to(self.dtype)                   # Module.to keeps the Parameter objects

    def optimizer_groups(self, groups):
        out = []
        for group in groups:
            masters = [self._master_of[id(p)] for p in group["params"]]
            self.pairs.extend(zip(group["params"], masters))
            out.append({**group, "params": masters})
        return out

    def state_module(self, model):
        return self.master

    @torch.no_grad()
    def after_load(self, model) -> None:
        from .optim.norms import local
        for p, master in self.pairs:
            local(p).copy_(local(master))

    def cast_input(self, x):
        return x.to(self.dtype) if x.is_floating_point() else x

    def backward(self, loss):
        (loss.float() * self.scaler.scale if self.scaler else loss).backward()

    @torch.no_grad()
    def step(self, optimizer, clip):
        from .optim.norms import local
        grads = []
        for p, master in self.pairs:
            master.grad = None if p.grad is None else p.grad.float()
            p.grad = None
            if master.grad is not None:
                grads.append(local(master.grad))
        if self.scaler is not None and grads:
            # One fused pass: divide by the scale and flag any inf/NaN.
            found_inf = torch.zeros(1, device=grads[0].device)
            inv_scale = torch.full((1,), 1.0 / self.scaler.scale, device=grads[0].device)
            torch._amp_foreach_non_finite_check_and_unscale_(grads, found_inf, inv_scale)
            if dist.is_available() and dist.is_initialized():  # sharded grads: any rank's inf
                dist.all_reduce(found_inf, op=dist.ReduceOp.MAX)
            overflow = bool(found_inf.item())
            self.scaler.update(overflow)
            if overflow:
                self.skipped_steps += 1
                optimizer.zero_grad(set_to_none=True)
                self.last_grad_norm = None
                return False
        self.last_grad_norm = _clip(optimizer, clip, self.norm_groups)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        for p, master in self.pairs:
            local(p).copy_(local(master))
        return True


class ApexPrecision(Precision):
    """NVIDIA apex O1 (seed 002's AMP_TYPE.APEX): apex patches casts and scales the loss."""

    name = "apex"

    def __init__(self, device):
        super().__init__(device)
        check_available("apex")
        from apex import amp
        self.amp = amp
        self.optimizer = None

    def describe(self):
        return "apex O1: float32 weights, apex's per-op casts to float16, apex loss scaling"

    def attach(self, model, optimizer):
        model, optimizer = self.amp.initialize(model, optimizer, opt_level="O1", verbosity=0)
        self.optimizer = optimizer
        return model, optimizer

    def backward(self, loss):
        with self.amp.scale_loss(loss, self.optimizer) as scaled:
            scaled.backward()

    def step(self, optimizer, clip):
        if clip:
            from .optim.norms import clip_grad_norm_
            self.last_grad_norm = clip_grad_norm_(list(self.amp.master_params(optimizer)), clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return True


class ShardedPrecision(Precision):
    """bf16 / pure_bf16 under FSDP2: its MixedPrecisionPolicy casts parameters to bf16 for
    compute and reduces gradients in fp32; the sharded fp32 parameters are the masters."""

    def __init__(self, device: torch.device, name: str):
        super().__init__(device)
        self.name = name

    def describe(self) -> str:
        return (f"{self.name} through FSDP2: bf16 compute, fp32 sharded master weights, "
                "fp32 gradient reduce-scatter")


def build_precision(name: str, device: torch.device, scaler: ScalerSettings | None = None,
                    sharded: bool = False) -> Precision:
    """The Precision object for mode `name` (see the table above); `sharded`: under FSDP2,
    whose MixedPrecisionPolicy then does bf16's casting (fp16 keeps autocast and a scaler)."""
    scaler = scaler or ScalerSettings()
    if sharded and name in ("bf16", "pure_bf16"):
        return ShardedPrecision(device, name)
    if name == "fp32":
        return Precision(device)
    if name == "fp16":
        return AutocastPrecision(device, torch.float16, scaler)
    if name == "bf16":
        return AutocastPrecision(device, torch.bfloat16, None)
    if name == "naive_fp16":
        return MasterWeightPrecision(device, torch.float16, scaler)
    if name == "pure_bf16":
        return MasterWeightPrecision(device, torch.bfloat16, None)
    if name == "apex":
        return ApexPrecision(device)
    raise ConfigError(f"unknown precision {name!r}: choose one of {', '.join(PRECISIONS)}")
