"""Exported models: `<name>.safetensors` (weights) + `<name>.json` (size, classes, provenance).

An export is a plain single-device state dict, whatever the training layout was (DDP, FSDP
shards, fp16 or bf16 weights with fp32 masters): the fp32 weights are gathered and written once.
Loading it needs no process group and runs no pickle:

    model, meta = vitscale.io.load_exported("runs/quick_cpu/model_best.safetensors")

Files are written to a temporary name and renamed, so a reader (`vitscale eval` while training
runs) sees either the previous complete file or the new complete file.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, fields
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..atomic import atomic_write, atomic_write_json
from ..errors import VitscaleError
from ..models import ViTSize, VisionTransformer


def export_model(state_dict: dict[str, torch.Tensor], size: ViTSize, path: str | os.PathLike,
                 **meta) -> Path:
    """Write `state_dict` (full tensors, any device/dtype) as fp32 safetensors plus its JSON."""
    path = Path(path).with_suffix(".safetensors")
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in state_dict.items()}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata={"format": "pt"}))
    atomic_write_json(path.with_suffix(".json"), {"model": asdict(size), **meta})
    return path


def read_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors from a .safetensors file, or a torch file loaded with weights_only=True."""
    path = Path(path)
    if not path.is_file():
        raise VitscaleError(f"model file {path} does not exist: pass a .safetensors export "
                            "(e.g. runs/<name>/model_best.safetensors) or a run directory")
    try:
        if path.suffix == ".safetensors":
            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise VitscaleError(f"{path}: not a readable weights file ({type(e).__name__}: {e}); "
                            "vitscale loads only safetensors or weights-only torch files") from None
    for key in ("state_dict", "model", "module"):  # common wrappers around a state dict
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise VitscaleError(f"{path}: holds no state dict of tensors")
    return state


def load_exported(path: str | os.PathLike) -> tuple[VisionTransformer, dict]:
    """(model on CPU in fp32, metadata) from an export written by `export_model`."""
    path = Path(path)
    meta_path = path.with_suffix(".json")
    if not meta_path.is_file():
        raise VitscaleError(f"{meta_path} is missing: a vitscale export is a .safetensors file "
                            "with a .json beside it")
    meta = json.loads(meta_path.read_text())
    known = {f.name for f in fields(ViTSize)}
    size = ViTSize(**{k: v for k, v in meta["model"].items() if k in known})
    model = VisionTransformer(size)
    model.load_state_dict(read_weights(path))
    return model, meta
