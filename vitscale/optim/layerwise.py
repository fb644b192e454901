"""What LAMB (lamb.py) and LARS (lars.py) share: the step's closure, and each parameter group
handed over with only its parameters that have gradients (their norms are taken together)."""

from __future__ import annotations

import torch


class LayerwiseOptimizer(torch.optim.Optimizer):
    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if params:
                self.step_group(group, params)
        return loss

    def step_group(self, group: dict, params: list[torch.Tensor]) -> None:
        raise NotImplementedError
