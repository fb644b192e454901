"""`vitscale prepare`'s TFRecord writer: any source of encoded images -> TFRecord shards + index.

    prepare_tfrecords(source, Path("data/imagenette-tfrecords"), "train", shards=16)

writes data/imagenette-tfrecords/train/part-000NN-of-00016.{tfrecord,idx} and classes.json
(tfrecord.py), readable by TFRecordSource and by DALI's fn.readers.tfrecord. The image bytes are
copied as they are (no re-encoding), so the records decode to exactly the source's pixels;
a source that holds decoded arrays (CIFAR's python batches) is stored as lossless PNG.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from .tfrecord import write_tfrecords


def prepare_tfrecords(source, out_dir: Path, split: str, shards: int,
                      progress: bool = True) -> Path:
    """Write `source` (len, labels, names, classes, read(i)) as out_dir/<split>/; returns it."""
    n = len(source)
    labels = source.labels.tolist()
    records = ((_file_bytes(source.read(i)), labels[i], source.names[i]) for i in range(n))
    bar = tqdm(records, total=n, desc=f"{split} -> TFRecords", unit="img", disable=not progress)
    return write_tfrecords(bar, Path(out_dir), split, shards, classes=list(source.classes), total=n)


def _file_bytes(item: bytes | np.ndarray) -> bytes:
    """An image file's bytes: as read, or an (H, W, 3) uint8 array encoded as PNG."""
    if not isinstance(item, np.ndarray):
        return item
    buf = io.BytesIO()
    Image.fromarray(item).save(buf, format="PNG")
    return buf.getvalue()
