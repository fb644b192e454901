"""Model selection and early stopping, without peeking at the test set.

The best model is the one with the best SELECTION_METRIC ('acc1', higher is better, or
'loss', lower is better) on the validation split carved from train (VAL_SPLIT images), or on
the test split when there is no validation split (seed 004's practice; the run says so).
EARLY_STOPPING_PATIENCE evaluations in a row without improvement stop the run.
"""

from __future__ import annotations

import math


class Selection:
    def __init__(self, metric: str = "acc1", patience: int | None = None):
        self.metric = metric
        self.patience = patience
        self.best = -math.inf if metric == "acc1" else math.inf
        self.best_epoch = 0
        self.bad_evals = 0

    def update(self, record: dict) -> bool:
        """Feed one evaluation record; True if it is the best so far."""
        value = record[self.metric]
        better = value > self.best if self.metric == "acc1" else value < self.best
        if better:
            self.best, self.best_epoch, self.bad_evals = value, record["epoch"], 0
        else:
            self.bad_evals += 1
        return better

    @property
    def should_stop(self) -> bool:
        return self.patience is not None and self.bad_evals >= self.patience

    def state_dict(self) -> dict:
        return {"metric": self.metric, "best": self.best, "best_epoch": self.best_epoch,
                "bad_evals": self.bad_evals}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_epoch = float(state["best"]), int(state["best_epoch"])
        self.bad_evals = int(state["bad_evals"])
