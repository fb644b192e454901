"""TFRecord files of encoded images: written by `vitscale prepare`, read by index, no TensorFlow.

    write_tfrecords(records, out_dir, "train", shards=64, classes=names)
    source = TFRecordSource(out_dir / "train")      # len, labels, names, classes, read(i)

Layout written (the one DALI's `fn.readers.tfrecord` and imagenet-tools readers expect):

    out_dir/classes.json                     class names: label i is classes[i], 0-based
    out_dir/<split>/part-00000-of-00064.tfrecord
    out_dir/<split>/part-00000-of-00064.idx  DALI's index: one "offset size" line per record

Shards are contiguous: record i of the input is record i of the split (shard s holds inputs
s*N/S .. (s+1)*N/S), so TFRecordSource index i is input i and only one file is open at a time.
An interrupted write leaves only `<split>.partial/`, never a split that looks complete.

File format. A TFRecord file is a sequence of records, each

    uint64 length | uint32 masked_crc32c(length) | data[length] | uint32 masked_crc32c(data)

(little-endian; masked_crc = ((crc >> 15) | (crc << 17)) + 0xa282ead8). Each data is a
serialized tf.train.Example protocol buffer, encoded here by hand:

    Example   { Features features = 1; }
    Features  { map<string, Feature> feature = 1; }  # entry: { string key = 1; Feature value = 2; }
    Feature   { oneof kind { BytesList bytes_list = 1; FloatList float_list = 2;
                             Int64List int64_list = 3; } }
    BytesList { repeated bytes value = 1; }
    Int64List { repeated int64 value = 1 [packed = true]; }

with the features image/encoded (bytes), image/class/label (int64), image/filename (bytes).

Reading also accepts imagenet-tools shards (train-00000-of-01024, labels 1..1000, index files
next to the shards or in a sibling idx_files/ folder). Without classes.json, labels whose
smallest value is 1 are taken as imagenet-tools' 1-based labels and shifted to 0-based, and the
classes are named "0", "1", ... A shard without an index file is indexed by scanning it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
from itertools import islice
from pathlib import Path
from typing import Iterable, Iterator

import torch

from ..atomic import atomic_write_json
from ..errors import DataError
from . import cache
from .sources import EncodedSource

IMAGE, LABEL, FILENAME = "image/encoded", "image/class/label", "image/filename"
_HEADER = 12                                     # uint64 length + uint32 crc of the length
_FOOTER = 4                                      # uint32 crc of the data
_SHARD_NAME = re.compile(r".+-\d{5}-of-\d{5}(\.tfrecord)?$")
FIX = "re-run vitscale prepare to write the TFRecords again"


# ---------------------------------------------------------------- protocol buffer wire format

def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1                           # negative int64: ten bytes, two's complement
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _delimited(field: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2): tag, length, payload."""
    return _varint(field << 3 | 2) + _varint(len(payload)) + payload


def encode_example(image: bytes, label: int, filename: str) -> bytes:
    """The serialized tf.train.Example of one image (structure in the module docstring)."""
    features = {
        IMAGE: _delimited(1, _delimited(1, image)),                 # Feature.bytes_list
        LABEL: _delimited(3, _delimited(1, _varint(label))),        # Feature.int64_list, packed
        FILENAME: _delimited(1, _delimited(1, filename.encode())),
    }
    entries = b"".join(_delimited(1, _delimited(1, key.encode()) + _delimited(2, feature))
                       for key, feature in features.items())
    return _delimited(1, entries)


