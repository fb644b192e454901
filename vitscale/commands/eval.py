"""`vitscale eval RUN_DIR|MODEL_FILE`: loss, top-1, top-5, per-class accuracy and images/s.

Runs on one device whatever the training layout. From a run directory it reads the best
exported model (else the final one, else the newest complete checkpoint); all of these are
written atomically, so it is safe to run while the training writes them.
"""

from __future__ import annotations

import json
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("eval", help="evaluate an exported model or a run directory")
    p.add_argument("target", help="a run directory (runs/<name>) or a .safetensors export")
    p.add_argument("--data", help="dataset folder (default: $DATA, else download CIFAR-10)")
    p.add_argument("--split", choices=["test", "val"], default="test",
                   help="test: the dataset's evaluation split (ImageNet's val folder); "
                        "val: the run's VAL_SPLIT images carved from train")
    p.add_argument("--precision", choices=["fp32", "fp16", "bf16"], default="fp32")
    p.add_argument("--batch", type=int, default=500, help="images per forward pass")
    p.add_argument("--device", help="cpu, cuda or cuda:N")
    p.add_argument("--tta-flip", action="store_true",
                   help="average the logits of each image and its mirror (default: as trained, "
                        "TTA_FLIP)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def _model_from(target: Path):
    """(model, metadata) from an export, or from a run directory's best/final/checkpoint."""
    from ..errors import VitscaleError
    from ..io import load_exported

    if target.is_file():
        return load_exported(target)
    if not target.is_dir():
        raise VitscaleError(f"{target} does not exist: pass a run directory or a "
                            ".safetensors export")
    for name in ("model_best", "model_final"):
        if (target / f"{name}.safetensors").is_file():
            return load_exported(target / f"{name}.safetensors")
    return _model_from_checkpoint(target)


def _model_from_checkpoint(run_dir: Path):
    from ..config import load_config
    from ..errors import VitscaleError
    from ..train import build_engine
    from ..train.checkpoint import CheckpointManager

    manager = CheckpointManager(run_dir / "checkpoints")
    if not manager.complete() or not (run_dir / "config.py").is_file():
        raise VitscaleError(f"{run_dir} holds no exported model and no complete checkpoint: "
                            "wait for the first checkpoint or pass a .safetensors file")
    cfg = load_config(run_dir / "config.py")
    engine = build_engine(cfg, with_data=False, device="cpu")
    state = manager.load_latest(engine)
    module = engine.precision.state_module(engine.model).float()
    from ..train.exporter import data_keys
    meta = {"dataset": cfg.DATASET, "config": data_keys(cfg),
            "epoch": state["trainer"]["epochs_done"], "step": state["trainer"]["step"],
            "source": state["checkpoint"]}
    return module, meta


def run(args) -> int:
    import torch

    from ..config import config_from_dict
    from ..data import build_loaders, find_splits, resolve_data_root
    from ..errors import ConfigError
    from ..evaluate import evaluate_model
    from ..train.engine import pick_device

    model, meta = _model_from(Path(args.target))
    device = pick_device(args.device)
    size = model.size
    saved = meta.get("config", {})
    # Older exports saved only VAL_SPLIT and SEED: the rest comes from the export's metadata.
    cfg = config_from_dict({"DATASET": meta.get("dataset", "cifar10"), **saved,
                            "IMG_SIZE": size.img_size}, source=str(args.target))
    if args.split == "val" and not cfg.VAL_SPLIT:
        raise ConfigError(f"{args.target} was trained without VAL_SPLIT: use --split test")
    splits = find_splits(cfg, resolve_data_root(args.data or cfg.data.root, cfg.DATASET))
    loaders = build_loaders(cfg, splits, img_size=size.img_size, train_batch=args.batch,
                            eval_batch=args.batch, device=device, with_train=False,
                            num_classes=size.num_classes)
    loader = loaders.val if args.split == "val" else loaders.evaluation
    dtype = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}[args.precision]
    autocast = (lambda: torch.autocast(device.type, dtype=dtype)) if dtype else None
    kwargs = {"autocast": autocast} if autocast else {}
    tta = args.tta_flip or cfg.TTA_FLIP
    result = evaluate_model(model.to(device), loader, size.num_classes, per_class=True,
                            tta_flip=tta, **kwargs)
    result = {"split": args.split, "precision": args.precision, "tta_flip": tta, **result,
              "epoch": meta.get("epoch"), "step": meta.get("step"),
              "classes": splits.classes, "device": str(device)}
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{args.target} ({args.split}, {args.precision}, {device}): epoch {result['epoch']}")
    print(f"  loss {result['loss']:.4f}  top-1 {result['acc1']:.2f}%  top-5 {result['acc5']:.2f}%"
          f"  {result['images']} images, {result['images_per_s']:.0f} images/s")
    for name, acc in zip(splits.classes, result["per_class_acc1"]):
        print(f"  {name:<16} {acc:6.2f}%")
    return 0
