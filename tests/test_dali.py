"""The DALI pipeline in DALI's CPU mode, over TFRecords of real CIFAR-10 and Imagenette images.

Order and labels follow sharding.py; crops and flips are drawn from (seed, epoch) for the whole
global batch, so images (not only labels) match across world sizes and resumes.
"""

from __future__ import annotations

import io
import re
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms.v2 import functional as TF

from test_tfrecord import cifar_records, imagenette_records
from vitscale import ConfigError, DataError
from vitscale.data import sharding
from vitscale.data.decode import decode_rgb, open_rgb, resize_center_crop
from vitscale.data.tfrecord import TFRecordSource, write_tfrecords

try:
    import nvidia.dali  # noqa: F401
    HAVE_DALI = True
except ImportError:
    HAVE_DALI = False




@pytest.fixture
def dali_installed():
    # The test extra installs DALI: its absence is a broken set-up, not a reason to skip.
    if not HAVE_DALI:
        pytest.fail("NVIDIA DALI is not installed: pip install -e '.[test]' (or 'vitscale[dali]')")


needs_dali = pytest.mark.usefixtures("dali_installed")
CPU = torch.device("cpu")
MEAN, STD = (0.5, 0.4, 0.3), (0.25, 0.2, 0.3)


@pytest.fixture(scope="module")
def cifar_source(cifar_folder, tmp_path_factory) -> TFRecordSource:
    """200 real CIFAR-10 JPEGs (20 per class) as TFRecords."""
    records, classes = cifar_records(cifar_folder, per_class=20)
    out = tmp_path_factory.mktemp("cifar_tfrecords")
    return TFRecordSource(write_tfrecords(records, out, "train", shards=4, classes=classes))


@pytest.fixture(scope="module")
def imagenette_source(tmp_path_factory) -> TFRecordSource:
    """21 real 224 px Imagenette JPEGs (the last grayscale), then 6 non-square crops of them."""
    originals = imagenette_records(20)
    records = [(data, 0, name) for data, name in originals]
    for data, name in originals[:3]:
        image = Image.open(io.BytesIO(data))
        for box in ((0, 0, 224, 150), (30, 0, 191, 224)):          # 224 x 150 and 161 x 224
            buf = io.BytesIO()
            image.crop(box).save(buf, format="JPEG", quality=95)
            records.append((buf.getvalue(), 0, f"{name}{box}"))
    out = tmp_path_factory.mktemp("imagenette_tfrecords")
    return TFRecordSource(write_tfrecords(records, out, "val", shards=1, classes=["fish"]))


def make_loader(source, batch_size=16, **kwargs):
    from vitscale.data.dali_loader import DaliLoader
    kwargs = {"train": True, "img_size": 32, "seed": 5, **kwargs}
    return DaliLoader(source, batch_size, device=CPU, mean=MEAN, std=STD, **kwargs)


def unnormalize(x: torch.Tensor) -> torch.Tensor:
    """Float (B, 3, S, S) back to 0..255 pixel units."""
    return x * torch.tensor(STD).view(1, 3, 1, 1) * 255 + torch.tensor(MEAN).view(1, 3, 1, 1) * 255


@needs_dali
def test_training_batches_have_the_right_shapes_labels_and_order(cifar_source):
    loader = make_loader(cifar_source)
    loader.set_epoch(2)
    batches = list(loader)
    assert len(batches) == len(loader) == 200 // 16
    order = sharding.train_order(200, seed=5, epoch=2, batch=16, world_size=1, rank=0)
    for i, (x, y) in enumerate(batches):
        assert x.shape == (16, 3, 32, 32) and x.dtype == torch.float32 and x.device == CPU
        assert y.dtype == torch.int64
        assert torch.equal(y, cifar_source.labels[order[i * 16:(i + 1) * 16]])
        pixels = unnormalize(x)
        assert pixels.min() > -1 and pixels.max() < 256 and pixels.std() > 20  # real photos
    assert loader.position == 0                          # a finished pass restarts
    # The same seed and epoch give the same batches, images included; another epoch does not.
    again = list(loader)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(batches, again))
    loader.set_epoch(3)
    assert not torch.equal(next(iter(loader))[1], batches[0][1])


@needs_dali
def test_random_resized_crops_and_flips_vary_between_epochs(imagenette_source):
    loader = make_loader(imagenette_source, batch_size=7, img_size=48)
    first = [x for x, _ in loader]
    assert len(first) == 27 // 7 and first[0].shape == (7, 3, 48, 48)
    loader.set_epoch(1)
    assert not torch.equal(torch.cat(first), torch.cat([x for x, _ in loader]))


def reference_crop(data: bytes, draw: list[float], size: int) -> torch.Tensor:
    """The window DaliLoader's draws describe, cut and resized by torchvision, (3, S, S) 0..255."""
    area, ratio, x, y, flip = draw
    image = open_rgb(data, "")
    W, H = image.size
    w, h = (area * ratio * H / W) ** 0.5, (area / ratio * W / H) ** 0.5
    fit = max(w, h, 1.0)
    w, h = w / fit, h / fit
    # DALI rounds the window's start and end to whole pixels.
    left, right = round(x * (1 - w) * W), round((x * (1 - w) + w) * W)
    top, bottom = round(y * (1 - h) * H), round((y * (1 - h) + h) * H)
    crop = TF.resized_crop(TF.pil_to_tensor(image), top, left, bottom - top, right - left,
                           [size, size], antialias=True).float()
    return crop.flip(-1) if flip else crop


