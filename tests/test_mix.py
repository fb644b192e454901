"""Mixup / CutMix (vitscale/data/mix.py): the batch operations against their formulas, and the
loader's invariants: the same mixed sample on 1, 2 or 4 ranks, exact resumption mid-epoch,
reproducible draws, the switch to int labels at off_epoch, and the soft-target loss."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from vitscale.data.base import ShardedLoader
from vitscale.data.device_loader import DeviceLoader
from vitscale.data.mix import (Box, MixConfig, MixingLoader, apply_mix, box_lambda,
                               classification_loss, cutmix, cutmix_box, draw_beta, epoch_draws,
                               mixup, pair_partners, soft_target_cross_entropy, soft_targets)
from vitscale.errors import ConfigError

K = 5
SEED = 1   # its epochs 0 and 2 hold unmixed, Mixup and CutMix batches under BOTH
BOTH = MixConfig(mixup_alpha=0.8, cutmix_alpha=1.0, prob=0.8, switch_prob=0.5,
                 label_smoothing=0.1, num_classes=K)


class TensorLoader(ShardedLoader):
    """The loader protocol over a fixed dataset tensor, in sharding.py's order, no augmentation."""

    def __init__(self, images, labels, batch_size, **kw):
        super().__init__(len(labels), batch_size, train=True, **kw)
        self.images, self.labels = images, labels

    def __iter__(self):
        start, self.position = self.position, 0
        for i, idx in enumerate(self._batches()):
            self.position = i + 1
            if i >= start:
                yield self.images[idx], self.labels[idx]
        self.position = 0


def dataset(n=64, size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, size, size, generator=g), torch.randint(0, K, (n,), generator=g)


def mixing(cfg, world_size, rank, global_batch=8, seed=SEED, epoch=0, data=None):
    images, labels = data if data is not None else dataset()
    loader = TensorLoader(images, labels, global_batch // world_size, seed=seed, rank=rank,
                          world_size=world_size)
    loader.set_epoch(epoch)
    return MixingLoader(loader, cfg)


# ---- batch operations ------------------------------------------------------------------------

@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3])
def test_soft_targets_sum_to_one_and_respect_smoothing(smoothing):
    labels = torch.tensor([0, 3, 4, 3])
    t = soft_targets(labels, K, smoothing)
    assert t.shape == (4, K) and t.dtype == torch.float32
    torch.testing.assert_close(t.sum(1), torch.ones(4))
    on = t[torch.arange(4), labels]
    torch.testing.assert_close(on, torch.full((4,), 1 - smoothing + smoothing / K))
    off = t.masked_fill(F.one_hot(labels, K).bool(), float("nan"))
    torch.testing.assert_close(off[~off.isnan()], torch.full((4 * (K - 1),), smoothing / K))


def test_pair_partners_are_neighbours():
    assert pair_partners(6).tolist() == [1, 0, 3, 2, 5, 4]
    assert pair_partners(5).tolist() == [1, 0, 3, 2, 4]   # odd: the last keeps itself


def test_mixup_with_lambda_one_is_identity():
    x, y = dataset(8)
    t = soft_targets(y, K, 0.1)
    mixed, mt = mixup(x, t, 1.0, pair_partners(8))
    assert torch.equal(mixed, x) and torch.equal(mt, t)


def test_mixup_equals_formula():
    x = torch.arange(4 * 3 * 2 * 2, dtype=torch.float32).view(4, 3, 2, 2)
    t = soft_targets(torch.tensor([0, 1, 2, 3]), K)
    lam = 0.3
    mixed, mt = mixup(x, t, lam, pair_partners(4))
    for i, j in [(0, 1), (1, 0), (2, 3), (3, 2)]:
        torch.testing.assert_close(mixed[i], lam * x[i] + (1 - lam) * x[j])
        torch.testing.assert_close(mt[i], lam * t[i] + (1 - lam) * t[j])
    assert mt[0, 0] == pytest.approx(0.3) and mt[0, 1] == pytest.approx(0.7)
    torch.testing.assert_close(mt.sum(1), torch.ones(4))


