"""Batched AutoAugment and RandAugment (vitscale/data/policy.py) against torchvision.transforms.v2.

Tolerance: none. Every op, at every (magnitude, sign) a policy can draw, equals
torchvision.transforms.v2.functional's op applied image by image, pixel for pixel, on real
CIFAR-10 uint8 images on the CPU (policy.py says how the blends get there).
"""

from __future__ import annotations

import math

import pytest
import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from vitscale import Trainer, build_engine, load_config
from vitscale.data import load_splits
from vitscale.data.policy import AutoAugment, RandAugment, build_policy

from conftest import TINY


@pytest.fixture(scope="module")
def images(cifar_dir) -> torch.Tensor:
    """64 real test images, uint8 (64, 3, 32, 32)."""
    return load_splits("cifar10", cifar_dir)[1].images[:64].contiguous()


def reference(image: torch.Tensor, op: str, m: float) -> torch.Tensor:
    """torchvision's functional op with AutoAugment's conventions (interpolation nearest,
    fill None: zeros; shears about the corner by atan(m); translations by int(m))."""
    if op in ("ShearX", "ShearY"):
        angle = math.degrees(math.atan(m))
        return TF.affine(image, angle=0.0, translate=[0, 0], scale=1.0, center=[0, 0],
                         shear=[angle, 0.0] if op == "ShearX" else [0.0, angle])
    if op in ("TranslateX", "TranslateY"):
        move = [int(m), 0] if op == "TranslateX" else [0, int(m)]
        return TF.affine(image, angle=0.0, translate=move, scale=1.0, shear=[0.0, 0.0])
    return {"Identity": lambda: image, "Rotate": lambda: TF.rotate(image, angle=m),
            "Brightness": lambda: TF.adjust_brightness(image, 1.0 + m),
            "Color": lambda: TF.adjust_saturation(image, 1.0 + m),
            "Contrast": lambda: TF.adjust_contrast(image, 1.0 + m),
            "Sharpness": lambda: TF.adjust_sharpness(image, 1.0 + m),
            "Posterize": lambda: TF.posterize(image, int(m)),
            "Solarize": lambda: TF.solarize(image, 255.0 * m),
            "AutoContrast": lambda: TF.autocontrast(image), "Equalize": lambda: TF.equalize(image),
            "Invert": lambda: TF.invert(image)}[op]()


slow = pytest.mark.slow
POLICIES = [pytest.param(lambda: AutoAugment("cifar10", 32, 32), id="aa-cifar10"),
            pytest.param(lambda: RandAugment(2, 9, 32, 32), id="ra-2-9"),
            pytest.param(lambda: AutoAugment("svhn", 32, 32), id="aa-svhn", marks=slow),
            pytest.param(lambda: AutoAugment("imagenet", 32, 32), id="aa-imagenet", marks=slow),
            pytest.param(lambda: RandAugment(1, 30, 32, 32), id="ra-1-30", marks=slow)]


@pytest.mark.parametrize("make", POLICIES)
def test_every_op_at_every_magnitude_equals_torchvision(make, images):
    policy = make()
    for k, entry in enumerate(policy.entries):  # one fixed draw for the whole batch
        got = policy.apply(images, torch.full((len(images), 1), k))
        # torchvision's functional ops take a batch with one magnitude, statistics per image.
        want = reference(images, entry.op, entry.magnitude)
        assert torch.equal(got, want), f"{entry} differs from torchvision"


@pytest.mark.parametrize("make", POLICIES[:2])
def test_every_op_equals_torchvision_on_every_8bit_value(make):
    """The ops look their results up in tables (policy.py): images that hold each of the 256
    values in every channel, in random places, and random full-range noise (Sharpness's and
    Equalize's neighbourhoods and histograms far from photographs')."""
    g = torch.Generator().manual_seed(3)
    ramp = torch.arange(256, dtype=torch.uint8).repeat(4)                  # 1024 = 32 x 32
    every = torch.stack([torch.stack([ramp[torch.randperm(1024, generator=g)].view(32, 32)
                                      for _ in range(3)]) for _ in range(8)])
    noise = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8, generator=g)
    test_every_op_at_every_magnitude_equals_torchvision(make, torch.cat([every, noise]))


