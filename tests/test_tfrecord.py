"""TFRecord shards of real images: exact round trip, DALI's index format, corruption, atomicity."""

from __future__ import annotations

import io
import multiprocessing
import shutil
import struct
import tarfile

import pytest
import torch
from PIL import Image

from conftest import DATASETS
from vitscale import DataError
from vitscale.data.prepare_tfrecord import prepare_tfrecords
from vitscale.data.tfrecord import (TFRecordSource, decode_example, encode_example,
                                    write_tfrecords)

try:
    import nvidia.dali  # noqa: F401
    HAVE_DALI = True
except ImportError:
    HAVE_DALI = False


def cifar_records(cifar_folder, per_class: int) -> tuple[list[tuple[bytes, int, str]], list[str]]:
    """(jpeg bytes, label, name) of the first `per_class` real CIFAR-10 images of each class."""
    classes = sorted(p.name for p in (cifar_folder / "train").iterdir())
    records = []
    for label, cls in enumerate(classes):
        for f in sorted((cifar_folder / "train" / cls).iterdir())[:per_class]:
            records.append((f.read_bytes(), label, f"train/{cls}/{f.name}"))
    return records, classes


def imagenette_records(count: int) -> list[tuple[bytes, str]]:
    """The first `count` real Imagenette JPEGs (224 px) and the first grayscale one."""
    taken, gray = [], None
    with tarfile.open(DATASETS / "imagenette" / "train.tar.gz") as tar:
        for member in tar:
            if not member.isfile():
                continue
            data = tar.extractfile(member).read()
            if len(taken) < count:
                taken.append((data, member.name))
            elif Image.open(io.BytesIO(data)).mode == "L":
                gray = (data, member.name)
                break
    assert gray is not None, "no grayscale image found in Imagenette's train archive"
    return taken + [gray]


@pytest.fixture(scope="module")
def real_records(cifar_folder):
    """50 CIFAR-10 images (10 classes) and 21 Imagenette ones (one grayscale) as class 10."""
    records, classes = cifar_records(cifar_folder, per_class=5)
    records += [(data, len(classes), name) for data, name in imagenette_records(20)]
    return records, classes + ["imagenette"]


def test_example_encoding_round_trips_including_large_and_negative_values():
    data = encode_example(b"\xff\xd8" + bytes(range(256)) * 600, -3, "a/b.jpg")
    features = decode_example(data, {"image/encoded", "image/class/label", "image/filename"})
    assert set(features) == {"image/encoded", "image/class/label", "image/filename"}
    from vitscale.data.tfrecord import _first_bytes, _first_int64
    assert _first_bytes(features["image/encoded"]) == b"\xff\xd8" + bytes(range(256)) * 600
    assert _first_int64(features["image/class/label"]) == -3
    assert _first_bytes(features["image/filename"]) == b"a/b.jpg"


def test_round_trip_of_real_images_is_byte_exact(real_records, tmp_path):
    records, classes = real_records
    split = write_tfrecords(records, tmp_path, "train", shards=3, classes=classes)
    assert sorted(p.name for p in split.iterdir()) == [
        f"part-0000{s}-of-00003.{ext}" for s in range(3) for ext in ("idx", "tfrecord")]
    source = TFRecordSource(split)
    assert len(source) == len(records) == 71
    assert source.classes == classes
    assert source.labels.dtype == torch.int64
    assert source.labels.tolist() == [label for _, label, _ in records]
    assert source.names == [name for _, _, name in records]
    for i in torch.randperm(len(records)).tolist():      # random access, any order
        assert source.read(i) == records[i][0]
    gray = Image.open(io.BytesIO(source.read(len(records) - 1)))
    assert gray.mode == "L"


def test_index_files_are_what_dalis_tfrecord2idx_writes(real_records, tmp_path):
    """tfrecord2idx: one line per record, 'offset size', size = 8 + 4 + length + 4."""
    records, classes = real_records
    split = write_tfrecords(records[:30], tmp_path, "val", shards=2, classes=classes)
    for shard in sorted(split.glob("*.tfrecord")):
        raw = shard.read_bytes()
        expected, offset = [], 0
        while offset < len(raw):
            (length,) = struct.unpack_from("<Q", raw, offset)
            expected.append(f"{offset} {8 + 4 + length + 4}\n")
            offset += 8 + 4 + length + 4
        assert shard.with_suffix(".idx").read_text() == "".join(expected)
        assert len(expected) == 15