def test_cutmix_pastes_exactly_the_box_with_area_lambda():
    x, y = dataset(6, size=10)
    t = soft_targets(y, K, 0.1)
    box = Box(top=2, left=3, bottom=7, right=5)            # 5 x 2 of 10 x 10
    p = pair_partners(6)
    mixed, mt = cutmix(x, t, box, p)
    inside = torch.zeros(10, 10, dtype=torch.bool)
    inside[2:7, 3:5] = True
    assert torch.equal(mixed[..., inside], x[p][..., inside])
    assert torch.equal(mixed[..., ~inside], x[..., ~inside])
    lam = box_lambda(box, 10, 10)
    assert lam == pytest.approx(1 - 10 / 100)
    # The targets carry the same lambda as the pixels: the share of own pixels.
    own = (mixed == x).all(1).flatten(1).float().mean(1)
    torch.testing.assert_close(own, torch.full((6,), lam))
    torch.testing.assert_close(mt, lam * t + (1 - lam) * t[p])


def test_cutmix_box_side_ratio_and_clipping():
    lam = 0.75                                     # side ratio sqrt(0.25) = 0.5
    box = cutmix_box(lam, (0.5, 0.5), 32, 16)
    assert (box.bottom - box.top, box.right - box.left) == (16, 8)
    assert box_lambda(box, 32, 16) == pytest.approx(lam)
    corner = cutmix_box(lam, (0.0, 0.0), 32, 16)   # centre at the corner: a quarter survives
    assert corner == Box(0, 0, 8, 4)
    assert box_lambda(corner, 32, 16) > lam
    assert cutmix_box(1.0, (0.3, 0.9), 32, 16).area == 0
    whole = cutmix_box(0.0, (0.5, 0.5), 32, 16)
    assert whole == Box(0, 0, 32, 16) and box_lambda(whole, 32, 16) == 0.0


def test_beta_draws_have_beta_moments():
    g = torch.Generator().manual_seed(0)
    for alpha in (0.2, 1.0, 2.0):
        lam = torch.tensor([draw_beta(alpha, g) for _ in range(3000)], dtype=torch.float64)
        assert ((lam >= 0) & (lam <= 1)).all()
        assert lam.mean().item() == pytest.approx(0.5, abs=0.03)
        # Var Beta(a, a) = 1 / (4 (2a + 1)).
        assert lam.var().item() == pytest.approx(1 / (4 * (2 * alpha + 1)), rel=0.12)


# ---- the loader ------------------------------------------------------------------------------

def collect(loader):
    return [(x.clone(), y.clone()) for x, y in loader]


@pytest.mark.parametrize("cfg", [
    BOTH,
    MixConfig(mixup_alpha=0.2, num_classes=K),
    MixConfig(cutmix_alpha=1.0, label_smoothing=0.1, num_classes=K)],
    ids=["both", "mixup", "cutmix"])
@pytest.mark.parametrize("world_size", [2, 4])
def test_same_mixed_samples_on_any_number_of_ranks(cfg, world_size):
    single = collect(mixing(cfg, 1, 0))
    ranks = [collect(mixing(cfg, world_size, r)) for r in range(world_size)]
    assert len(single) == 8 and all(len(r) == 8 for r in ranks)
    for step, (x, t) in enumerate(single):
        assert t.shape == (8, K) and t.dtype == torch.float32
        assert torch.equal(torch.cat([r[step][0] for r in ranks]), x)
        assert torch.equal(torch.cat([r[step][1] for r in ranks]), t)
    kinds = {d.kind for d, _ in zip(epoch_draws(cfg, SEED, 0), range(8))}
    only = "mixup" if cfg.mixup_alpha else "cutmix"
    assert kinds == ({"none", "mixup", "cutmix"} if cfg is BOTH else {only})


def test_device_loader_with_augmentation_gives_the_same_samples_on_two_ranks():
    g = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (48, 3, 8, 8), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, K, (48,), generator=g)

    def run(world_size, rank):
        loader = DeviceLoader(images, labels, 8 // world_size, device=torch.device("cpu"),
                              mean=(0.5,) * 3, std=(0.25,) * 3, train=True, crop_padding=2,
                              hflip=True, seed=5, rank=rank, world_size=world_size)
        loader.set_epoch(1)
        return collect(MixingLoader(loader, BOTH))

    single, r0, r1 = run(1, 0), run(2, 0), run(2, 1)
    for (x, t), (x0, t0), (x1, t1) in zip(single, r0, r1):
        assert torch.equal(torch.cat([x0, x1]), x) and torch.equal(torch.cat([t0, t1]), t)


