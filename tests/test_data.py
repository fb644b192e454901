"""CIFAR-10 from its three layouts, the disk cache, batched augmentation and the device loader."""

from __future__ import annotations

import shutil
from collections import Counter

import pytest
import torch
import torch.nn.functional as F

from vitscale import DataError
from vitscale.data import DeviceLoader, augment, cifar, compact, load_splits
from vitscale.data.cifar import CIFAR10_CLASSES


def load_cifar10(root, split):
    train, test = load_splits("cifar10", root)
    return train if split == "train" else test


def test_archives_decode_every_real_image(cifar_dir):
    train, test = load_splits("cifar10", cifar_dir)
    assert train.images.shape == (50_000, 3, 32, 32) and train.images.dtype == torch.uint8
    assert test.images.shape == (10_000, 3, 32, 32)
    assert train.classes == CIFAR10_CLASSES
    assert Counter(train.labels.tolist()) == {i: 5000 for i in range(10)}
    assert Counter(test.labels.tolist()) == {i: 1000 for i in range(10)}
    assert 100 < train.images.float().mean() < 150  # real photographs, not blank


def test_folder_and_batches_layouts_match_the_archive_pixels(cifar_dir, cifar_folder,
                                                             cifar_batches):
    folder = load_cifar10(cifar_folder, "train")
    assert folder.images.shape == (200, 3, 32, 32) and folder.classes == CIFAR10_CLASSES
    full = load_cifar10(cifar_dir, "train")
    # The subset holds the first 20 files of each class: the same pixels as in the archive.
    first = torch.cat([torch.nonzero(full.labels == c).flatten()[:20] for c in range(10)])
    assert torch.equal(folder.images, full.images[first])
    for root in (cifar_batches, cifar_batches.parent):  # the folder itself or its parent
        batches = load_cifar10(root, "train")
        assert sorted(batches.labels.tolist()) == sorted(folder.labels.tolist())
        assert batches.images.shape == folder.images.shape
        assert batches.classes == CIFAR10_CLASSES
    test = load_cifar10(cifar_batches, "test")
    assert len(test.labels) == 100


def test_second_load_comes_from_the_cache(cifar_folder, monkeypatch):
    load_cifar10(cifar_folder, "test")

    def fail(*args, **kwargs):
        raise AssertionError("decoded again instead of reading the cache")
    monkeypatch.setattr(compact._Decoded, "__getitem__", fail)
    assert len(load_cifar10(cifar_folder, "test").labels) == 100


def test_missing_folder_and_wrong_layout_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist: pass --data"):
        load_cifar10(tmp_path / "nowhere", "train")
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.jpg").write_bytes(b"")
    with pytest.raises(DataError, match="no 'train' split for cifar10 .* point --data at"):
        load_cifar10(tmp_path, "train")