def _read_varint(buf: memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _fields(buf: memoryview) -> Iterator[tuple[int, int, int | memoryview]]:
    """(field number, wire type, value) of each field: an int for varints, a view otherwise."""
    pos = 0
    while pos < len(buf):
        tag, pos = _read_varint(buf, pos)
        field, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _read_varint(buf, pos)
        elif wire == 2:
            size, pos = _read_varint(buf, pos)
            value, pos = buf[pos:pos + size], pos + size
        elif wire in (1, 5):                     # fixed64 / fixed32 (a FloatList's values)
            width = 8 if wire == 1 else 4
            value, pos = buf[pos:pos + width], pos + width
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        if pos > len(buf):
            raise ValueError("protobuf field runs past the end of the record")
        yield field, wire, value


def decode_example(data: bytes | memoryview, keys: set[str]) -> dict[str, memoryview]:
    """The Feature messages of `keys` found in a serialized Example (others are skipped)."""
    found = {}
    for field, wire, features in _fields(memoryview(data)):
        if field != 1 or wire != 2:
            continue
        for f, w, entry in _fields(features):
            if f != 1 or w != 2:
                continue
            parts = {n: v for n, wt, v in _fields(entry) if wt == 2}
            key = bytes(parts.get(1, b"")).decode()
            if key in keys:
                found[key] = parts.get(2, memoryview(b""))
    return found


def _first_bytes(feature: memoryview) -> bytes:
    """The first value of a Feature's bytes_list."""
    for field, wire, values in _fields(feature):
        if field == 1 and wire == 2:
            for f, w, value in _fields(values):
                if f == 1 and w == 2:
                    return bytes(value)
    raise ValueError("the feature holds no bytes value")


def _first_int64(feature: memoryview) -> int:
    """The first value of a Feature's int64_list, packed (as TensorFlow writes it) or not."""
    for field, wire, values in _fields(feature):
        if field == 3 and wire == 2:
            for f, w, value in _fields(values):
                if f == 1 and w == 0:
                    n = value
                elif f == 1 and w == 2 and len(value):
                    n = _read_varint(value, 0)[0]
                else:
                    continue
                return n - (1 << 64) if n >= 1 << 63 else n
    raise ValueError("the feature holds no int64 value")


# ---------------------------------------------------------------- TFRecord framing

def _crc32c():
    try:
        import google_crc32c
    except ImportError:
        raise DataError("TFRecords need the google-crc32c package for their checksums: "
                        "pip install google-crc32c") from None
    return google_crc32c.value


def _masked_crc(crc32c, data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def frame(data: bytes, crc32c=None) -> bytes:
    """One TFRecord: length, its checksum, the data, its checksum."""
    crc32c = crc32c or _crc32c()
    length = struct.pack("<Q", len(data))
    return (length + struct.pack("<I", _masked_crc(crc32c, length)) + data
            + struct.pack("<I", _masked_crc(crc32c, data)))


def unframe(record: bytes, path: Path, offset: int, crc32c=None) -> bytes:
    """The data of one framed record read from `path` at `offset`, checked against its CRCs."""
    crc32c = crc32c or _crc32c()

    def bad(what: str) -> DataError:
        return DataError(f"{path}: the record at byte {offset} {what}: {FIX}")

    if len(record) < _HEADER + _FOOTER:
        raise bad("is truncated")
    length, length_crc = struct.unpack_from("<QI", record)
    if _masked_crc(crc32c, record[:8]) != length_crc:
        raise bad("has a corrupt length (CRC mismatch)")
    if len(record) != _HEADER + length + _FOOTER:
        raise bad(f"is truncated or mis-indexed ({len(record)} bytes read, "
                  f"{_HEADER + length + _FOOTER} expected)")
    data = record[_HEADER:_HEADER + length]
    if _masked_crc(crc32c, data) != struct.unpack_from("<I", record, _HEADER + length)[0]:
        raise bad("is corrupt (CRC mismatch)")
    return data


# ---------------------------------------------------------------- writing

def shard_name(shard: int, shards: int) -> str:
    return f"part-{shard:05d}-of-{shards:05d}.tfrecord"


def write_tfrecords(records: Iterable[tuple[bytes, int, str]], out_dir: Path, split: str,
                    shards: int, *, classes: list[str], total: int | None = None) -> Path:
    """Write (encoded image, 0-based label, name) records as out_dir/<split>/ shards; returns it.

    `total` is the number of records (len(records) when omitted): the shards are contiguous,
    so their sizes are known before the first byte is written. At most `total` shards are
    written. A previous out_dir/<split> is replaced only once the new one is complete.
    """
    out_dir = Path(out_dir)
    total = len(records) if total is None else total
    if total <= 0:
        raise ValueError(f"no records to write for split {split!r}")
    _check_classes(out_dir, classes)
    shards = max(1, min(shards, total))
    final, partial = out_dir / split, out_dir / f"{split}.partial"
    if partial.exists():                         # left by an interrupted run
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    crc32c = _crc32c()
    stream = iter(records)
    for s in range(shards):
        count = (s + 1) * total // shards - s * total // shards
        _write_shard(partial / shard_name(s, shards), islice(stream, count), count, crc32c)
    if next(stream, None) is not None:
        raise ValueError(f"more than total={total} records given for split {split!r}")
    if final.exists():
        shutil.rmtree(final)
    os.replace(partial, final)
    atomic_write_json(out_dir / "classes.json", list(classes))
    return final


def _check_classes(out_dir: Path, classes: list[str]) -> None:
    """All splits of out_dir share one classes.json: refuse to relabel the existing ones."""
    path = out_dir / "classes.json"
    if path.is_file() and json.loads(path.read_text()) != list(classes):
        raise DataError(f"{path} lists other classes than this dataset's: write the TFRecords "
                        "into a new folder, or delete the old one first")


def _write_shard(path: Path, records: Iterable[tuple[bytes, int, str]], count: int,
                 crc32c) -> None:
    """One shard and its DALI index, each written under a .partial name and then renamed."""
    index = path.with_suffix(".idx")
    tmp = path.with_name(path.name + ".partial")
    lines, offset = [], 0
    with open(tmp, "wb") as f:
        for image, label, name in records:
            record = frame(encode_example(image, int(label), name), crc32c)
            f.write(record)
            lines.append(f"{offset} {len(record)}\n")
            offset += len(record)
        f.flush()
        os.fsync(f.fileno())
    if len(lines) != count:
        raise ValueError(f"the records ended early: {len(lines)} of {count} for {path.name}")
    tmp_index = index.with_name(index.name + ".partial")
    tmp_index.write_text("".join(lines))
    os.replace(tmp, path)
    os.replace(tmp_index, index)


# ---------------------------------------------------------------- reading

def shard_files(directory: Path) -> list[Path]:
    """The TFRecord shards of a split folder: *.tfrecord or imagenet-tools' name-00000-of-01024."""
    return sorted(p for p in Path(directory).iterdir()
                  if p.is_file() and (p.suffix == ".tfrecord" or _SHARD_NAME.match(p.name)))


def index_file(shard: Path) -> Path | None:
    """The shard's DALI index: next to it, or in idx_files/ inside or beside the split folder."""
    names = [f"{shard.stem}.idx", f"{shard.name}.idx"] if shard.suffix == ".tfrecord" \
        else [f"{shard.name}.idx"]
    for folder in (shard.parent, shard.parent / "idx_files", shard.parent.parent / "idx_files"):
        for name in names:
            if (folder / name).is_file():
                return folder / name
    return None


class TFRecordSource(EncodedSource):
    """The images of one split folder of TFRecord shards, by index (see the module docstring).

    Labels and names come from one pass over all records (which also checks every CRC); they
    are cached under $VITSCALE_CACHE, keyed by the shards' and index files' size and mtime.
    `read(i)` is one pread per image through the record offsets, with one open file per shard
    and process (reopened after a fork or in a DataLoader worker).
    """

    def __init__(self, directory: Path):
        directory = Path(directory)
        self.shards = shard_files(directory)
        if not self.shards:
            raise DataError(f"{directory} holds no TFRecord shards (*.tfrecord or "
                            f"name-00000-of-00064): {FIX}")
        self.index_files = [index_file(s) for s in self.shards]
        self._fingerprint = cache.fingerprint(
            self.shards + [i for i in self.index_files if i is not None])
        key = f"tfrecord-{self._fingerprint}.pt"
        table = cache.load(key)
        if table is None:
            table = self._scan()
            cache.save(key, table)
        if not table["names"]:
            raise DataError(f"{directory}: the TFRecord shards hold no records: {FIX}")
        self._shard, self._offset, self._size = table["shard"], table["offset"], table["size"]
        labels, classes = _resolve_labels(table["labels"], directory)
        super().__init__(directory, table["names"], labels.tolist(), classes)
        self._files: dict[int, object] = {}
        self._pid = None

    def read(self, i: int) -> bytes:
        """The encoded image of record i."""
        shard, offset, size = int(self._shard[i]), int(self._offset[i]), int(self._size[i])
        path = self.shards[shard]
        data = unframe(os.pread(self._file(shard).fileno(), size, offset), path, offset)
        try:
            return _first_bytes(decode_example(data, {IMAGE})[IMAGE])
        except (KeyError, ValueError, IndexError) as e:
            raise DataError(f"{path}: the record at byte {offset} has no readable {IMAGE} "
                            f"({e}): {FIX}") from None

    def fingerprint(self) -> str:
        return self._fingerprint

    def _file(self, shard: int):
        if self._pid != os.getpid():             # a forked child must not share handles
            self._files, self._pid = {}, os.getpid()
        if shard not in self._files:
            self._files[shard] = open(self.shards[shard], "rb", buffering=0)
        return self._files[shard]

    def __getstate__(self):
        return {**self.__dict__, "_files": {}, "_pid": None}

    def _scan(self) -> dict:
        """Every record's shard, offset, size, raw label and name, from one pass over the files."""
        crc32c = _crc32c()
        table = {"shard": [], "offset": [], "size": [], "labels": [], "names": []}
        for s, (path, index) in enumerate(zip(self.shards, self.index_files)):
            spans = _read_index(index, path) if index else _scan_spans(path)
            with open(path, "rb") as f:
                for k, (offset, size) in enumerate(spans):
                    f.seek(offset)
                    data = unframe(f.read(size), path, offset, crc32c)
                    label, name = _label_and_name(data, path, offset)
                    table["shard"].append(s)
                    table["offset"].append(offset)
                    table["size"].append(size)
                    table["labels"].append(label)
                    table["names"].append(name or f"{path.name}:{k}")
        return {"shard": torch.tensor(table["shard"], dtype=torch.int32),
                "offset": torch.tensor(table["offset"], dtype=torch.int64),
                "size": torch.tensor(table["size"], dtype=torch.int64),
                "labels": torch.tensor(table["labels"], dtype=torch.int64),
                "names": table["names"]}


def _read_index(index: Path, shard: Path) -> list[tuple[int, int]]:
    spans = []
    for n, line in enumerate(index.read_text().splitlines(), 1):
        try:
            offset, size = (int(v) for v in line.split()[:2])
        except ValueError:
            raise DataError(f"{index}: line {n} is not 'offset size': {FIX} (or recreate the "
                            f"index with DALI's tfrecord2idx {shard} {index})") from None
        spans.append((offset, size))
    return spans


def _scan_spans(path: Path) -> list[tuple[int, int]]:
    """(offset, size) of each record, from the length fields alone (a shard with no index)."""
    spans, offset, end = [], 0, path.stat().st_size
    with open(path, "rb") as f:
        while offset < end:
            header = f.read(8)
            if len(header) < 8:
                raise DataError(f"{path}: the record at byte {offset} is truncated: {FIX}")
            size = _HEADER + struct.unpack("<Q", header)[0] + _FOOTER
            if offset + size > end:
                raise DataError(f"{path}: the record at byte {offset} is truncated: {FIX}")
            spans.append((offset, size))
            offset += size
            f.seek(offset)
    return spans


def _label_and_name(data: bytes, path: Path, offset: int) -> tuple[int, str | None]:
    try:
        features = decode_example(data, {LABEL, FILENAME})
        label = _first_int64(features[LABEL])
        name = _first_bytes(features[FILENAME]).decode(errors="replace") \
            if FILENAME in features else None
    except (KeyError, ValueError, IndexError) as e:
        raise DataError(f"{path}: the record at byte {offset} has no readable {LABEL} ({e}): "
                        f"{FIX}") from None
    return label, name


def _resolve_labels(labels: torch.Tensor, directory: Path) -> tuple[torch.Tensor, list[str]]:
    """0-based labels and class names: classes.json beside the split, else imagenet-tools rules."""
    path = directory.parent / "classes.json"
    if path.is_file():
        classes = json.loads(path.read_text())
        if labels.min() < 0 or labels.max() >= len(classes):
            raise DataError(f"{directory}: labels {int(labels.min())}..{int(labels.max())} do not "
                            f"fit the {len(classes)} classes of {path}: {FIX}")
        return labels, classes
    if labels.min() < 0:
        raise DataError(f"{directory}: negative labels in the records: {FIX}")
    if labels.min() == 1:                        # imagenet-tools: 1..1000, 0 is "background"
        labels = labels - 1
    return labels, [str(i) for i in range(int(labels.max()) + 1)]