@pytest.mark.parametrize("world_size", [1, 2])
def test_resume_mid_epoch_equals_uninterrupted(world_size):
    for rank in range(world_size):
        full = collect(mixing(BOTH, world_size, rank, epoch=2))
        for k in (1, 5):
            resumed = mixing(BOTH, world_size, rank, epoch=7)   # epoch comes from the state
            resumed.load_state_dict({"epoch": 2, "position": k})
            assert resumed.state_dict() == {"epoch": 2, "position": k}
            rest = collect(resumed)
            assert len(rest) == len(full) - k
            for (x, t), (xf, tf) in zip(rest, full[k:]):
                assert torch.equal(x, xf) and torch.equal(t, tf)
            assert resumed.position == 0          # a finished pass restarts from the start


def test_off_epoch_switches_to_int_labels():
    cfg = MixConfig(mixup_alpha=1.0, label_smoothing=0.1, off_epoch=2, num_classes=K)
    images, labels = dataset()
    for epoch in range(4):
        loader = mixing(cfg, 1, 0, epoch=epoch, data=(images, labels))
        plain = TensorLoader(images, labels, 8, seed=SEED)
        plain.set_epoch(epoch)
        for (x, y), (xp, yp) in zip(loader, plain):
            if epoch < 2:
                assert y.dtype == torch.float32 and y.shape == (8, K)
                assert not torch.equal(x, xp)
            else:
                assert y.dtype == torch.int64 and torch.equal(y, yp) and torch.equal(x, xp)


def test_unmixed_batches_keep_images_and_get_smoothed_targets():
    cfg = MixConfig(mixup_alpha=1.0, prob=0.5, label_smoothing=0.2, num_classes=K)
    draws = [d for d, _ in zip(epoch_draws(cfg, SEED, 0), range(8))]
    assert {d.kind for d in draws} == {"none", "mixup"}
    images, labels = dataset()
    plain = TensorLoader(images, labels, 8, seed=SEED)
    for d, (x, t), (xp, yp) in zip(draws, mixing(cfg, 1, 0, data=(images, labels)), plain):
        if d.kind == "none":
            assert torch.equal(x, xp) and torch.equal(t, soft_targets(yp, K, 0.2))


def test_draws_depend_only_on_seed_and_epoch():
    def first(seed, epoch):
        return [d for d, _ in zip(epoch_draws(BOTH, seed, epoch), range(16))]

    assert first(3, 1) == first(3, 1)
    assert first(3, 1) != first(3, 2)
    assert first(3, 1) != first(4, 1)
    a, b = collect(mixing(BOTH, 1, 0, epoch=1)), collect(mixing(BOTH, 1, 0, epoch=1))
    assert all(torch.equal(x, xb) and torch.equal(t, tb) for (x, t), (xb, tb) in zip(a, b))


def test_odd_per_device_batch_is_a_config_error():
    images, labels = dataset()
    with pytest.raises(ConfigError, match="make the per-device batch even"):
        MixingLoader(TensorLoader(images, labels, 3), BOTH)
    MixingLoader(TensorLoader(images, labels, 3), MixConfig(num_classes=K))  # mixing off: fine


def test_config_validation_and_enabled():
    assert not MixConfig(num_classes=K).enabled
    assert not MixConfig(mixup_alpha=1.0, prob=0.0, num_classes=K).enabled
    assert BOTH.enabled and BOTH.active(100)
    assert not MixConfig(mixup_alpha=1.0, off_epoch=3, num_classes=K).active(3)
    with pytest.raises(ConfigError, match="prob"):
        MixConfig(mixup_alpha=1.0, prob=1.5, num_classes=K)
    with pytest.raises(ConfigError, match="num_classes"):
        MixConfig(mixup_alpha=1.0)


def test_loader_protocol_is_passed_through():
    loader = mixing(BOTH, 2, 1, seed=9)
    assert len(loader) == 8 and loader.batch_size == 4 and loader.num_samples == 32
    assert loader.train and loader.rank == 1 and loader.world_size == 2 and loader.seed == 9
    loader.set_epoch(4)
    assert loader.epoch == 4 and loader.loader.epoch == 4 and loader.position == 0
    it = iter(loader)
    next(it)
    next(it)
    assert loader.state_dict() == {"epoch": 4, "position": 2}