@needs_dali
def test_crop_windows_are_the_drawn_area_ratio_and_position_of_each_image(imagenette_source):
    draws = torch.tensor([[0.3, 1.2, 0.25, 0.75, 0.0], [0.9, 0.8, 0.5, 0.1, 1.0],
                          [1.0, 1.3, 0.0, 1.0, 1.0]])          # the last one too wide: shrunk
    loader = make_loader(imagenette_source, batch_size=9, img_size=40)
    loader._draw = lambda n, g: draws.repeat(n // 3 + 1, 1)[:n]
    order = loader._batches()
    for (x, _), idx in zip(loader, order):
        got = unnormalize(x)
        for k, i in enumerate(idx.tolist()):                 # measured: mean diff <= 0.4
            expected = reference_crop(imagenette_source.read(i), draws[k % 3].tolist(), 40)
            diff = (got[k] - expected).abs().mean()
            assert diff < 1, f"image {i}, draw {k % 3}: mean |DALI - torchvision| = {diff:.2f}"


@needs_dali
def test_evaluation_is_deterministic_and_matches_torchvision_resize_and_center_crop(
        cifar_source, imagenette_source):
    # Upscaled CIFAR; downscaled square, wide and tall Imagenette, with odd margins to crop.
    cases = ((cifar_source, 32, 0.8), (imagenette_source, 56, 0.875), (imagenette_source, 37, 0.9))
    for source, size, crop_pct in cases:
        loader = make_loader(source, train=False, img_size=size, eval_crop_pct=crop_pct)
        batches = list(loader)
        assert [len(y) for _, y in batches] == [16] * (len(source) // 16) + (
            [len(source) % 16] if len(source) % 16 else [])
        images = torch.cat([x for x, _ in batches])
        assert torch.equal(torch.cat([y for _, y in batches]), source.labels)
        assert torch.equal(images, torch.cat([x for x, _ in loader]))
        resize = round(size / crop_pct)
        reference = torch.stack([
            resize_center_crop(decode_rgb(source.read(i), str(i)), resize, size).float()
            for i in range(len(source))])
        # Measured: mean 0.1 to 0.23, max 1 (rounding).
        diff = (unnormalize(images) - reference).abs()
        assert diff.mean() < 1 and diff.max() <= 2, \
            f"|DALI - torchvision| mean {diff.mean():.2f}, max {diff.max():.2f} at {size} px"


@needs_dali
def test_two_ranks_read_disjoint_halves_of_the_single_process_global_batch(cifar_source):
    single = list(make_loader(cifar_source, batch_size=16))
    ranks = [list(make_loader(cifar_source, batch_size=8, rank=r, world_size=2)) for r in (0, 1)]
    assert len(single) == len(ranks[0]) == len(ranks[1]) == 12
    for (x, y), (x0, y0), (x1, y1) in zip(single, *ranks):
        assert torch.equal(torch.cat([y0, y1]), y)
        assert torch.allclose(torch.cat([x0, x1]), x, atol=1e-5)   # same crops and flips
    order = [sharding.train_order(200, seed=5, epoch=0, batch=8, world_size=2, rank=r)
             for r in (0, 1)]
    assert not set(order[0].tolist()) & set(order[1].tolist())


@needs_dali
def test_resume_from_a_state_dict_continues_with_the_same_batches(cifar_source):
    full = make_loader(cifar_source)
    full.set_epoch(4)
    reference = list(full)
    interrupted = make_loader(cifar_source)
    interrupted.set_epoch(4)
    for i, _ in enumerate(interrupted):
        if i == 4:
            break                                        # 5 batches read, one more in flight
    state = interrupted.state_dict()
    assert state == {"epoch": 4, "position": 5}
    resumed = make_loader(cifar_source)
    resumed.load_state_dict(state)
    for loader in (resumed, interrupted):                # a new loader, or the same one again
        rest = list(loader)
        assert len(rest) == len(reference) - 5
        for (x, y), (rx, ry) in zip(rest, reference[5:]):
            assert torch.equal(y, ry) and torch.equal(x, rx)


@needs_dali
def test_an_undecodable_image_is_a_data_error_that_names_it(cifar_source):
    class Broken:
        labels, names = cifar_source.labels, cifar_source.names

        def __len__(self):
            return len(cifar_source)

        def read(self, i):
            return b"not an image" if i == 3 else cifar_source.read(i)

    loader = make_loader(Broken(), train=False)
    with pytest.raises(DataError, match=rf"{re.escape(cifar_source.names[3])} is not a readable"):
        list(loader)
    loader.source = cifar_source                         # the next pass rebuilds the pipeline
    assert len(list(loader)) == len(loader)


def test_missing_dali_is_a_config_error_that_says_how_to_install_it(cifar_source, monkeypatch):
    for name in [m for m in sys.modules if m.startswith("nvidia.dali.")] + ["nvidia.dali"]:
        monkeypatch.setitem(sys.modules, name, None)     # `import nvidia.dali` now fails
    with pytest.raises(ConfigError, match=r"pip install 'vitscale\[dali\]'.*pipeline='dataloader'"):
        make_loader(cifar_source)


class DecodedArrays:
    """A source that holds decoded pixels (as CIFAR's python batches do), not image files."""

    labels = torch.zeros(4, dtype=torch.int64)

    def __len__(self):
        return 4

    def read(self, i):
        return np.zeros((4, 4, 3), np.uint8)


@needs_dali
def test_a_gpu_request_without_cuda_or_a_source_of_arrays_is_a_config_error(cifar_source):
    with pytest.raises(ConfigError, match="needs a CUDA training device"):
        make_loader(cifar_source, dali_device="gpu")
    with pytest.raises(ConfigError, match="decoded arrays.*data.pipeline='device' or 'dataloader'"):
        make_loader(DecodedArrays())