def test_a_mixed_batch_equals_the_chain_of_ops_image_by_image(images):
    """Each image its own sub-policy, steps and signs, grouped by op in one call."""
    policy = AutoAugment("cifar10", 32, 32)
    entries = policy.draw(len(images), torch.Generator().manual_seed(0))
    got = policy.apply(images.contiguous(memory_format=torch.channels_last), entries)
    for image, row, out in zip(images, entries.tolist(), got):
        for k in row:
            if k >= 0:
                image = reference(image, policy.entries[k].op, policy.entries[k].magnitude)
        assert torch.equal(out, image)


def test_magnitude_tables_are_torchvisions():
    for size in (32, 224):
        for policy, tv, bins in ((AutoAugment("cifar10", size, size), v2.AutoAugment, 10),
                                 (RandAugment(2, 9, size, size), v2.RandAugment, 31)):
            space = tv._AUGMENTATION_SPACE
            for e in policy.entries:
                table, signed = space[e.op]
                values = table(bins, size, size)
                if values is None:
                    assert e.magnitude == 0.0
                    continue
                assert abs(e.magnitude) in [float(v) for v in values]
                assert signed or e.magnitude >= 0


def frequencies(policy, n: int = 200_000) -> dict:
    entries = policy.draw(n, torch.Generator().manual_seed(1))
    seen = {}
    for slot in range(entries.shape[1]):
        counts = torch.bincount(entries[:, slot] + 1, minlength=len(policy.entries) + 1)
        for k, c in enumerate(counts.tolist()):
            key = (slot, None) if k == 0 else (slot, policy.entries[k - 1])
            if c:
                seen[key] = seen.get(key, 0) + c / n
    return seen


def check(seen: dict, expected: dict, n: int = 200_000) -> None:
    """Each frequency within 5 binomial standard deviations of its probability: with ~100
    cells, a correct sampler fails this with probability < 1e-4 (and the seed is fixed)."""
    assert set(seen) == set(expected)
    for key, p in expected.items():
        bound = 5 * math.sqrt(p * (1 - p) / n) + 1e-12
        assert abs(seen[key] - p) <= bound, f"{key}: {seen[key]:.5f} vs {p:.5f}"


def test_autoaugment_draws_follow_the_policy_probabilities():
    policy = AutoAugment("cifar10", 32, 32)
    table = v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10)._policies   # torchvision's own table
    expected: dict = {}
    for sub in table:
        for slot, (op, p, level) in enumerate(sub):
            bins = policy_magnitudes(op, level)
            for m, share in bins:
                key = (slot, next(e for e in policy.entries if e.op == op and e.magnitude == m))
                expected[key] = expected.get(key, 0.0) + p * share / len(table)
            expected[(slot, None)] = expected.get((slot, None), 0.0) + (1 - p) / len(table)
    check(frequencies(policy), {k: v for k, v in expected.items() if v > 0})


def policy_magnitudes(op: str, level: int | None) -> list[tuple[float, float]]:
    """[(signed magnitude, probability)] of one AutoAugment step at 32 px, from torchvision."""
    table, signed = v2.AutoAugment._AUGMENTATION_SPACE[op]
    values = table(10, 32, 32)
    if values is None:
        return [(0.0, 1.0)]
    m = float(values[level])
    return [(m, 0.5), (-m, 0.5)] if signed and m != 0.0 else [(m, 1.0)]


def test_randaugment_draws_are_uniform_over_ops_and_signs():
    policy = RandAugment(2, 9, 32, 32)
    expected = {}
    ops = list(v2.RandAugment._AUGMENTATION_SPACE)
    for slot in range(2):
        for e in policy.entries:
            signed = v2.RandAugment._AUGMENTATION_SPACE[e.op][1]
            expected[(slot, e)] = 1 / len(ops) * (0.5 if signed else 1.0)
    check(frequencies(policy), expected)


def test_both_policies_is_a_config_error():
    from vitscale import ConfigError
    with pytest.raises(ConfigError, match="keep one"):
        build_policy(autoaugment="cifar10", randaugment=(2, 9), height=32, width=32)


@pytest.mark.parametrize("policy", ["AUTOAUGMENT='cifar10'", "RANDAUGMENT=(2, 9)"])
def test_device_pipeline_trains_with_each_policy(cifar_dir, policy):
    cfg = load_config("configs/cifar10/quick_cpu.py",
                      TINY + [policy, "data.pipeline='device'", "NUM_EPOCHS=1"])
    engine = build_engine(cfg, data=cifar_dir, device="cpu")
    assert engine.train_loader.policy is not None
    summary = Trainer(engine, progress=False, console=False).fit()
    assert summary["steps"] == 3 and math.isfinite(summary["final_loss"])