def test_a_corrupt_byte_or_a_truncated_shard_is_a_clear_error(real_records, tmp_path):
    records, classes = real_records
    split = write_tfrecords(records[:20], tmp_path, "train", shards=2, classes=classes)
    source = TFRecordSource(split)
    shard = split / "part-00000-of-00002.tfrecord"
    lines = (split / "part-00000-of-00002.idx").read_text().splitlines()
    offset, size = (int(v) for v in lines[3].split())
    raw = bytearray(shard.read_bytes())
    raw[offset + size // 2] ^= 0x01                      # one bit inside record 3's image
    shard.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=rf"{shard}: the record at byte {offset} is corrupt "
                                        r"\(CRC mismatch\): re-run vitscale prepare"):
        source.read(3)
    with pytest.raises(DataError, match=rf"byte {offset} is corrupt"):
        TFRecordSource(split)                            # the first scan checks every record
    shard.write_bytes(bytes(raw[:offset + size // 2]))   # cut inside record 3
    with pytest.raises(DataError, match=rf"byte {offset} is truncated.*re-run vitscale prepare"):
        TFRecordSource(split)


def test_an_interrupted_write_leaves_nothing_that_looks_complete(real_records, tmp_path):
    records, classes = real_records

    def interrupted():
        yield from records[:25]
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_tfrecords(interrupted(), tmp_path, "train", shards=4, classes=classes,
                        total=len(records))
    assert not (tmp_path / "train").exists() and not (tmp_path / "classes.json").exists()
    # Shard 0 (17 records) was finished; shard 1 was cut short and kept its .partial name.
    assert sorted(p.name for p in (tmp_path / "train.partial").iterdir()) == [
        "part-00000-of-00004.idx", "part-00000-of-00004.tfrecord",
        "part-00001-of-00004.tfrecord.partial"]
    # A second run starts over and completes; the same split is then replaced atomically.
    write_tfrecords(records, tmp_path, "train", shards=4, classes=classes)
    write_tfrecords(records[:10], tmp_path, "train", shards=4, classes=classes)
    assert not (tmp_path / "train.partial").exists()
    assert len(TFRecordSource(tmp_path / "train")) == 10
    with pytest.raises(DataError, match="other classes"):
        write_tfrecords(records, tmp_path, "test", shards=1, classes=classes[::-1])


def test_imagenet_tools_layout_with_one_based_labels_and_idx_files(real_records, tmp_path):
    records, classes = real_records
    shifted = [(data, label + 1, name) for data, label, name in records]
    written = write_tfrecords(shifted, tmp_path / "written", "train", shards=2, classes=classes)
    split = tmp_path / "tfrecords" / "train"
    (tmp_path / "tfrecords" / "idx_files").mkdir(parents=True)
    split.mkdir()
    for s in range(2):
        shutil.copy(written / f"part-0000{s}-of-00002.tfrecord", split / f"train-0000{s}-of-00002")
        shutil.copy(written / f"part-0000{s}-of-00002.idx",
                    tmp_path / "tfrecords" / "idx_files" / f"train-0000{s}-of-00002.idx")
    source = TFRecordSource(split)                       # no classes.json next to it
    assert source.labels.tolist() == [label for _, label, _ in records]
    assert source.classes == [str(i) for i in range(len(classes))]
    assert source.read(40) == records[40][0]


def test_labels_and_offsets_come_from_the_cache_the_second_time(real_records, tmp_path,
                                                                monkeypatch):
    records, classes = real_records
    split = write_tfrecords(records[:10], tmp_path, "train", shards=2, classes=classes)
    first = TFRecordSource(split)
    monkeypatch.setattr(TFRecordSource, "_scan", lambda self: pytest.fail("scanned again"))
    second = TFRecordSource(split)
    assert second.names == first.names and torch.equal(second.labels, first.labels)
    assert second.read(9) == records[9][0]


def test_a_shard_without_index_is_scanned(real_records, tmp_path):
    records, classes = real_records
    split = write_tfrecords(records[:12], tmp_path, "train", shards=2, classes=classes)
    for idx in split.glob("*.idx"):
        idx.unlink()
    source = TFRecordSource(split)
    assert [source.read(i) for i in range(12)] == [data for data, _, _ in records[:12]]


def _read_in_child(args):
    source, i = args
    return source.read(i)


def test_reads_work_in_forked_and_pickled_copies(real_records, tmp_path):
    records, classes = real_records
    source = TFRecordSource(write_tfrecords(records[:8], tmp_path, "t", shards=2, classes=classes))
    assert source.read(0) == records[0][0]               # opens a handle in this process
    with multiprocessing.get_context("fork").Pool(2) as pool:
        got = pool.map(_read_in_child, [(source, i) for i in range(8)])
    assert got == [data for data, _, _ in records[:8]]


def test_prepare_copies_a_source_with_classes(real_records, tmp_path):
    records, classes = real_records
    first = TFRecordSource(write_tfrecords(records, tmp_path / "a", "train", shards=2,
                                           classes=classes))
    split = prepare_tfrecords(first, tmp_path / "b", "train", shards=5, progress=False)
    copy = TFRecordSource(split)
    assert copy.classes == classes and copy.names == first.names
    assert torch.equal(copy.labels, first.labels)
    assert copy.read(len(records) - 1) == records[-1][0]
    assert len(list(split.glob("*.tfrecord"))) == 5


@pytest.mark.skipif(not HAVE_DALI,
                    reason="NVIDIA DALI is not installed (pip install 'vitscale[dali]')")
def test_dalis_own_tfrecord_reader_reads_our_files_and_indexes(real_records, tmp_path):
    from nvidia.dali import Pipeline, fn
    from nvidia.dali import tfrecord as tfrec

    records, classes = real_records
    split = write_tfrecords(records, tmp_path, "train", shards=3, classes=classes)
    shards = sorted(split.glob("*.tfrecord"))
    pipe = Pipeline(batch_size=len(records), num_threads=1, device_id=None)
    with pipe:
        features = fn.readers.tfrecord(
            path=[str(p) for p in shards], index_path=[str(p.with_suffix(".idx")) for p in shards],
            features={"image/encoded": tfrec.FixedLenFeature((), tfrec.string, ""),
                      "image/class/label": tfrec.FixedLenFeature([1], tfrec.int64, -1),
                      "image/filename": tfrec.FixedLenFeature((), tfrec.string, "")})
        pipe.set_outputs(features["image/encoded"], features["image/class/label"],
                         features["image/filename"])
    pipe.build()
    images, labels, names = pipe.run()
    assert [int(labels.at(i)[0]) for i in range(len(records))] == [r[1] for r in records]
    assert [images.at(i).tobytes() for i in range(len(records))] == [r[0] for r in records]
    assert [names.at(i).tobytes().decode() for i in range(len(records))] == [r[2] for r in records]
