"""Batched Random Erasing (vitscale/data/erasing.py) against torchvision's v2.RandomErasing.

torchvision draws one image at a time from the global generator, so the streams cannot match:
the erased pixels are compared for the same box (exactly), and the boxes by distribution
(each rule of v2.RandomErasing.make_params, and the share of images erased).
"""

from __future__ import annotations

import math

import pytest
import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from vitscale import ConfigError, Trainer, build_engine, load_config
from vitscale.data.erasing import RandomErasing, draw_boxes, erase

from conftest import TINY

SCALE, RATIO = (0.02, 0.33), (0.3, 3.3)


def boxes_of(n: int, height: int, width: int, p: float, seed: int = 0) -> torch.Tensor:
    return draw_boxes(n, height, width, p, SCALE, RATIO, torch.Generator().manual_seed(seed))


def test_erased_pixels_equal_torchvision_for_the_same_box():
    g = torch.Generator().manual_seed(0)
    images = torch.randn(64, 3, 32, 32, generator=g)
    boxes = boxes_of(64, 32, 32, p=0.7, seed=1)
    noise = torch.randn(images.shape, generator=g)
    zero, random = erase(images, boxes), erase(images, boxes, noise)
    for k, (i, j, h, w) in enumerate(boxes.tolist()):
        if h == 0:                                          # not erased: unchanged
            assert torch.equal(zero[k], images[k]) and torch.equal(random[k], images[k])
            continue
        want = TF.erase(images[k], i, j, h, w, torch.zeros(3, 1, 1))
        assert torch.equal(zero[k], want)
        want = TF.erase(images[k], i, j, h, w, noise[k, :, i:i + h, j:j + w])
        assert torch.equal(random[k], want)


def torchvision_boxes(n: int, height: int, width: int, p: float) -> torch.Tensor:
    """(n, 4) boxes from v2.RandomErasing itself, (0, 0, 0, 0) where it leaves the image."""
    t = v2.RandomErasing(p=1.0, scale=SCALE, ratio=RATIO)
    image = torch.zeros(3, height, width)
    torch.manual_seed(0)
    out = []
    for _ in range(n):
        params = t.make_params([image])
        erased = params["v"] is not None and torch.rand(1).item() < p
        out.append([params[k] for k in "ijhw"] if erased else [0, 0, 0, 0])
    return torch.tensor(out)


def within(a: torch.Tensor, b: torch.Tensor, sigmas: float = 5.0) -> bool:
    """Means of two samples within `sigmas` standard errors of their difference."""
    a, b = a.double(), b.double()
    se = math.sqrt(a.var() / len(a) + b.var() / len(b)) + 1e-12
    return abs(a.mean() - b.mean()) <= sigmas * se


# 32 x 32: nearly every first try fits. 6 x 40: many tries are too tall, and some images
# run out of tries (torchvision then leaves them as they are).
@pytest.mark.parametrize("height, width", [(32, 32), (6, 40)])
def test_box_distribution_follows_torchvision(height, width):
    p, n = 0.4, 200_000
    ours = boxes_of(n, height, width, p)
    top, left, h, w = ours.T
    erased = h > 0
    # Every box lies inside the image and is smaller than it, as make_params requires.
    assert ((top >= 0) & (left >= 0) & (top + h <= height) & (left + w <= width)).all()
    assert ((h < height) & (w < width)).all()
    # Area and aspect ratio within the drawn ranges, up to the rounding of h and w.
    area = (h * w).double()[erased]
    hi_h, lo_h = (h.double() + 0.5)[erased], (h.double() - 0.5)[erased]
    hi_w, lo_w = (w.double() + 0.5)[erased], (w.double() - 0.5)[erased]
    assert (hi_h * hi_w >= SCALE[0] * height * width).all()
    assert (lo_h * lo_w <= SCALE[1] * height * width).all()
    assert (hi_h / lo_w.clamp(min=1e-9) >= RATIO[0]).all() and (lo_h / hi_w <= RATIO[1]).all()
    # The same distribution as torchvision's loop: share erased, and the boxes' moments.
    theirs = torchvision_boxes(20_000, height, width, p)
    assert within(erased.float(), (theirs[:, 2] > 0).float())
    for column in range(4):
        assert within(ours[erased][:, column], theirs[theirs[:, 2] > 0][:, column])
    assert within(area, (theirs[:, 2] * theirs[:, 3])[theirs[:, 2] > 0])
    if (height, width) == (32, 32):    # p itself, when every image has a fitting try
        assert abs(erased.float().mean().item() - p) <= 5 * math.sqrt(p * (1 - p) / n)


def test_the_draw_is_the_same_whatever_the_rank_layout():
    """Boxes for the global batch, applied per rank slice: 2 ranks erase what 1 rank does."""
    erasing = RandomErasing(p=0.5)
    images = torch.randn(16, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    draw = erasing.draw(16, 32, 32, torch.Generator().manual_seed(3))
    whole = erasing.apply(images, draw, slice(0, 16))
    halves = [erasing.apply(images[r * 8:(r + 1) * 8], draw, slice(r * 8, (r + 1) * 8), rank=r)
              for r in range(2)]
    assert torch.equal(torch.cat(halves), whole)


@pytest.mark.parametrize("bad, match", [(dict(p=1.5), "RANDOM_ERASING=1.5"),
                                        (dict(p=0.2, value="mean"), "RANDOM_ERASING_VALUE")])
def test_bad_values_are_one_line_config_errors(bad, match):
    with pytest.raises(ConfigError, match=match):
        RandomErasing(**bad)


def test_out_of_range_key_is_a_config_error(cifar_dir):
    cfg = load_config("configs/cifar10/quick_cpu.py", TINY + ["RANDOM_ERASING=2.0"])
    with pytest.raises(ConfigError, match="RANDOM_ERASING=2.0 is out of range"):
        build_engine(cfg, data=cifar_dir, device="cpu")


@pytest.mark.parametrize("pipeline", ["device", "dataloader"])
def test_training_runs_with_random_erasing(cifar_dir, pipeline):
    sets = TINY + [f"data.pipeline='{pipeline}'", "data.num_workers=0", "NUM_EPOCHS=1"]
    cfg = load_config("configs/cifar10/quick_cpu.py",
                      sets + ["RANDOM_ERASING=1.0", "RANDOM_ERASING_VALUE='random'"])
    engine = build_engine(cfg, data=cifar_dir, device="cpu")
    loader = engine.train_loader
    if pipeline == "device":
        assert loader.erasing is not None
    else:
        assert loader.normalise_in_workers
    # p = 1 on 32 px: every image has one box of N(0, 1) noise, so batches differ from an
    # epoch without erasing exactly inside one rectangle per image.
    images, _ = next(iter(loader))
    plain = load_config("configs/cifar10/quick_cpu.py", sets)
    reference, _ = next(iter(build_engine(plain, data=cifar_dir, device="cpu").train_loader))
    changed = (images != reference).any(1)                  # (b, H, W)
    assert changed.flatten(1).any(1).all()
    rows, cols = changed.any(2), changed.any(1)
    assert torch.equal(changed, rows[:, :, None] & cols[:, None, :])    # one rectangle each
    summary = Trainer(engine, progress=False, console=False).fit()
    assert summary["steps"] == 3 and math.isfinite(summary["final_loss"])