def test_apply_mix_keeps_pairs_inside_the_slice():
    """Each rank mixes its slice alone: that must equal the slice of the whole batch mixed, so
    no pair may reach across slices. Every image is a different constant, so a partner from
    another slice shows."""
    x = torch.arange(1, 9, dtype=torch.float32).view(8, 1, 1, 1).expand(8, 3, 8, 8).clone()
    y = torch.tensor([0, 1, 2, 3, 4, 0, 1, 2])
    draws = [d for d, _ in zip(epoch_draws(BOTH, 0, 0), range(10)) if d.kind != "none"]
    assert {d.kind for d in draws} == {"mixup", "cutmix"}
    for d in draws:
        whole, whole_targets = apply_mix(x, y, d, BOTH)
        halves = [apply_mix(x[s], y[s], d, BOTH) for s in (slice(0, 4), slice(4, 8))]
        assert torch.equal(torch.cat([h[0] for h in halves]), whole), d.kind
        assert torch.equal(torch.cat([h[1] for h in halves]), whole_targets), d.kind


# ---- the loss --------------------------------------------------------------------------------

def test_soft_target_cross_entropy_matches_cross_entropy():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, K, generator=g, dtype=torch.float64).to(torch.bfloat16)
    labels = torch.randint(0, K, (6,), generator=g)
    ref = F.cross_entropy(logits.float(), labels)
    torch.testing.assert_close(soft_target_cross_entropy(logits, soft_targets(labels, K)), ref)
    smooth = F.cross_entropy(logits.float(), labels, label_smoothing=0.1)
    torch.testing.assert_close(
        soft_target_cross_entropy(logits, soft_targets(labels, K, 0.1)), smooth)
    # The engine's loss for either kind of batch: smoothing is never applied twice.
    torch.testing.assert_close(classification_loss(logits, labels, 0.1), smooth)
    torch.testing.assert_close(
        classification_loss(logits, soft_targets(labels, K, 0.1), 0.1), smooth)
    assert soft_target_cross_entropy(logits, soft_targets(labels, K)).dtype == torch.float32


def test_mixed_loss_is_the_lambda_weighted_loss():
    # Mixup's loss, as in Zhang et al. 2018: lam CE(y_a) + (1 - lam) CE(y_b).
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(4, K, generator=g)
    labels = torch.tensor([0, 1, 2, 3])
    p = pair_partners(4)
    _, t = mixup(torch.zeros(4, 1, 1, 1), soft_targets(labels, K), 0.3, p)
    expected = 0.3 * F.cross_entropy(logits, labels) + 0.7 * F.cross_entropy(logits, labels[p])
    torch.testing.assert_close(soft_target_cross_entropy(logits, t), expected)
    assert not math.isnan(expected.item())


# ---- the last pipeline stage reads labels only -----------------------------------------------

@pytest.mark.parametrize("cfg", [None, BOTH], ids=["plain", "mixed"])
def test_labels_only_gives_the_targets_of_the_full_loader_without_images(cfg):
    """data/base.py LabelsOnly (the last pipeline stage's loader): the same labels or soft
    targets, batch for batch and from a resumed position, with (b, 0) stand-in images."""
    from vitscale.data.base import LabelsOnly, is_unread
    from vitscale.data.mix import labels_only
    images, labels = dataset()

    def loader(position=0, only=False):
        inner = TensorLoader(images, labels, 4, seed=SEED, rank=1, world_size=2)
        inner.set_epoch(2)
        inner.load_state_dict({"epoch": 2, "position": position})
        wrapped = MixingLoader(inner, cfg) if cfg is not None else inner
        return labels_only(wrapped, images.shape[-1]) if only else wrapped

    for position in (0, 3):
        full, only = collect(loader(position)), collect(loader(position, only=True))
        assert len(full) == len(only) == 8 - position
        for (x, t), (u, t_only) in zip(full, only):
            assert is_unread(u) and u.shape == (4, 0)
            assert torch.equal(t, t_only)
    reader = loader(only=True)
    assert isinstance(reader if cfg is None else reader.loader, LabelsOnly)
    assert len(reader) == 8 and reader.state_dict() == {"epoch": 2, "position": 0}
