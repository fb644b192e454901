"""Mixup and CutMix on the training device, in batches, the same on 1, 2 or 4 ranks.

Mixup (Zhang et al. 2018, "mixup: Beyond Empirical Risk Minimization") trains on convex
combinations of two images and of their labels: x = lam x_a + (1 - lam) x_b with
lam ~ Beta(alpha, alpha). CutMix (Yun et al. 2019, "CutMix: Regularization Strategy to Train
Strong Classifiers with Localizable Features", Sec. 3.1) pastes a box of x_b into x_a instead;
the box has side ratio sqrt(1 - lam) and a uniformly drawn centre, is clipped to the image, and
the label weight is corrected to the area actually kept: lam = 1 - box area / image area.

Reproducible and independent of the number of data-parallel ranks:
  * Partners. Sample 2i of the global batch is mixed with sample 2i+1 and vice versa. A rank
    holds a contiguous slice of b samples (sharding.py), so with b even no pair crosses ranks
    and no communication is needed. The global batch is already a random permutation of the
    dataset, so neighbours are random partners (timm instead pairs i with B-1-i, which would
    cross ranks).
  * Draws. One decision (no mix / Mixup / CutMix), one lambda and one CutMix centre per
    global batch, from the per-epoch generator sharding.epoch_generator(seed, epoch,
    MIX_STREAM), drawn identically on every rank. Resuming at batch k replays the draws of
    batches 0..k-1 and discards them, so the rest of the epoch is exactly the uninterrupted one.

What MixingLoader yields (per rank, on the training device):
  * while mixing is configured (MixConfig.enabled) and epoch < off_epoch:
        (images (b, 3, S, S) float32, soft targets (b, K) float32)
    for every batch, mixed or not: label smoothing is already in the targets, so the loss is
    soft_target_cross_entropy (classification_loss picks it from the targets' dtype) and must
    not smooth again.
  * from off_epoch on, or when mixing is not configured: the wrapped loader's batches as they
    are, (images, int64 labels (b,)); the engine smooths int labels itself
    (F.cross_entropy(label_smoothing=...)). Stopping mixing for the last epochs follows
    DeiT's and timm's `mixup_off_epoch`.

Try it:
    .venv/bin/python -m pytest -q tests/test_mix.py
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError
from . import sharding
from .base import LabelsOnly, LoaderWrapper, ShardedLoader, is_unread

# Stream of sharding.epoch_generator reserved for Mixup/CutMix (0: order, 1: crop and flip).
MIX_STREAM = 2

ODD_BATCH = ("Mixup/CutMix pair neighbouring images: make the per-device batch even "
             "(got {b})")


@dataclass(frozen=True)
class MixConfig:
    mixup_alpha: float = 0.0          # Beta(alpha, alpha) for Mixup; 0 turns Mixup off
    cutmix_alpha: float = 0.0         # Beta(alpha, alpha) for CutMix; 0 turns CutMix off
    prob: float = 1.0                 # probability that a global batch is mixed at all
    switch_prob: float = 0.5          # P(CutMix) when both alphas > 0, else Mixup
    label_smoothing: float = 0.0      # folded into the soft targets (Szegedy et al. 2016)
    off_epoch: int | None = None      # 0-based epoch from which batches are not mixed
    num_classes: int = 0

    def __post_init__(self):
        if self.mixup_alpha < 0 or self.cutmix_alpha < 0:
            raise ConfigError(f"Mixup/CutMix alphas must be >= 0 (got mixup_alpha="
                              f"{self.mixup_alpha}, cutmix_alpha={self.cutmix_alpha})")
        for name in ("prob", "switch_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"Mixup/CutMix {name} must be in [0, 1] "
                                  f"(got {getattr(self, name)})")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing must be in [0, 1) (got {self.label_smoothing})")
        if self.enabled and self.num_classes < 2:
            raise ConfigError(f"Mixup/CutMix needs num_classes >= 2 (got {self.num_classes})")

    @property
    def enabled(self) -> bool:
        """Whether any batch can be mixed at all."""
        return (self.mixup_alpha > 0 or self.cutmix_alpha > 0) and self.prob > 0

    def active(self, epoch: int) -> bool:
        """Whether epoch `epoch` (0-based) is mixed, i.e. yields soft targets."""
        return self.enabled and (self.off_epoch is None or epoch < self.off_epoch)


# ---- one batch -------------------------------------------------------------------------------

class Box(NamedTuple):
    """A CutMix box in pixels, half-open: rows [top, bottom), columns [left, right)."""
    top: int
    left: int
    bottom: int
    right: int

    @property
    def area(self) -> int:
        return (self.bottom - self.top) * (self.right - self.left)


def soft_targets(labels: torch.Tensor, num_classes: int, smoothing: float = 0.0) -> torch.Tensor:
    """int64 (b,) -> float32 (b, K): (1 - s) one_hot + s / K, the targets that
    F.cross_entropy(label_smoothing=s) uses (Szegedy et al. 2016, Sec. 7). Rows sum to 1."""
    off = smoothing / num_classes
    t = torch.full((len(labels), num_classes), off, dtype=torch.float32, device=labels.device)
    return t.scatter_(1, labels.view(-1, 1).long(), 1.0 - smoothing + off)


def pair_partners(n: int, device=None) -> torch.Tensor:
    """(n,) partner of each sample: 0<->1, 2<->3, ...; with n odd the last keeps itself.

    Local and global pairs agree when the rank's slice starts at an even global index, which
    holds for every rank when the per-rank batch is even.
    """
    i = torch.arange(n, device=device)
    return torch.minimum(i ^ 1, torch.full_like(i, n - 1))


def mixup(x: torch.Tensor, targets: torch.Tensor, lam: float,
          partner: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup (Zhang et al. 2018, Eq. 1): lam * own + (1 - lam) * partner's, images and targets.

    x (b, C, H, W) float, targets (b, K) float, partner (b,) indices into the batch.
    """
    partner = partner.to(x.device)
    mixed = x * lam + x[partner] * (1.0 - lam)
    return mixed, mix_targets(targets, lam, partner)


