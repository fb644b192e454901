"""Exponential moving average of the weights (Polyak averaging), evaluated and exported when on.

Polyak and Juditsky 1992 ("Acceleration of Stochastic Approximation by Averaging") average the
iterates; the exponential form, ema <- d ema + (1 - d) w after every optimizer step, is
TensorFlow's tf.train.ExponentialMovingAverage and timm's ModelEmaV2/V3. With EMA_WARMUP the
decay of step t (1-based) is min(EMA_DECAY, (1 + t) / (10 + t)) (TensorFlow's `num_updates`
rule): early averages forget the random initialisation quickly instead of dragging it along.
airbench (Jordan 2024) and DeiT (Touvron et al. 2021) evaluate such averages.

    ema = WeightEMA(module, decay=0.999, warmup=True)
    ema.update(step)                 # after each optimizer step
    with ema.swapped(module):        # evaluation and export see the averaged weights
        evaluate(...)

The average is kept in float32 beside the model, over parameters and floating buffers. Each
rank keeps its own copy: under DDP the weights, hence the averages, are identical on every
rank. Layouts that shard the weights (tensor, pipeline, FSDP) are refused at start (plan.py).
"""

from __future__ import annotations

import contextlib

import torch


class WeightEMA:
    def __init__(self, module: torch.nn.Module, decay: float, warmup: bool = True):
        self.decay, self.warmup = decay, warmup
        self.names = [n for n, t in _tensors(module)]
        self.shadow = [t.detach().float().clone() for _, t in _tensors(module)]

    def decay_at(self, step: int) -> float:
        """The decay used after optimizer step `step` (1-based)."""
        return min(self.decay, (1 + step) / (10 + step)) if self.warmup else self.decay

    @torch.no_grad()
    def update(self, module: torch.nn.Module, step: int) -> None:
        """ema <- d ema + (1 - d) w, one fused call over all tensors."""
        live = [t.detach().float() for _, t in _tensors(module)]
        torch._foreach_lerp_(self.shadow, live, 1.0 - self.decay_at(step))

    @contextlib.contextmanager
    def swapped(self, module: torch.nn.Module):
        """The averaged weights in `module` for the duration; the trained ones after."""
        tensors = [t for _, t in _tensors(module)]
        saved = [t.detach().clone() for t in tensors]
        with torch.no_grad():
            for t, s in zip(tensors, self.shadow):
                t.copy_(s)
        try:
            yield
        finally:
            with torch.no_grad():
                for t, s in zip(tensors, saved):
                    t.copy_(s)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "warmup": self.warmup,
                "shadow": dict(zip(self.names, (s.cpu() for s in self.shadow)))}

    def load_state_dict(self, state: dict) -> None:
        for s, name in zip(self.shadow, self.names):
            s.copy_(state["shadow"][name])


def _tensors(module: torch.nn.Module):
    """(name, tensor) of every parameter and floating-point buffer, in a fixed order."""
    yield from module.named_parameters()
    yield from ((n, b) for n, b in module.named_buffers() if b.is_floating_point())
