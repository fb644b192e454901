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
                   help="config keys that shape the data, e.g. --set IMG_SIZE=224 (--to cache), "
                        "--set SEED=0 (caltech101's split)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..config import apply_overrides, config_from_dict
    from ..data import find_splits
    from ..errors import ConfigError

    cfg = config_from_dict(apply_overrides({"DATASET": args.dataset, "MODEL": None},
                                           args.overrides), source="prepare")
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
    from ..data.build import _decoded, _eval_sizes, _store_size, augment_spec
    from ..data.cache import cache_dir
    from ..plan import make_plan

    plan = make_plan(cfg, train_size=len(splits.train.labels))
    spec = augment_spec(cfg, splits.info, plan.model.img_size)
    store = _store_size(cfg, splits.info, spec)
    train = _decoded(cfg, splits.train, store, store, "training images")
    evaluation = _decoded(cfg, splits.evaluation, *_eval_sizes(splits.info, spec),
                          "evaluation images")
    print(f"decoded {len(train.labels)} training images at {store} px and "
          f"{len(evaluation.labels)} evaluation images at {spec.img_size} px into {cache_dir()}")