def cutmix(x: torch.Tensor, targets: torch.Tensor, box: Box,
           partner: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """CutMix (Yun et al. 2019, Eq. 1): the partner's pixels inside `box`, own pixels outside;
    targets weighted by the area kept, lam = 1 - |box| / (H W) (box_lambda)."""
    partner = partner.to(x.device)
    lam = box_lambda(box, x.shape[-2], x.shape[-1])
    mixed = x.clone()
    rows, cols = slice(box.top, box.bottom), slice(box.left, box.right)
    mixed[:, :, rows, cols] = x[partner][:, :, rows, cols]
    return mixed, mix_targets(targets, lam, partner)


def mix_targets(targets: torch.Tensor, lam: float, partner: torch.Tensor) -> torch.Tensor:
    return targets * lam + targets[partner.to(targets.device)] * (1.0 - lam)


def box_lambda(box: Box, height: int, width: int) -> float:
    """The area-corrected CutMix lambda: the fraction of the image that stays the sample's own."""
    return 1.0 - box.area / (height * width)


def cutmix_box(lam: float, center: tuple[float, float], height: int, width: int) -> Box:
    """The CutMix box for Beta-drawn `lam` and a centre given as fractions in [0, 1).

    Yun et al. 2019, Sec. 3.1: r_x ~ U(0, W), r_y ~ U(0, H), r_w = W sqrt(1 - lam),
    r_h = H sqrt(1 - lam), clipped to the image (so the kept area can exceed lam: the loss
    weight is box_lambda of the clipped box, not lam). The centre is drawn as a fraction so
    that the draw does not need the image size (skipped batches are never read).
    """
    ratio = math.sqrt(1.0 - lam)
    cut_h, cut_w = int(height * ratio), int(width * ratio)
    cy, cx = int(center[0] * height), int(center[1] * width)
    top, left = cy - cut_h // 2, cx - cut_w // 2
    return Box(top=min(max(top, 0), height), left=min(max(left, 0), width),
               bottom=min(max(top + cut_h, 0), height), right=min(max(left + cut_w, 0), width))


# ---- draws, one per global batch -------------------------------------------------------------

@dataclass(frozen=True)
class MixDraw:
    """What happens to one global batch: kind 'none' | 'mixup' | 'cutmix'."""
    kind: str
    lam: float = 1.0
    center: tuple[float, float] = (0.5, 0.5)   # CutMix centre (row, column) as fractions


def draw_beta(alpha: float, generator: torch.Generator) -> float:
    """lam ~ Beta(alpha, alpha), by numpy's sampler (exact also for small alphas such as 0.1)
    seeded from one draw of `generator`: every rank, and a resumed run, draws the same lam."""
    seed = int(torch.randint(0, 2**62, (), generator=generator))
    return float(np.random.default_rng(seed).beta(alpha, alpha))


def draw_mix(cfg: MixConfig, generator: torch.Generator) -> MixDraw:
    """The draw for one global batch. Every rank calls this once per batch, skipped ones too."""
    apply, switch, cy, cx = torch.rand(4, generator=generator, dtype=torch.float64).tolist()
    if apply >= cfg.prob:
        return MixDraw("none")
    if cfg.mixup_alpha > 0 and cfg.cutmix_alpha > 0:
        kind = "cutmix" if switch < cfg.switch_prob else "mixup"
    else:
        kind = "mixup" if cfg.mixup_alpha > 0 else "cutmix"
    alpha = cfg.cutmix_alpha if kind == "cutmix" else cfg.mixup_alpha
    return MixDraw(kind, draw_beta(alpha, generator), (cy, cx))


def epoch_draws(cfg: MixConfig, seed: int, epoch: int) -> Iterator[MixDraw]:
    """The draws of epoch `epoch`, global batch after global batch (endless)."""
    generator = sharding.epoch_generator(seed, epoch, MIX_STREAM)
    while True:
        yield draw_mix(cfg, generator)


def apply_mix(images: torch.Tensor, labels: torch.Tensor, draw: MixDraw,
              cfg: MixConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """This rank's slice of a global batch, mixed as `draw` says; soft targets (b, K) float32."""
    targets = soft_targets(labels, cfg.num_classes, cfg.label_smoothing)
    partner = pair_partners(len(labels), images.device)
    if draw.kind == "mixup":
        return mixup(images, targets, draw.lam, partner)
    if draw.kind == "cutmix":
        box = cutmix_box(draw.lam, draw.center, images.shape[-2], images.shape[-1])
        return cutmix(images, targets, box, partner)
    return images, targets


def mix_labels(labels: torch.Tensor, draw: MixDraw, cfg: MixConfig, height: int,
               width: int) -> torch.Tensor:
    """The soft targets apply_mix gives a batch of `height` x `width` images, without the
    images (the last pipeline stage reads labels only: base.LabelsOnly)."""
    targets = soft_targets(labels, cfg.num_classes, cfg.label_smoothing)
    partner = pair_partners(len(labels), labels.device)
    if draw.kind == "mixup":
        return mix_targets(targets, draw.lam, partner)
    if draw.kind == "cutmix":
        box = cutmix_box(draw.lam, draw.center, height, width)
        return mix_targets(targets, box_lambda(box, height, width), partner)
    return targets


# ---- the loader ------------------------------------------------------------------------------

class MixingLoader(LoaderWrapper):
    """Wraps a training loader (base.py protocol) and mixes its batches; see the module doc.

    The wrapped loader owns epoch, position and order; this class only adds the draws, which
    it replays from the wrapped loader's position when an epoch is resumed mid-way.
    """

    def __init__(self, loader, cfg: MixConfig):
        if cfg.enabled and loader.batch_size % 2:
            raise ConfigError(ODD_BATCH.format(b=loader.batch_size))
        self.loader, self.cfg = loader, cfg

    def __iter__(self):
        epoch = self.loader.epoch
        if not self.cfg.active(epoch):
            yield from self.loader
            return
        draws = epoch_draws(self.cfg, self.loader.seed, epoch)
        # Read before iterating: the wrapped loader resets its position as it goes.
        for _ in range(getattr(self.loader, "position", 0)):
            next(draws)
        for (images, labels), draw in zip(self.loader, draws):
            if is_unread(images):
                side = self.loader.image_size
                yield images, mix_labels(labels, draw, self.cfg, side, side)
            else:
                yield apply_mix(images, labels, draw, self.cfg)

    # The rest of the loader protocol passes through (base.LoaderWrapper).
    @property
    def batch_size(self) -> int:
        return self.loader.batch_size

    @property
    def num_samples(self) -> int:
        return self.loader.num_samples

    @property
    def train(self) -> bool:
        return self.loader.train


# ---- the loss --------------------------------------------------------------------------------

def soft_target_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of -sum_k targets_k log softmax(logits)_k, computed in float32
    (F.cross_entropy takes class probabilities as targets)."""
    return F.cross_entropy(logits.float(), targets.float())


def classification_loss(logits: torch.Tensor, targets: torch.Tensor,
                        label_smoothing: float = 0.0) -> torch.Tensor:
    """The training loss for either kind of batch MixingLoader yields: float (b, K) soft
    targets already hold their smoothing; int64 (b,) labels are smoothed here."""
    if targets.is_floating_point():
        return soft_target_cross_entropy(logits, targets)
    return F.cross_entropy(logits.float(), targets, label_smoothing=label_smoothing)


# ---- the last pipeline stage's loader ---------------------------------------------------------

def labels_only(loader, image_size: int):
    """`loader` reading labels only (LabelsOnly), through a MixingLoader if it wraps one; a
    loader without a label array is returned as is."""
    if isinstance(loader, MixingLoader):
        inner = labels_only(loader.loader, image_size)
        return loader if inner is loader.loader else MixingLoader(inner, loader.cfg)
    labels = getattr(loader, "labels", None)
    if labels is None:          # DALI keeps them with its source
        labels = getattr(getattr(loader, "source", None), "labels", None)
    if isinstance(loader, ShardedLoader) and labels is not None:
        return LabelsOnly(loader, labels, image_size)
    return loader
