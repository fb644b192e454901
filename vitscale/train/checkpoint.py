"""Checkpoints: everything needed to continue a run exactly, written so that none is ever lost.

    runs/<name>/checkpoints/step-00001950/
        .metadata, __*_*.distcp   model and optimizer, sharded as they live in training
                                  (torch.distributed.checkpoint: each rank writes its shards)
        rank-00000.pt ...         each rank's RNG states (tensors only; weights_only loading)
        trainer.json              epoch, step, data position, best metric, early-stopping
                                  counters, LR schedule and loss-scaler state, layout
        COMPLETE                  written last: the size of every file above

A checkpoint is written into `step-N.partial/` and renamed to `step-N/` by rank 0 once every
rank has finished: a crash mid-write leaves only a `.partial` folder, which is ignored and
removed later. The last `keep` checkpoints are kept. On resume the newest checkpoint whose
files match its COMPLETE manifest is loaded; if one fails to load (truncated, corrupt) the
previous one is used, with a warning.

Loading goes through torch.distributed.checkpoint.state_dict, which reshards: a checkpoint
written by 2 FSDP ranks loads on 1 process or on 4, and DDP and FSDP checkpoints load into
each other.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shutil
import warnings
from pathlib import Path

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.api import CheckpointException  # a BaseException
from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict,
                                                     get_state_dict, set_model_state_dict,
                                                     set_optimizer_state_dict, set_state_dict)

from ..errors import VitscaleError

_NAME = re.compile(r"^step-(\d{8})$")


def _dist() -> bool:
    return dist.is_available() and dist.is_initialized()


def _rank() -> int:
    return dist.get_rank() if _dist() else 0


def _barrier() -> None:
    if _dist():
        dist.barrier()


@contextlib.contextmanager
def _quiet_single_process():
    """DCP warns that it runs in a single process even when told so: that is intended here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        yield


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


class CheckpointManager:
    def __init__(self, directory: str | os.PathLike, keep: int = 2):
        self.directory = Path(directory)
        self.keep = keep

    # ---- finding ----------------------------------------------------------------------------

    def complete(self) -> list[Path]:
        """Checkpoints whose COMPLETE manifest matches the files on disk, oldest first."""
        if not self.directory.is_dir():
            return []
        found = sorted(p for p in self.directory.iterdir() if _NAME.match(p.name))
        return [p for p in found if self._intact(p)]

    @staticmethod
    def _intact(path: Path) -> bool:
        try:
            manifest = json.loads((path / "COMPLETE").read_text())
            return all((path / name).stat().st_size == size
                       for name, size in manifest["files"].items())
        except (OSError, ValueError, KeyError):
            return False

    # ---- saving -----------------------------------------------------------------------------

    def save(self, engine, trainer_state: dict) -> Path:
        """Collective: every rank calls it at the same step."""
        step = trainer_state["step"]
        final = self.directory / f"step-{step:08d}"
        partial = final.with_name(final.name + ".partial")
        if _rank() == 0:
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(parents=True)
        _barrier()
        module = engine.precision.state_module(engine.model)
        if _is_zero(engine.optimizer):  # ZeRO-1: gather the optimizer state on rank 0
            engine.optimizer.consolidate_state_dict(to=0)
            state = {"model": get_model_state_dict(module)}
            if _rank() == 0:
                torch.save(_zero_to_fqn(engine.optimizer.state_dict(), engine.optimizer, module),
                           partial / "optimizer_full.pt")
        else:
            state = _global_state(engine, module)
        with _quiet_single_process():
            dcp.save(state, checkpoint_id=str(partial), no_dist=not _dist())
        torch.save(_rng_state(), partial / f"rank-{_rank():05d}.pt")
        _barrier()
        if _rank() == 0:
            extra = {**trainer_state, "scheduler": engine.scheduler.state_dict(),
                     "precision": engine.precision.state_dict()}
            if getattr(engine, "ema", None) is not None:  # replicated: rank 0 saves it
                torch.save(engine.ema.state_dict(), partial / "ema.pt")
            (partial / "trainer.json").write_text(json.dumps(extra, indent=2) + "\n")
            files = {p.name: p.stat().st_size for p in partial.iterdir() if p.is_file()}
            (partial / "COMPLETE").write_text(json.dumps({"step": step, "files": files}))
            shutil.rmtree(final, ignore_errors=True)  # a stale copy of the same step
            os.replace(partial, final)
            self._prune()
        _barrier()
        return final

    def _prune(self) -> None:
        for p in self.directory.iterdir():
            if p.name.endswith(".partial"):
                shutil.rmtree(p, ignore_errors=True)
        for old in self.complete()[:-self.keep]:
            shutil.rmtree(old, ignore_errors=True)

    # ---- loading ----------------------------------------------------------------------------

    def load_latest(self, engine) -> dict | None:
        """Load the newest loadable checkpoint into `engine`; its trainer state, or None."""
        candidates = self.complete()
        if self.directory.is_dir():
            newest = max((p for p in self.directory.iterdir() if _NAME.match(p.name)),
                         default=None)
            if newest is not None and newest not in candidates and _rank() == 0:
                warnings.warn(f"checkpoint {newest} is incomplete or damaged (its files do "
                              "not match its COMPLETE manifest); using the previous one",
                              stacklevel=2)
        error = None
        for path in reversed(candidates):
            try:
                return self.load(path, engine)
            except (Exception, CheckpointException) as e:  # truncated or corrupt: fall back
                error = e
                warnings.warn(f"checkpoint {path} could not be loaded ({type(e).__name__}: "
                              f"{str(e)[:300]}); trying the previous one", stacklevel=2)
        if error is not None:  # never start over silently on top of a run's checkpoints
            raise VitscaleError(f"no checkpoint in {self.directory} could be loaded (last: "
                                f"{type(error).__name__}: {str(error)[:200]}): pass --reset to "
                                "start over (the old run is kept aside)")
        return None

    def load(self, path: Path, engine) -> dict:
        module = engine.precision.state_module(engine.model)
        full_optim = path / "optimizer_full.pt"
        if full_optim.is_file() or _is_zero(engine.optimizer):
            self._load_full_optimizer(path, full_optim, module, engine.optimizer)
        else:
            state = _global_state(engine, module)
            live_groups = _live_groups(module, engine.optimizer)
            with _quiet_single_process():
                dcp.load(state, checkpoint_id=str(path), no_dist=not _dist())
            to_local = engine.parallel.to_local
            optim = {"state": to_local(state["optim"]["state"]),
                     "param_groups": _groups_from_names(state["optim"]["param_groups"],
                                                        live_groups)}
            set_state_dict(module, engine.optimizer, model_state_dict=to_local(state["model"]),
                           optim_state_dict=optim, options=StateDictOptions(strict=True))
        engine.precision.after_load(engine.model)
        extra = json.loads((path / "trainer.json").read_text())
        engine.scheduler.load_state_dict(extra.pop("scheduler"))
        engine.precision.load_state_dict(extra.pop("precision"))
        if getattr(engine, "ema", None) is not None and (path / "ema.pt").is_file():
            engine.ema.load_state_dict(torch.load(path / "ema.pt", weights_only=True))
        rng = path / f"rank-{_rank():05d}.pt"
        if rng.is_file():  # absent when resuming on more ranks than were saved
            _set_rng_state(torch.load(rng, weights_only=True))
        extra["checkpoint"] = str(path)
        return extra

    @staticmethod
    def _load_full_optimizer(path: Path, full_optim: Path, module, optimizer) -> None:
        """ZeRO-1 on either side: the optimizer state travels whole, keyed by parameter name."""
        if not full_optim.is_file():
            raise RuntimeError(f"{path} was written without zero stage 1; resume it without "
                               "zero, or with zero stage 2/3, or start over with --reset")
        model_sd = get_model_state_dict(module)
        with _quiet_single_process():
            dcp.load({"model": model_sd}, checkpoint_id=str(path), no_dist=not _dist())
        set_model_state_dict(module, model_sd)
        fqn_state = torch.load(full_optim, weights_only=True)
        if _is_zero(optimizer):
            optimizer.load_state_dict(_fqn_to_index(fqn_state, optimizer, module))
        else:
            set_optimizer_state_dict(module, optimizer, fqn_state,
                                     options=StateDictOptions(full_state_dict=True))


