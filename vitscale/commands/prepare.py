"""`vitscale prepare SRC --to tfrecord|cache`: convert a dataset once, before training.

  --to tfrecord   TFRecords with DALI index files (OUT/train/, OUT/<eval>/, OUT/classes.json),
                  the format of seeds 001 and 003 (features image/encoded, image/class/label);
                  `vitscale train --data OUT` and data.pipeline='dali' read them
  --to cache      the device-resident pipeline's decoded uint8 tensors, in $VITSCALE_CACHE,
                  so that the first training epoch does not decode
"""

from __future__ import annotations

from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("prepare", help="convert a dataset into TFRecords (DALI) or the "
                                       "decoded cache of the device pipeline")
    p.add_argument("source", help="dataset folder: class folders, archives (as for --data)")
    p.add_argument("--dataset", required=True,
                   choices=["cifar10", "cifar100", "imagenet1k", "imagenette", "caltech101"])
    p.add_argument("--to", required=True, choices=["tfrecord", "cache"])
    p.add_argument("--out", help="output folder (--to tfrecord)")
    p.add_argument("--shards", type=int, default=None,
                   help="TFRecord files per split (default: about 1,000 images each, at most 1024)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config keys that shape the data, as the training config sets them: "
                        "IMG_SIZE, data.store_size, EVAL_CROP_PCT, VAL_SPLIT (--to cache); "
                        "SEED, data.test_fraction (caltech101's split)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..config import apply_overrides, config_from_dict
    from ..data import find_splits
    from ..errors import ConfigError

    cfg = config_from_dict(apply_overrides({"DATASET": args.dataset}, args.overrides),
                           source="prepare")
    splits = find_splits(cfg, Path(args.source))
    if args.to == "tfrecord":
        if not args.out:
            raise ConfigError("--to tfrecord needs --out FOLDER for the TFRecords")
        if args.shards is not None and args.shards < 1:
            raise ConfigError("--shards must be at least 1")
        _to_tfrecord(splits, Path(args.out), args.shards)
    else:
        _to_cache(cfg, splits)
    return 0


def _to_tfrecord(splits, out: Path, shards: int | None) -> None:
    from ..data.prepare_tfrecord import prepare_tfrecords
    from ..data.sources import ArraySource, EncodedSource

    for split, source in (("train", splits.train),
                          (splits.info.eval_dirs[0], splits.evaluation)):
        source = source if isinstance(source, EncodedSource) else ArraySource(source)
        count = shards or max(1, min(1024, round(len(source) / 1000)))
        folder = prepare_tfrecords(source, out, split, count)
        print(f"{split}: {len(source)} images in {count} TFRecord file(s) + index in {folder}")
    print(f"train with: vitscale train CONFIG --data {out}  (data.pipeline='dali' or any other)")


def _to_cache(cfg, splits) -> None:
    from ..data import decoded_splits
    from ..data.cache import cache_dir

    train, evaluation, validation = decoded_splits(cfg, splits,
                                                   cfg.IMG_SIZE or splits.info.img_size)
    held = f" and {len(validation.labels)} validation" if validation is not None else ""
    print(f"decoded {len(train.labels)} training images at {train.images.shape[-1]} px"
          f"{held} and {len(evaluation.labels)} evaluation images at "
          f"{evaluation.images.shape[-1]} px into {cache_dir()}")
