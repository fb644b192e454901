"""The input pipelines on real Imagenette (ImageNet's layout, grayscale images included):
sources, the device-resident and DataLoader pipelines, their agreement with torchvision,
sharding and resume, and what happens with bad data."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile

import pytest
import torch
from PIL import Image
from torchvision.transforms.v2 import functional as TF

from vitscale import ConfigError, DataError
from vitscale.config import config_from_dict
from vitscale.data import augment, build_loaders, cache, compact, find_splits
from vitscale.data.decode import open_rgb
from vitscale.data.sources import extract_once, scan_tar
from vitscale.data.splits import open_split

from conftest import run_cli

CPU = torch.device("cpu")
WNIDS = ["n01440764", "n02102040", "n02979186", "n03000684", "n03028079", "n03394916",
         "n03417042", "n03425413", "n03445777", "n03888257"]


def cfg_for(**values):
    return config_from_dict({"DATASET": "imagenette", "SEED": 3, **values})


def loaders_for(root, img_size=48, batch=8, rank=0, world_size=1, **values):
    cfg = cfg_for(**values)
    return build_loaders(cfg, find_splits(cfg, root), img_size=img_size, train_batch=batch,
                         eval_batch=batch, device=CPU, rank=rank, world_size=world_size)


def test_imagenette_folder_source_and_grayscale_images(imagenette_subset):
    root, gray = imagenette_subset
    train, val = open_split(root, "train", "imagenette"), open_split(root, "val", "imagenette")
    assert train.classes == WNIDS == val.classes
    assert len(val) == 40 and len(train) >= 80
    assert torch.bincount(val.labels).tolist() == [4] * 10
    index = train.names.index(str(gray[0]))
    with Image.open(gray[0]) as im:
        assert im.mode == "L"
    rgb = open_rgb(train.read(index), train.names[index])
    assert rgb.mode == "RGB" and rgb.size == (224, 224)
    pixels = TF.pil_to_tensor(rgb)
    assert torch.equal(pixels[0], pixels[1]) and torch.equal(pixels[1], pixels[2])


def test_tar_and_tar_gz_archives_read_the_same_images(imagenette_subset, tmp_path, monkeypatch):
    root, _ = imagenette_subset
    monkeypatch.setenv("VITSCALE_CACHE", str(tmp_path / "cache"))
    folder = open_split(root, "val", "imagenette")
    for mode, name in (("w", "val.tar"), ("w:gz", "val.tar.gz")):
        with tarfile.open(tmp_path / name, mode) as tar:
            tar.add(root / "val", arcname="val")
    def same_as_folder(source):
        assert source.classes == folder.classes and torch.equal(source.labels, folder.labels)
        assert all(source.read(i) == folder.read(i) for i in (0, 17, len(folder) - 1))
    same_as_folder(scan_tar(tmp_path / "val.tar"))
    in_place = open_split(tmp_path, "val", "imagenette")  # .tar is preferred to .tar.gz
    assert type(in_place).__name__ == "TarSource"
    (tmp_path / "val.tar").unlink()
    same_as_folder(open_split(tmp_path, "val", "imagenette"))
    assert (tmp_path / "cache" / "extracted").is_dir()
    assert extract_once(tmp_path / "val.tar.gz") == extract_once(tmp_path / "val.tar.gz")


def test_one_process_builds_a_cache_entry_while_the_others_wait(imagenette_subset, tmp_path,
                                                                monkeypatch):
    """The ranks of a node start together on a cold cache: one decodes (or extracts), the
    others wait for its entry. Here the test holds an entry's lock; the process that asks for
    the entry must wait, then return what the holder wrote (a black stand-in), decoding
    nothing. An extraction removes the partial folders of processes that died mid-way."""
    root, _ = imagenette_subset
    monkeypatch.setenv("VITSCALE_CACHE", str(tmp_path / "cache"))
    source = open_split(root, "val", "imagenette")
    key = compact.cache_key(source, 40, 32, "error")
    script = ("import logging; from pathlib import Path; from vitscale.data import compact; "
              "from vitscale.data.splits import open_split; logging.basicConfig(level='INFO'); "
              f"source = open_split(Path({str(root)!r}), 'val', 'imagenette'); "
              "split = compact.decode_split(source, 40, 32); "
              "print(int(split.images.sum()), len(split.images))")
    with cache.building(key, "a test entry") as locked:
        assert locked
        waiting = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        while "waiting for it" not in (line := waiting.stderr.readline()):
            assert line, "the second process ended without waiting for the lock"
        cache.save(key, {"images": torch.zeros(len(source), 3, 32, 32, dtype=torch.uint8),
                         "labels": source.labels, "classes": source.classes})
    out, err = waiting.communicate(timeout=120)
    assert waiting.returncode == 0, err[-2000:]
    assert out.split() == ["0", str(len(source))]

    with tarfile.open(tmp_path / "val.tar.gz", "w:gz") as tar:
        tar.add(root / "val", arcname="val")
    fingerprint = cache.fingerprint([tmp_path / "val.tar.gz"])
    stale = tmp_path / "cache" / "extracted" / f"val.tar.gz-{fingerprint}.partial-1"
    (stale / "val").mkdir(parents=True)
    folder = extract_once(tmp_path / "val.tar.gz")
    assert not stale.exists() and sorted(p.name for p in folder.parent.iterdir()) == [folder.name]
    assert len(list((folder / "val").rglob("*.JPEG"))) == len(source)


def test_device_and_dataloader_evaluation_agree_with_torchvision(imagenette_subset):
    root, _ = imagenette_subset
    device = loaders_for(root, data={"pipeline": "device"})
    workers = loaders_for(root, data={"pipeline": "dataloader", "num_workers": 2})
    assert device.pipeline == "device" and workers.pipeline == "dataloader"
    x_dev, y_dev = next(iter(device.evaluation))
    x_wrk, y_wrk = next(iter(workers.evaluation))
    assert x_dev.shape == (8, 3, 48, 48) and torch.equal(y_dev, y_wrk)
    torch.testing.assert_close(x_dev, x_wrk)
    # torchvision's own evaluation transform on PIL images, Resize(48 / 0.875) + CenterCrop(48),
    # as a plain ImageFolder pipeline does it: equal up to the rounding of the two resizers.
    source = open_split(root, "val", "imagenette")
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1) * 255
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1) * 255
    for i in range(8):
        pil = TF.center_crop(TF.resize(open_rgb(source.read(i), "x"), 55), 48)
        pixels = x_dev[i] * std + mean
        diff = (pixels - TF.pil_to_tensor(pil).float()).abs()
        assert diff.max() <= 2.01 and diff.mean() < 0.5


def test_device_random_resized_crop_is_torchvisions(imagenette_subset):
    root, _ = imagenette_subset
    images = torch.stack([TF.pil_to_tensor(open_rgb(p.read_bytes(), str(p)))
                          for p in sorted((root / "val" / WNIDS[0]).iterdir())])
    g = torch.Generator().manual_seed(0)
    boxes = augment.draw_resized_crops(len(images), 224, 224, (0.08, 1.0), (3 / 4, 4 / 3), g)
    top, left, h, w = boxes.T
    assert (top >= 0).all() and (left >= 0).all() and (top + h <= 224).all() and \
        (left + w <= 224).all()
    ratio = w / h
    assert ((ratio > 0.74) & (ratio < 1.35)).all()
    flips = torch.tensor([i % 2 == 1 for i in range(len(images))])
    order = torch.arange(len(images)).flip(0)
    out = augment.resized_crops(images, order, boxes, 96, flips)
    scale, shift = augment.normalization((0.5, 0.4, 0.3), (0.2, 0.25, 0.3), CPU)
    normalised = augment.resized_crops(images, order, boxes, 96, flips, scale, shift)
    for i, j in enumerate(order.tolist()):
        expected = TF.resized_crop(images[j], *boxes[i].tolist(), [96, 96], antialias=True)
        expected = TF.horizontal_flip(expected) if flips[i] else expected
        assert torch.equal(out[i], expected)
        torch.testing.assert_close(normalised[i], expected.float() * scale[0] + shift[0])
    many = augment.draw_resized_crops(4000, 224, 224, (0.08, 1.0), (3 / 4, 4 / 3), g)
    area = (many[:, 2] * many[:, 3]).float() / 224 ** 2
    assert 0.07 < area.min() and area.max() <= 1.0 and 0.45 < area.mean() < 0.6


@pytest.mark.parametrize("pipeline", ["device", "dataloader"])
def test_training_batches_do_not_depend_on_world_size_workers_or_resume(imagenette_subset,
                                                                        pipeline):
    root, _ = imagenette_subset
    data = {"pipeline": pipeline, "num_workers": 2}
    single = loaders_for(root, batch=8, data=data).train
    single.set_epoch(1)
    reference = list(single)
    assert len(reference) == len(single) >= 9
    ranks = [loaders_for(root, batch=4, rank=r, world_size=2, data=data).train for r in (0, 1)]
    for loader in ranks:
        loader.set_epoch(1)
    for (x, y), (x0, y0), (x1, y1) in zip(reference, *ranks):
        torch.testing.assert_close(torch.cat([x0, x1]), x)
        assert torch.equal(torch.cat([y0, y1]), y)
    again = list(single)  # the same epoch read again: identical
    assert all(torch.equal(a[0], b[0]) for a, b in zip(again, reference))
    single.load_state_dict({"epoch": 1, "position": 5})
    resumed = list(single)
    assert len(resumed) == len(reference) - 5
    for (x, y), (xr, yr) in zip(reference[5:], resumed):
        assert torch.equal(x, xr) and torch.equal(y, yr)
    single.set_epoch(2)
    assert not torch.equal(next(iter(single))[1], reference[0][1])



def test_per_core_worker_threads_give_the_batches_of_one_thread(imagenette_subset, cifar_dir):
    """The suite runs torch on one thread (conftest), which skips augment.cpu_workers(): here the
    device pipeline runs once on 1 and once on 2 threads (resized crops and RandAugment on
    Imagenette; padded crops of the CropStore on CIFAR-10) and must give the same batches."""
    root, _ = imagenette_subset
    cifar = config_from_dict({"DATASET": "cifar10", "SEED": 3, "LIMIT_TRAIN_BATCHES": 2})

    def batches(threads: int) -> list[torch.Tensor]:
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            out = []
            for train in (loaders_for(root, data={"pipeline": "device"}).train,
                          loaders_for(root, RANDAUGMENT=(2, 9),
                                      data={"pipeline": "device"}).train,
                          build_loaders(cifar, find_splits(cifar, cifar_dir), img_size=32,
                                        train_batch=64, eval_batch=64, device=CPU).train):
                train.set_epoch(1)
                out += [x for x, _ in list(train)[:2]]
            return out
        finally:
            torch.set_num_threads(before)

    assert augment.cpu_workers() is None or torch.get_num_threads() > 1
    for one, two in zip(batches(1), batches(2), strict=True):
        assert torch.equal(one, two)

def test_policies_run_on_both_pipelines_and_auto_keeps_the_device(imagenette_subset):
    root, _ = imagenette_subset
    loaders = loaders_for(root, RANDAUGMENT=(2, 9), data={"pipeline": "dataloader",
                                                          "num_workers": 1})
    assert loaders.pipeline == "dataloader"
    x, y = next(iter(loaders.train))
    assert x.shape == (8, 3, 48, 48) and x.dtype == torch.float32
    # Batched on the device since data/policy.py: 'auto' no longer falls back to workers.
    auto = loaders_for(root, AUTOAUGMENT="imagenet", data={"num_workers": 0})
    assert auto.pipeline == "device"
    x_auto, y_auto = next(iter(auto.train))
    assert torch.equal(y_auto, y) and x_auto.shape == x.shape
    plain = next(iter(loaders_for(root, data={"pipeline": "device"}).train))[0]
    assert not torch.equal(x_auto, plain)  # same crops and flips, then the policy
    tiny = loaders_for(root, data={"memory_fraction": 1e-9})
    assert tiny.pipeline == "dataloader"
    with pytest.raises(ConfigError, match="needs .* GB .*data.pipeline='dataloader'"):
        loaders_for(root, data={"pipeline": "device", "memory_fraction": 1e-9})


def _damaged_copy(root, tmp_path):
    """A copy of the subset with a truncated JPEG, a text file named .JPEG, a CMYK JPEG and a
    palette PNG (the last two are valid and must be converted)."""
    copy = tmp_path / "damaged"
    shutil.copytree(root, copy)
    folder = copy / "train" / WNIDS[3]
    files = sorted(folder.iterdir())
    data = files[0].read_bytes()
    (folder / "zz_truncated.JPEG").write_bytes(data[: len(data) // 3])
    (folder / "zz_not_an_image.JPEG").write_text("<html>404 not found</html>")
    with Image.open(files[1]) as im:
        im.convert("CMYK").save(folder / "zz_cmyk.JPEG")
        im.convert("P").save(folder / "zz_palette.png")
    return copy


def test_bad_images_stop_the_run_or_are_skipped_and_counted(imagenette_subset, tmp_path, caplog):
    root, _ = imagenette_subset
    copy = _damaged_copy(root, tmp_path)
    with pytest.raises(DataError, match=r"zz_not_an_image.JPEG is not a readable image"):
        loaders_for(copy, data={"pipeline": "device"})
    with pytest.raises(DataError, match=r"zz_not_an_image.JPEG is not a readable image"):
        list(loaders_for(copy, data={"pipeline": "dataloader", "num_workers": 0},
                         TRAIN_CROP="none").train)
    good = len(open_split(root, "train", "imagenette")) + 2  # + the CMYK and palette images
    skipping = loaders_for(copy, data={"pipeline": "device", "on_bad_image": "skip"})
    assert len(skipping.train.labels) == good
    assert "skipped 2 unreadable image(s)" in caplog.text and "zz_truncated.JPEG" in caplog.text
    caplog.clear()
    # The DataLoader pipeline meets bad files while reading: each is left out of its batch
    # and counted. Evaluation order reads every image once.
    from vitscale.data.transforms import AugmentSpec
    from vitscale.data.worker_loader import WorkerLoader
    source = open_split(copy, "train", "imagenette")
    loader = WorkerLoader(source, 16, device=CPU, mean=(0.5,) * 3, std=(0.25,) * 3, train=False,
                          spec=AugmentSpec(img_size=32), num_workers=2, on_bad_image="skip")
    assert sum(len(y) for _, y in loader) == len(source) - 2 == good
    assert "evaluation data: skipped 2 unreadable image(s)" in caplog.text
    assert "zz_truncated" in caplog.text


def test_cmyk_and_palette_images_become_rgb(imagenette_subset, tmp_path):
    root, _ = imagenette_subset
    copy = _damaged_copy(root, tmp_path)
    folder = copy / "train" / WNIDS[3]
    for name in ("zz_cmyk.JPEG", "zz_palette.png"):
        im = open_rgb((folder / name).read_bytes(), name)
        assert im.mode == "RGB" and im.size == (224, 224)


def test_layout_errors_name_the_problem(imagenette_subset, tmp_path):
    root, _ = imagenette_subset
    missing = tmp_path / "no_val"
    shutil.copytree(root / "train", missing / "train")
    with pytest.raises(DataError, match=r"no 'val' split for imagenette .*looked for val/"):
        find_splits(cfg_for(), missing)
    empty = tmp_path / "empty"
    shutil.copytree(root, empty)
    for f in (empty / "train" / WNIDS[5]).iterdir():
        f.unlink()
    with pytest.raises(DataError, match=rf"class folder\(s\) \['{WNIDS[5]}'\] hold no images"):
        find_splits(cfg_for(), empty)
    different = tmp_path / "different"
    shutil.copytree(root, different)
    (different / "val" / WNIDS[9]).rename(different / "val" / "n99999999")
    with pytest.raises(DataError, match=r"train and val have different classes .*n99999999"):
        find_splits(cfg_for(), different)


def test_caltech101_split_is_stratified_deterministic_and_skips_background(imagenette_subset,
                                                                           tmp_path):
    root, _ = imagenette_subset
    images = sorted((root / "train").rglob("*.JPEG"))
    pool = tmp_path / "caltech" / "101_ObjectCategories"
    for c in range(101):  # 101 classes of 5 real photographs each, and the background folder
        folder = pool / f"class_{c:03d}"
        folder.mkdir(parents=True)
        for k in range(5):
            shutil.copy(images[(c * 5 + k) % len(images)], folder / f"image_{k:04d}.jpg")
    shutil.copytree(pool / "class_000", pool / "BACKGROUND_Google")
    cfg = config_from_dict({"DATASET": "caltech101", "SEED": 1})
    splits = find_splits(cfg, tmp_path / "caltech")
    again = find_splits(cfg, tmp_path / "caltech")
    assert len(splits.train.classes) == 101 and "BACKGROUND_Google" not in splits.train.classes
    assert len(splits.evaluation) == 101 and len(splits.train) == 404   # 20% of 505
    assert torch.bincount(splits.evaluation.labels).tolist() == [1] * 101
    assert splits.evaluation.names == again.evaluation.names
    assert not set(splits.evaluation.names) & set(splits.train.names)
    other = find_splits(config_from_dict({"DATASET": "caltech101", "SEED": 2}),
                        tmp_path / "caltech")
    assert other.evaluation.names != splits.evaluation.names


def test_cifar100_python_batches(cifar_batches, tmp_path):
    import pickle

    from vitscale.data.cifar import load_cifar_batches
    ten = load_cifar_batches(cifar_batches, "train")
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    names = [f"fine_{i}".encode() for i in range(100)]
    for split in ("train", "test"):
        data = load_cifar_batches(cifar_batches, split)
        flat = data.images.reshape(len(data.labels), -1).numpy()
        fine = [(7 * i) % 100 for i in range(len(data.labels))]
        with open(folder / split, "wb") as f:
            pickle.dump({b"data": flat, b"fine_labels": fine, b"coarse_labels": [0] * len(fine)}, f)
    with open(folder / "meta", "wb") as f:
        pickle.dump({b"fine_label_names": names}, f)
    splits = find_splits(config_from_dict({"DATASET": "cifar100"}), tmp_path)
    assert len(splits.classes) == 100 and splits.classes[3] == "fine_3"
    assert torch.equal(splits.train.images, ten.images)
    assert splits.train.labels[:3].tolist() == [0, 7, 14]


def test_synthetic_source_for_benchmarks():
    cfg = config_from_dict({"DATASET": "synthetic", "IMG_SIZE": 32, "SEED": 0,
                            "data": {"synthetic_size": 64}})
    splits = find_splits(cfg, None)
    assert splits.train.images.shape == (64, 3, 32, 32) and len(splits.classes) == 1000
    again = find_splits(cfg, None)
    assert torch.equal(again.train.images, splits.train.images)


TINY_224 = ["IMG_SIZE=32", "PATCH_SIZE=8", "HIDDEN_SIZE=32", "DEPTH=1", "NUM_HEADS=2",
            "MLP_RATIO=2", "BATCH_SIZE=8", "NUM_EPOCHS=2", "LOG_EVERY=2", "WARMUP_EPOCHS=0",
            "LIMIT_TRAIN_BATCHES=3", "LIMIT_EVAL_BATCHES=2"]


@pytest.mark.slow
@pytest.mark.parametrize("extra", [
    ["data.pipeline='dataloader'", "data.num_workers=1", "RANDAUGMENT=(2, 9)", "MIXUP_ALPHA=0.2"],
    ["CUTMIX_ALPHA=1.0", "MIXUP_ALPHA=0.8", "MIXUP_OFF_EPOCH=1", "LABEL_SMOOTHING=0.1"],
], ids=["dataloader-randaugment-mixup", "device-cutmix"])
def test_train_on_imagenette_from_the_command_line(imagenette_subset, tmp_path, extra):
    import json
    root, _ = imagenette_subset
    config = tmp_path / "cfg.py"
    config.write_text("DATASET = 'imagenette'\nMODEL = None\n")
    sets = [a for s in TINY_224 + extra + ["LIMIT_EVAL_BATCHES=None"] for a in ("--set", s)]
    result = run_cli("train", str(config), "--data", str(root), "--run-dir", str(tmp_path / "run"),
                     "--no-progress", *sets)
    assert result.returncode == 0, result.stderr[-2000:]
    pipeline = "dataloader" if "dataloader" in extra[0] else "device"
    assert f"pipeline {pipeline}" in result.stdout
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    evals = [r for r in records if r["split"] == "test"]   # Imagenette's val/ folder
    assert len(evals) == 2 and all(0 <= r["acc1"] <= 100 for r in evals)
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in records if "loss" in r)
    # The exported model evaluates on Imagenette's val/ folder to the run's final accuracy.
    result = run_cli("eval", str(tmp_path / "run" / "model_final.safetensors"), "--data",
                     str(root), "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    evaluated = json.loads(result.stdout.strip().splitlines()[-1])
    assert evaluated["images"] == evals[-1]["images"] == 40 and evaluated["classes"] == WNIDS
    assert evaluated["acc1"] == pytest.approx(evals[-1]["acc1"], abs=1e-6)


@pytest.mark.slow
def test_prepare_tfrecords_then_every_pipeline_reads_them(imagenette_subset, tmp_path):
    root, _ = imagenette_subset
    out = tmp_path / "tfr"
    result = run_cli("prepare", str(root), "--dataset", "imagenette", "--to", "tfrecord",
                     "--out", str(out), "--shards", "3")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "val: 40 images in 3 TFRecord file(s)" in result.stdout
    assert sorted(p.name for p in (out / "val").iterdir())[:2] == [
        "part-00000-of-00003.idx", "part-00000-of-00003.tfrecord"]
    splits = find_splits(cfg_for(), out)
    assert type(splits.train).__name__ == "TFRecordSource" and splits.classes == WNIDS
    folder = loaders_for(root, data={"pipeline": "dataloader", "num_workers": 0})
    records = loaders_for(out, data={"pipeline": "dataloader", "num_workers": 0})
    device = loaders_for(out, data={"pipeline": "device"})
    (xf, yf), (xr, yr), (xd, yd) = (next(iter(lo.evaluation)) for lo in (folder, records, device))
    assert torch.equal(yf, yr) and torch.equal(yr, yd)
    assert torch.equal(xf, xr)
    torch.testing.assert_close(xr, xd)


def test_prepare_cache_decodes_ahead_of_the_first_run(imagenette_subset, tmp_path, monkeypatch):
    root, _ = imagenette_subset
    env = {**os.environ, "VITSCALE_CACHE": str(tmp_path / "cache")}
    result = subprocess.run([sys.executable, "-m", "vitscale", "prepare", str(root), "--dataset",
                             "imagenette", "--to", "cache", "--set", "IMG_SIZE=48"],
                            capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "training images at 48 px" in result.stdout
    assert len(list((tmp_path / "cache").glob("compact-*.pt"))) == 2
    monkeypatch.setenv("VITSCALE_CACHE", str(tmp_path / "cache"))

    def fail(*args, **kwargs):
        raise AssertionError("decoded again instead of reading the prepared cache")
    monkeypatch.setattr(compact._Decoded, "__getitem__", fail)
    loaders = loaders_for(root, data={"pipeline": "device"})
    assert len(next(iter(loaders.train))[1]) == 8


def test_dali_pipeline_from_the_config(imagenette_subset):
    root, _ = imagenette_subset
    loaders = loaders_for(root, data={"pipeline": "dali", "dali_device": "cpu", "num_workers": 2})
    assert loaders.pipeline == "dali"
    x, y = next(iter(loaders.train))
    assert x.shape == (8, 3, 48, 48) and x.dtype == torch.float32 and y.dtype == torch.int64
    reference = loaders_for(root, data={"pipeline": "dataloader", "num_workers": 0})
    xe, ye = next(iter(loaders.evaluation))
    xr, yr = next(iter(reference.evaluation))
    assert torch.equal(ye, yr)
    assert (xe - xr).abs().mean() < 0.05  # DALI's resize differs from PIL's by ~1/255


def test_bench_data_reports_both_pipelines(cifar_folder):
    import json
    result = run_cli("bench", "data", "--data", str(cifar_folder), "--dataset", "cifar10",
                     "--batch", "16", "--epochs", "2", "--workers", "1", "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    r = json.loads(result.stdout.strip().splitlines()[-1])
    assert r["vitscale"]["pipeline"] == "device" and r["vitscale"]["images"] == 192
    assert r["baseline"]["images"] == 192
    assert r["vitscale"]["steady_images_per_s"] > 0 and r["baseline"]["steady_images_per_s"] > 0
    assert r["ratio"] == pytest.approx(r["vitscale"]["steady_images_per_s"]
                                       / r["baseline"]["steady_images_per_s"])