def _global_state(engine, module) -> dict:
    """Model and optimizer state with every parameter whole (DTensors where it is sharded):
    DCP saves each once and reshards it on load into any layout (tensor/grid.py).

    The optimizer's hyperparameters are kept per parameter name ({name: lr, betas, ...})
    rather than as torch's list of groups: a pipeline rank holds only its stages' parameters,
    so its groups list other names than another layout's ranks, and a list saved by one
    rank would not describe the others'."""
    model_sd, optim_sd = get_state_dict(module, engine.optimizer)
    to_global = engine.parallel.to_global
    return {"model": to_global(model_sd),
            "optim": {"state": to_global(optim_sd.get("state", {})),
                      "param_groups": _groups_by_name(optim_sd.get("param_groups", []))}}


def _groups_by_name(groups: list[dict]) -> dict:
    return {name: {k: v for k, v in group.items() if k != "params"}
            for group in groups for name in group["params"]}


def _live_groups(module, optimizer) -> list[dict]:
    """The optimizer's groups as get_state_dict lists them (parameters by name)."""
    return get_state_dict(module, optimizer)[1].get("param_groups", [])


def _groups_from_names(by_name: dict, live: list[dict]) -> list[dict]:
    """torch's list of groups again: each live group's parameters, with the hyperparameters
    saved for its first parameter (a group with none keeps its own)."""
    out = []
    for group in live:
        saved = by_name.get(group["params"][0]) if group["params"] else None
        out.append({**(saved if saved is not None else
                       {k: v for k, v in group.items() if k != "params"}),
                    "params": group["params"]})
    return out


def _is_zero(optimizer) -> bool:
    from torch.distributed.optim import ZeroRedundancyOptimizer
    return isinstance(optimizer, ZeroRedundancyOptimizer)


def _names(module) -> dict[int, str]:
    return {id(p): name for name, p in module.named_parameters()}


def _zero_to_fqn(state: dict, optimizer, module) -> dict:
    """torch's index-keyed optimizer state -> DCP's name-keyed form (full tensors)."""
    names = _names(module)
    order = [names[id(p)] for g in optimizer.param_groups for p in g["params"]]
    groups = []
    for saved, live in zip(state["param_groups"], optimizer.param_groups):
        groups.append({**{k: v for k, v in saved.items() if k != "params"},
                       "params": [names[id(p)] for p in live["params"]]})
    return {"state": {order[i]: v for i, v in state["state"].items()}, "param_groups": groups}


def _fqn_to_index(state: dict, optimizer, module) -> dict:
    names = _names(module)
    order = [names[id(p)] for g in optimizer.param_groups for p in g["params"]]
    index = {name: i for i, name in enumerate(order)}
    groups = []
    for saved, live in zip(state["param_groups"], optimizer.param_groups):
        groups.append({**{k: v for k, v in saved.items() if k != "params"},
                       "params": [index[names[id(p)]] for p in live["params"]]})
    return {"state": {index[n]: v for n, v in state["state"].items()}, "param_groups": groups}