def test_bad_image_names_the_file(cifar_folder, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(cifar_folder, root)
    bad = root / "train" / "cat" / "zzz_broken.jpg"
    bad.write_bytes(b"this is not a jpeg")
    with pytest.raises(DataError, match="zzz_broken.jpg is not a readable image .*on_bad_image='skip'"):
        load_cifar10(root, "train")


def test_train_and_test_class_sets_must_match(cifar_folder, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(cifar_folder, root)
    shutil.rmtree(root / "test" / "truck")
    with pytest.raises(DataError, match=r"only in train: \['truck'\]"):
        load_splits("cifar10", root)


def test_empty_class_folder_is_an_error(cifar_folder, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(cifar_folder, root)
    for f in (root / "train" / "dog").iterdir():
        f.unlink()
    with pytest.raises(DataError, match=r"class folder\(s\) \['dog'\] hold no images"):
        load_cifar10(root, "train")


def test_offline_download_says_how_to_point_at_local_data(tmp_path, monkeypatch):
    import urllib.error

    import torchvision.datasets.utils as tv_utils

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")
    monkeypatch.setattr(tv_utils, "download_and_extract_archive", offline)
    with pytest.raises(DataError, match="could not download CIFAR-10 .* point --data"):
        cifar.download_cifar10(tmp_path)


def test_random_crop_equals_per_image_pad_and_slice():
    images = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    offsets = augment.draw_crop_offsets(16, 4, torch.Generator().manual_seed(3))
    assert offsets.min() >= 0 and offsets.max() <= 8
    out = augment.random_crop(images, 4, offsets)
    padded = F.pad(images, (4, 4, 4, 4))
    for i in range(16):
        dy, dx = offsets[:, i].tolist()
        assert torch.equal(out[i], padded[i, :, dy:dy + 32, dx:dx + 32])
    assert not torch.equal(out, images)


def test_random_hflip_flips_about_half_exactly():
    images = torch.randint(0, 256, (200, 3, 8, 8), dtype=torch.uint8)
    out = augment.random_hflip(images, augment.draw_flips(200, torch.Generator().manual_seed(0)))
    flipped = [torch.equal(o, i.flip(-1)) for o, i in zip(out, images)]
    kept = [torch.equal(o, i) for o, i in zip(out, images)]
    assert all(f or k for f, k in zip(flipped, kept))
    assert 70 < sum(flipped) < 130


def loader(n=100, batch=16, **kw):
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 3, 4, 4).contiguous()
    return DeviceLoader(images, torch.arange(n), batch, device=torch.device("cpu"),
                        mean=(0, 0, 0), std=(1 / 255,) * 3, **kw)


def test_loader_order_depends_on_seed_and_epoch_and_shards_are_disjoint():
    def epoch_labels(l, epoch):
        l.set_epoch(epoch)
        return torch.cat([y for _, y in l]).tolist()
    a = epoch_labels(loader(train=True, seed=1), 0)
    assert a == epoch_labels(loader(train=True, seed=1), 0)
    assert a != epoch_labels(loader(train=True, seed=1), 1)
    assert a != epoch_labels(loader(train=True, seed=2), 0)
    shards = [epoch_labels(loader(train=True, seed=1, rank=r, world_size=2, batch=8), 0)
              for r in range(2)]
    assert not set(shards[0]) & set(shards[1]) and len(shards[0]) == len(shards[1]) == 48
    # Two ranks of 8 read exactly the global batches of 16 that one process reads.
    whole = epoch_labels(loader(train=True, seed=1, batch=16), 0)
    for step in range(6):
        both = sorted(shards[0][step * 8:(step + 1) * 8] + shards[1][step * 8:(step + 1) * 8])
        assert both == sorted(whole[step * 16:(step + 1) * 16])
    # Evaluation keeps every sample, in order, with the last partial batch.
    assert epoch_labels(loader(train=False), 0) == list(range(100))


def test_augmentation_of_a_sample_does_not_depend_on_world_size_or_resumption():
    def batches(world, rank, start=0):
        l = loader(train=True, seed=5, batch=16 // world, world_size=world, rank=rank,
                   crop_padding=1, hflip=True)
        l.set_epoch(2)
        l.load_state_dict({"epoch": 2, "position": start})
        return list(l)
    one = batches(1, 0)
    two = [batches(2, r) for r in range(2)]
    for step in range(len(one)):
        merged = torch.cat([two[0][step][0], two[1][step][0]])
        assert torch.equal(merged, one[step][0])
    resumed = batches(1, 0, start=3)
    assert len(resumed) == len(one) - 3
    assert all(torch.equal(a[0], b[0]) for a, b in zip(resumed, one[3:]))


def test_a_loader_can_be_read_again_from_the_start():
    for train in (True, False):
        l = loader(train=train, seed=0)
        first, second = [y for _, y in l], [y for _, y in l]
        assert len(first) == len(second) == len(l) > 0
        assert all(torch.equal(a, b) for a, b in zip(first, second))


def test_loader_normalises_and_keeps_labels_with_their_images():
    for x, y in loader(train=True, seed=0):
        assert x.dtype == torch.float32
        assert torch.equal(x[:, 0, 0, 0], y.float())  # pixel value == index == label
