"""AutoAugment and RandAugment on whole uint8 batches on the training device.

AutoAugment (Cubuk et al. 2019, "AutoAugment: Learning Augmentation Strategies from Data",
Appendix A) picks one of 25 learned sub-policies per image; each sub-policy is two
(operation, probability, magnitude bin of 10) steps. RandAugment (Cubuk et al. 2020,
"RandAugment: Practical automated data augmentation with a reduced search space", Sec. 3)
applies N operations drawn uniformly from 14, all at one magnitude M (of 31 bins here).
Both follow torchvision.transforms.v2's versions: the same op list, magnitude tables (float32
linspace bins), sign flip with probability 1/2 for the signed ops, nearest interpolation and
zero fill for the geometric ops, and the same draw probabilities, so that a run on the device
pipeline sees the same distribution of images as one on the DataLoader path.

How it is batched. The draws are one entry index per image and slot (-1: nothing), into a
small table of (op, signed magnitude) entries the policy can produce (<= 100 for AutoAugment,
<= 27 for RandAugment). A slot is applied op by op: the images of the batch that drew op o are
gathered, transformed together with their own entries, and written back. So a slot costs at
most 10 batched kernels whatever the batch size; the loop is over ops, never images. The
groups are found on the CPU draws, so the device is never synced.

    policy = build_policy(autoaugment="cifar10", height=32, width=32)  # or randaugment=(2, 9)
    entries = policy.draw(n, generator)                   # (n, slots) int64, on the CPU
    images = policy.apply(images_uint8, entries)          # (B, 3, H, W) uint8, any device

How an op is applied: by table lookup wherever torchvision's arithmetic depends on few inputs.
The five geometric ops (shears, translations, rotation) are fixed pixel permutations per entry
(nearest interpolation, zero fill): one uint8 gather through a per-entry source index, worked
out once by resampling an image of pixel numbers. Brightness and Solarize map each value
through a 256-entry table per entry; Contrast, AutoContrast and Equalize build a 256-entry
table per image or channel from its statistics. The tables hold torchvision's own float
arithmetic evaluated on every input, so they are exact by construction, and the per-pixel work
is a uint8 gather. Posterize and Invert are one integer op; Color and Sharpness blend with a
per-pixel operand (grey level, smoothed value) in float64 as below (a 65,536-entry table of
(value, operand) pairs was tried: its int64 keys cost more than the blend), Sharpness's
smoothing in float32 additions of exact integers instead of a convolution.

Equal to torchvision.transforms.v2.functional's ops image by image, pixel for pixel, on the
CPU (tests/test_policy.py, also on images holding every 8-bit value): the geometric grids are
built in the same float32 order, and the blends (Brightness, Color, Contrast, Sharpness) take
their multiply-add in float64, which is exact for 8-bit inputs and rounds once, as
torchvision's fused add(alpha=...) does; a second rounding would move grey pixels by one level,
since uint8 conversion truncates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import ConfigError

GEOMETRIC = ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")
# torchvision's RandAugment op list, in its order (the draw is uniform over it).
RANDAUGMENT_OPS = ("Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate",
                   "Brightness", "Color", "Contrast", "Sharpness", "Posterize", "Solarize",
                   "AutoContrast", "Equalize")
SIGNED = {"ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color",
          "Contrast", "Sharpness"}

# The learned sub-policies, "op probability bin" (bin of 10; '-' for ops without magnitude):
# Cubuk et al. 2019, Appendix A, Tables 8 (CIFAR-10), 9 (SVHN) and 10 (ImageNet), as
# torchvision.transforms.v2.AutoAugmentPolicy holds them.
AUTOAUGMENT_POLICIES = {
    "cifar10": """
    Invert 0.1 -, Contrast 0.2 6 | Rotate 0.7 2, TranslateX 0.3 9 | Sharpness 0.8 1, Sharpness 0.9 3
    ShearY 0.5 8, TranslateY 0.7 9 | AutoContrast 0.5 -, Equalize 0.9 - | ShearY 0.2 7, Posterize 0.3 7
    Color 0.4 3, Brightness 0.6 7 | Sharpness 0.3 9, Brightness 0.7 9 | Equalize 0.6 -, Equalize 0.5 -
    Contrast 0.6 7, Sharpness 0.6 5 | Color 0.7 7, TranslateX 0.5 8 | Equalize 0.3 -, AutoContrast 0.4 -
    TranslateY 0.4 3, Sharpness 0.2 6 | Brightness 0.9 6, Color 0.2 8 | Solarize 0.5 2, Invert 0.0 -
    Equalize 0.2 -, AutoContrast 0.6 - | Equalize 0.2 -, Equalize 0.6 - | Color 0.9 9, Equalize 0.6 -
    AutoContrast 0.8 -, Solarize 0.2 8 | Brightness 0.1 3, Color 0.7 0 | Solarize 0.4 5, AutoContrast 0.9 -
    TranslateY 0.9 9, TranslateY 0.7 9 | AutoContrast 0.9 -, Solarize 0.8 3 | Equalize 0.8 -, Invert 0.1 -
    TranslateY 0.7 9, AutoContrast 0.9 -""",
    "imagenet": """
    Posterize 0.4 8, Rotate 0.6 9 | Solarize 0.6 5, AutoContrast 0.6 - | Equalize 0.8 -, Equalize 0.6 -
    Posterize 0.6 7, Posterize 0.6 6 | Equalize 0.4 -, Solarize 0.2 4 | Equalize 0.4 -, Rotate 0.8 8
    Solarize 0.6 3, Equalize 0.6 - | Posterize 0.8 5, Equalize 1.0 - | Rotate 0.2 3, Solarize 0.6 8
    Equalize 0.6 -, Posterize 0.4 6 | Rotate 0.8 8, Color 0.4 0 | Rotate 0.4 9, Equalize 0.6 -
    Equalize 0.0 -, Equalize 0.8 - | Invert 0.6 -, Equalize 1.0 - | Color 0.6 4, Contrast 1.0 8
    Rotate 0.8 8, Color 1.0 2 | Color 0.8 8, Solarize 0.8 7 | Sharpness 0.4 7, Invert 0.6 -
    ShearX 0.6 5, Equalize 1.0 - | Color 0.4 0, Equalize 0.6 - | Equalize 0.4 -, Solarize 0.2 4
    Solarize 0.6 5, AutoContrast 0.6 - | Invert 0.6 -, Equalize 1.0 - | Color 0.6 4, Contrast 1.0 8
    Equalize 0.8 -, Equalize 0.6 -""",
    "svhn": """
    ShearX 0.9 4, Invert 0.2 - | ShearY 0.9 8, Invert 0.7 - | Equalize 0.6 -, Solarize 0.6 6
    Invert 0.9 -, Equalize 0.6 - | Equalize 0.6 -, Rotate 0.9 3 | ShearX 0.9 4, AutoContrast 0.8 -
    ShearY 0.9 8, Invert 0.4 - | ShearY 0.9 5, Solarize 0.2 6 | Invert 0.9 -, AutoContrast 0.8 -
    Equalize 0.6 -, Rotate 0.9 3 | ShearX 0.9 4, Solarize 0.3 3 | ShearY 0.8 8, Invert 0.7 -
    Equalize 0.9 -, TranslateY 0.6 6 | Invert 0.9 -, Equalize 0.6 - | Contrast 0.3 3, Rotate 0.8 4
    Invert 0.8 -, TranslateY 0.0 2 | ShearY 0.7 6, Solarize 0.4 8 | Invert 0.6 -, Rotate 0.8 4
    ShearY 0.3 7, TranslateX 0.9 3 | ShearX 0.1 6, Invert 0.6 - | Solarize 0.7 2, TranslateY 0.6 7
    ShearY 0.8 4, Invert 0.8 - | ShearX 0.7 9, TranslateY 0.8 3 | ShearY 0.8 5, AutoContrast 0.7 -
    ShearX 0.7 2, Invert 0.1 -""",
}


def parse_policy(text: str) -> list[tuple[tuple[str, float, int | None], ...]]:
    """[((op, probability, bin or None), (op, probability, bin or None)), ...]."""
    subs = []
    for sub in text.replace("\n", "|").split("|"):
        if sub.strip():
            steps = []
            for step in sub.split(","):
                op, prob, level = step.split()
                steps.append((op, float(prob), None if level == "-" else int(level)))
            subs.append(tuple(steps))
    return subs


def magnitude_bins(op: str, num_bins: int, height: int, width: int) -> list[float] | None:
    """The magnitudes of bins 0..num_bins-1 (torchvision's table: float32 linspace values;
    translations in pixels up to 150/331 of the side, as AutoAugment's 331 px images allow
    150 px; rotations in degrees; blends as factor - 1; Posterize in bits kept; Solarize as a
    threshold fraction); None for ops without a magnitude."""
    lin = lambda lo, hi: torch.linspace(lo, hi, num_bins).tolist()  # noqa: E731
    if op in ("ShearX", "ShearY"):
        return lin(0.0, 0.3)
    if op == "TranslateX":
        return lin(0.0, 150.0 / 331.0 * width)
    if op == "TranslateY":
        return lin(0.0, 150.0 / 331.0 * height)
    if op == "Rotate":
        return lin(0.0, 30.0)
    if op in ("Brightness", "Color", "Contrast", "Sharpness"):
        return lin(0.0, 0.9)
    if op == "Posterize":
        return (8 - (torch.arange(num_bins) / ((num_bins - 1) / 4))).round().int().tolist()
    if op == "Solarize":
        return lin(1.0, 0.0)
    return None


@dataclass(frozen=True)
class Entry:
    """One (op, magnitude) a policy can apply; the magnitude carries its sign."""
    op: str
    magnitude: float


class Policy:
    """A batched AutoAugment or RandAugment: `draw` the entries, `apply` them (module doc).

    Magnitudes depend on the image size (translations), so the tables are built for the
    (height, width) given; `apply` checks it.
    """

    def __init__(self, name: str, entries: list[Entry], height: int, width: int):
        self.name, self.entries, self.size = name, entries, (height, width)
        self.ops = sorted({e.op for e in entries if e.op != "Identity"},
                          key=lambda op: (op not in GEOMETRIC, op))
        self._device_tables: dict = {}

    @property
    def slots(self) -> int:
        raise NotImplementedError

    def draw(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """(n, slots) int64 entry indices (-1: no op), on the CPU."""
        raise NotImplementedError

    # ---- applying the draws -------------------------------------------------------------

    def apply(self, images: torch.Tensor, entries: torch.Tensor) -> torch.Tensor:
        """uint8 (B, C, H, W) images with entries (B, slots), slot after slot; returns a new
        contiguous (NCHW) uint8 batch."""
        if tuple(images.shape[-2:]) != self.size:
            raise ValueError(f"{self.name} was built for {self.size} images, got "
                             f"{tuple(images.shape[-2:])}")
        tables = self._tables(images.device)
        op_of = torch.tensor([self._op_id(e.op) for e in self.entries] + [-1])  # [-1]: none
        # One copy into the plain layout first: the ops flatten (C, H, W) into rows, and a
        # cropped or channels-last batch made every op stride through memory (2-4x slower).
        out = torch.empty_like(images, memory_format=torch.contiguous_format).copy_(images)
        for slot in range(entries.shape[1]):
            chosen = entries[:, slot]
            ops = op_of[chosen]                            # -1 (index -1) for "no op"
            geometric = torch.zeros(len(ops), dtype=torch.bool)
            for op in self.ops:
                if op in GEOMETRIC:
                    geometric |= ops == self._op_id(op)
                    continue
                self._apply_group(out, ops == self._op_id(op), chosen, op, tables)
            self._apply_group(out, geometric, chosen, "affine", tables)
        return out

    def _apply_group(self, out, mask, chosen, op, tables) -> None:
        rows = torch.nonzero(mask).flatten()
        if len(rows) == 0:
            return
        which = chosen[rows].to(out.device, non_blocking=True)
        rows = rows.to(out.device, non_blocking=True)
        out[rows] = OPS[op](out[rows], which, tables)

    def _op_id(self, op: str) -> int:
        return RANDAUGMENT_OPS.index(op) if op in RANDAUGMENT_OPS else len(RANDAUGMENT_OPS)

    def _tables(self, device: torch.device) -> dict:
        """Per-entry parameters on `device`, built once on the CPU (so every device resamples
        with the CPU's, i.e. torchvision's, rounding): see _build_tables."""
        if device not in self._device_tables:
            cpu = self._device_tables.get(torch.device("cpu")) or _build_tables(
                self.entries, *self.size)
            self._device_tables[device] = {k: v.to(device) for k, v in cpu.items()}
        return self._device_tables[device]


class AutoAugment(Policy):
    """Per image: a sub-policy uniformly of 25; each of its two steps applies with its
    probability, at its magnitude bin of 10, negated with probability 1/2 if signed."""

    def __init__(self, policy: str, height: int, width: int):
        subs = parse_policy(AUTOAUGMENT_POLICIES[policy])
        entries, positive, negative, prob = [], [], [], []
        for sub in subs:
            for op, p, level in sub:
                bins = magnitude_bins(op, 10, height, width)
                m = 0.0 if bins is None else float(bins[level])
                positive.append(len(entries))
                entries.append(Entry(op, m))
                if op in SIGNED and bins is not None:
                    entries.append(Entry(op, -m))
                negative.append(len(entries) - 1)
                prob.append(p)
        super().__init__(f"AutoAugment({policy})", entries, height, width)
        self.positive = torch.tensor(positive).view(len(subs), 2)
        self.negative = torch.tensor(negative).view(len(subs), 2)
        self.prob = torch.tensor(prob, dtype=torch.float64).view(len(subs), 2)

    @property
    def slots(self) -> int:
        return 2

    def draw(self, n: int, generator: torch.Generator) -> torch.Tensor:
        sub = torch.randint(0, len(self.prob), (n,), generator=generator)
        apply = torch.rand(n, 2, generator=generator, dtype=torch.float64)
        sign = torch.rand(n, 2, generator=generator, dtype=torch.float64)
        entry = torch.where(sign <= 0.5, self.negative[sub], self.positive[sub])
        return torch.where(apply <= self.prob[sub], entry, -1)


class RandAugment(Policy):
    """Per image: num_ops ops, each uniformly of 14 (Identity included), at bin `magnitude`
    of `num_bins`, negated with probability 1/2 if signed."""

    def __init__(self, num_ops: int, magnitude: int, height: int, width: int,
                 num_bins: int = 31):
        entries, positive, negative = [], [], []
        for op in RANDAUGMENT_OPS:
            bins = magnitude_bins(op, num_bins, height, width)
            m = 0.0 if bins is None else float(bins[magnitude])
            positive.append(len(entries))
            entries.append(Entry(op, m))
            if op in SIGNED:
                entries.append(Entry(op, -m))
            negative.append(len(entries) - 1)
        super().__init__(f"RandAugment({num_ops}, {magnitude})", entries, height, width)
        self.num_ops = num_ops
        self.positive, self.negative = torch.tensor(positive), torch.tensor(negative)

    @property
    def slots(self) -> int:
        return self.num_ops

    def draw(self, n: int, generator: torch.Generator) -> torch.Tensor:
        op = torch.randint(0, len(RANDAUGMENT_OPS), (n, self.num_ops), generator=generator)
        sign = torch.rand(n, self.num_ops, generator=generator, dtype=torch.float64)
        return torch.where(sign <= 0.5, self.negative[op], self.positive[op])


def build_policy(*, autoaugment: str | None = None, randaugment: tuple[int, int] | None = None,
                 height: int, width: int) -> Policy | None:
    if autoaugment is not None and randaugment is not None:
        raise ConfigError("both RANDAUGMENT and AUTOAUGMENT are set: keep one")
    if autoaugment is not None:
        return AutoAugment(autoaugment, height, width)
    if randaugment is not None:
        return RandAugment(int(randaugment[0]), int(randaugment[1]), height, width)
    return None


# ---- geometry ---------------------------------------------------------------------------------

def _inverse_affine_of(op: str, m: float, height: int, width: int) -> list[float]:
    """The inverse affine matrix (output pixel -> input pixel, centred coordinates) of a
    geometric op, with torchvision's conventions: shears about the top-left corner by
    atan(m) (the angle its affine() takes, in degrees), translations by int(m) pixels,
    rotations about the centre by m degrees counter-clockwise. Identity for other ops."""
    if op in ("ShearX", "ShearY"):
        angle = math.degrees(math.atan(m))
        shear = (angle, 0.0) if op == "ShearX" else (0.0, angle)
        return inverse_affine((-width * 0.5, -height * 0.5), 0.0, (0.0, 0.0), shear)
    if op in ("TranslateX", "TranslateY"):
        move = (float(int(m)), 0.0) if op == "TranslateX" else (0.0, float(int(m)))
        return inverse_affine((0.0, 0.0), 0.0, move, (0.0, 0.0))
    if op == "Rotate":
        # rotate() turns the image by +angle, i.e. maps with rotation -angle (mod 360).
        return inverse_affine((0.0, 0.0), -(m % 360), (0.0, 0.0), (0.0, 0.0))
    return [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]


def inverse_affine(center, angle, translate, shear) -> list[float]:
    """M^-1 for M = T C R(angle) Sh_y(sy) Sh_x(sx) C^-1 (T: translate, C: centre), the
    decomposition torchvision's and PIL's affine use; angles in degrees, unit scale. The
    arithmetic is in this order so that float32 grids come out identical."""
    rot, sx, sy = math.radians(angle), math.radians(shear[0]), math.radians(shear[1])
    (cx, cy), (tx, ty) = center, translate
    cos_sy, tan_sx = math.cos(sy), math.tan(sx)
    a = math.cos(rot - sy) / cos_sy
    b = -(a * tan_sx + math.sin(rot))
    c = math.sin(rot - sy) / cos_sy
    d = math.cos(rot) - c * tan_sx
    inv = [d, -b, 0.0, -c, a, 0.0]          # det [[a, b], [c, d]] = 1
    inv[2] += cx - inv[0] * (cx + tx) - inv[1] * (cy + ty)
    inv[5] += cy - inv[3] * (cx + tx) - inv[4] * (cy + ty)
    return inv


# ---- the tables: each op's exact arithmetic, tabulated once per entry ----------------------------
#
# The geometric ops are fixed pixel permutations; Brightness and Solarize are functions of a
# pixel's value; Contrast, AutoContrast and Equalize are functions of a pixel's value and of its
# image's (or channel's) statistics. Evaluating torchvision's float arithmetic once over all 256
# values (or pixel numbers) and looking the answers up per pixel is exact by construction, and a
# uint8 gather costs a fraction of the float passes (and of the float grid_sample) it replaces
# (benchmarks/README.md, "Device pipeline with AutoAugment / RandAugment").

def _build_tables(entries: list[Entry], height: int, width: int) -> dict:
    """On the CPU, for entries E:
    index (G, H W) int64, for the G geometric entries: 1 + the source pixel of each output
        pixel, 0 where it samples outside (zero fill); index_row (E,): entry -> row;
    lut (E, 256) uint8: value -> value of Brightness and Solarize (else identity);
    mask (E,) uint8: the bits Posterize keeps (255 for other entries);
    factor (E,) float32, other (E,) float64: the blend weights of Color, Contrast and
        Sharpness (torchvision's: the image's factor, and 1 - factor rounded to float32 from
        float64)."""
    signed = [1.0 + e.magnitude if e.op in SIGNED else 1.0 for e in entries]
    factor = torch.tensor(signed, dtype=torch.float32)
    other = (1.0 - torch.tensor(signed, dtype=torch.float64)).float().double()
    values = torch.arange(256, dtype=torch.uint8)
    # Each op's rows at once (one pass per op, not per entry: ~50x less start-up time).
    lut = values.repeat(len(entries), 1)
    for op in ("Brightness", "Solarize"):
        if rows := [k for k, e in enumerate(entries) if e.op == op]:
            magnitude = torch.tensor([entries[k].magnitude for k in rows])[:, None]
            lut[rows] = _value_map(op, values, factor[rows, None], other[rows, None], magnitude)
    geometric = [k for k, e in enumerate(entries) if e.op in GEOMETRIC]
    theta = torch.tensor([_inverse_affine_of(entries[k].op, entries[k].magnitude, height, width)
                          for k in geometric], dtype=torch.float32).view(-1, 2, 3)
    index = _source_index(theta, height, width) if geometric else torch.zeros(0, height * width)
    bits = [int(e.magnitude) if e.op == "Posterize" else 8 for e in entries]
    mask = torch.tensor([((1 << b) - 1) << (8 - b) for b in bits], dtype=torch.uint8)
    return dict(index=index.long(), index_row=_rows(geometric, entries), lut=lut, mask=mask,
                factor=factor, other=other)


def _rows(subset: list[int], entries: list) -> torch.Tensor:
    """(E,) int64: entry subset[r] -> r, other entries -> 0 (never looked up)."""
    rows = torch.zeros(len(entries), dtype=torch.long)
    rows[subset] = torch.arange(len(subset))
    return rows


def _source_index(theta: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(E, H W) int64, 1 + the pixel each output pixel copies, 0 outside: nearest-neighbour
    resampling through each inverse matrix, run once on an image of pixel numbers.

    The grid is built as torchvision's _affine_grid: pixel centres in centred coordinates, times
    theta^T scaled to [-1, 1]; grid_sample(align_corners=False) undoes the scaling. Nearest
    sampling copies one value or the zero fill, so the numbers 1..H W (exact in float32) come out
    as the sources the image's own resampling would read."""
    k, h, w = len(theta), height, width
    xs = torch.linspace((1.0 - w) * 0.5, (w - 1.0) * 0.5, w)
    ys = torch.linspace((1.0 - h) * 0.5, (h - 1.0) * 0.5, h)
    base = torch.empty(1, h, w, 3)
    base[..., 0], base[..., 1], base[..., 2] = xs, ys[:, None], 1.0
    scale = torch.tensor([0.5 * w, 0.5 * h])
    grid = base.view(1, h * w, 3).expand(k, -1, -1).bmm(theta.transpose(1, 2) / scale)
    numbers = torch.arange(1, h * w + 1, dtype=torch.float32).view(1, 1, h, w).expand(k, 1, h, w)
    out = F.grid_sample(numbers, grid.view(k, h, w, 2), mode="nearest", padding_mode="zeros",
                        align_corners=False)
    return out.round_().long().view(k, h * w)


def _blend_exact(x: torch.Tensor, other: torch.Tensor, factor, weight) -> torch.Tensor:
    """factor x + (1 - factor) other, clamped, truncated to uint8 (PIL's ImageEnhance).

    torchvision computes fl32(fl32(x f) + (1 - f) other) with one rounding for the
    multiply-add (a fused add(alpha=...)). Truncation to uint8 turns any second rounding into
    a grey level wherever the exact result is an integer (x == other: every grey pixel), so
    the sum is taken in float64, where it is exact for 8-bit inputs, and rounded once."""
    scaled = (x.float() * factor).double()
    return scaled.add_(other.double() * weight).float().clamp_(0, 255).to(torch.uint8)


def _value_map(op: str, v: torch.Tensor, factor, weight, magnitude) -> torch.Tensor:
    """A one-operand op on the values v (uint8), one row per entry (parameters (k, 1))."""
    if op == "Brightness":                                    # blend with black
        return _blend_exact(v, torch.zeros(()), factor, weight)
    # Solarize: invert at or above 255 m (compared in float32, as uint8 >= a Python float).
    threshold = (255.0 * magnitude.double()).float()
    return torch.where(v.float() >= threshold, 255 - v, v)


# ---- the ops, each on a group of images with per-image parameters ------------------------------

def _lookup(x: torch.Tensor, lut: torch.Tensor) -> torch.Tensor:
    """lut[image, channel, x] for uint8 x (k, C, H, W); lut (k, 256) per image or (k, C, 256)
    per channel."""
    k, c, h, w = x.shape
    lut = lut.view(k, 1, 256).expand(k, c, 256) if lut.dim() == 2 else lut
    return lut.gather(2, x.reshape(k, c, h * w).long()).view(k, c, h, w)


def _affine(x, which, tables):
    """Nearest-neighbour shears, translations and rotations with zero fill: each output pixel
    copies the source pixel its entry's index table names (column 0: the fill)."""
    k, c, h, w = x.shape
    source = F.pad(x.reshape(k, c, h * w), (1, 0))                  # (k, C, 1 + H W)
    index = tables["index"][tables["index_row"][which]]
    index = index.view(k, 1, h * w).expand(k, c, h * w)
    return source.gather(2, index).view(k, c, h, w)


def _by_value(x, which, tables):
    return _lookup(x, tables["lut"][which])


def _posterize(x, which, tables):
    """Keep the top bits: one AND, cheaper than a lookup."""
    return x & tables["mask"][which].view(-1, 1, 1, 1)


def _invert(x, which, tables):
    return 255 - x


def _grey(x: torch.Tensor) -> torch.Tensor:
    """ITU-R 601-2 luma, floored for uint8 input: (k, 1, H, W) float32."""
    r, g, b = x.unbind(dim=-3)
    return r.mul(0.2989).add_(g, alpha=0.587).add_(b, alpha=0.114).floor_().unsqueeze(-3)


def _color(x, which, tables):
    return _blend_exact(x, _grey(x), tables["factor"][which].view(-1, 1, 1, 1),
                        tables["other"][which].view(-1, 1, 1, 1))


def _contrast(x, which, tables):
    """Blend with the mean grey, one float per image: its 256 possible results per image."""
    mean = _grey(x).mean(dim=(-3, -2, -1))                                     # (k,)
    values = torch.arange(256, dtype=torch.float32, device=x.device)
    factor = tables["factor"][which].view(-1, 1)
    lut = _blend_exact(values.expand(len(x), 256), mean.view(-1, 1), factor,
                       tables["other"][which].view(-1, 1))
    return _lookup(x, lut)


def _sharpness(x, which, tables):
    """Blend with a 3x3 smoothing ([[1,1,1],[1,5,1],[1,1,1]] / 13, PIL's SMOOTH filter) of the
    interior; the one-pixel border keeps its values.

    The weighted sum S <= 13 * 255 is an integer, exact in float32; round(S / 13) is the integer
    torchvision's float32 convolution rounds to: S / 13 is never closer than 1/26 to a
    half-integer (13 is odd), and either float32 error is below 1e-3."""
    y = x.float()
    rows = y[..., :-2, :] + y[..., 1:-1, :] + y[..., 2:, :]
    total = rows[..., :-2] + rows[..., 1:-1] + rows[..., 2:] + 4 * y[..., 1:-1, 1:-1]
    smooth = total.mul_(1.0 / 13.0).round_()
    inner = y[..., 1:-1, 1:-1]
    # inner + (1 - f) (smooth - inner), one rounding as in _blend_exact.
    weight = tables["other"][which].view(-1, 1, 1, 1)
    inner.copy_(inner.double().add_(smooth.sub_(inner).double() * weight))
    return y.clamp_(0, 255).to(torch.uint8)


def _autocontrast(x, which, tables):
    """Each channel stretched to [0, 255] (a flat channel is left as it is): torchvision's
    float arithmetic on the 256 values, per (image, channel)."""
    k, c = x.shape[:2]
    flat = x.view(k, c, -1)
    low, high = flat.amin(dim=2, keepdim=True).float(), flat.amax(dim=2, keepdim=True).float()
    still = high == low
    step = (high - low).mul_(1.0 / 255)
    low, step = low.masked_fill(still, 0.0), step.masked_fill(still, 1.0)
    values = torch.arange(256, dtype=torch.float32, device=x.device)
    lut = values.sub(low).div_(step).clamp_(0, 255).to(torch.uint8)           # (k, C, 256)
    return _lookup(x, lut)


def _equalize(x, which, tables):
    """Histogram equalisation per channel with PIL's lookup table (ImageOps.equalize):
    step = (pixels - count of the highest value present) // 255,
    lut[v] = (cdf[v - 1] + step // 2) // step, lut[0] = 0; identity where step is 0.
    One scatter_add for the whole group's (image, channel) histograms and one gather through
    their tables (a bincount and a take over offset indices cost twice as much on a CPU)."""
    k, c, h, w = x.shape
    flat = x.reshape(k * c, h * w).long()
    hist = torch.zeros(k * c, 256, dtype=torch.int64, device=x.device)
    hist.scatter_add_(1, flat, torch.ones((), dtype=torch.int64, device=x.device).expand_as(flat))
    cdf = hist.cumsum(1)
    last = 255 - (hist.flip(1) > 0).int().argmax(1)                 # highest value present
    step = (h * w - hist.gather(1, last[:, None])) // 255            # (k c, 1)
    lut = (cdf[:, :-1] + step // 2).div_(step.clamp(min=1), rounding_mode="floor").clamp_(0, 255)
    lut = torch.cat([torch.zeros_like(lut[:, :1]), lut], 1)
    lut = torch.where(step > 0, lut, torch.arange(256, device=x.device)).to(torch.uint8)
    return lut.gather(1, flat).view(k, c, h, w)


OPS = {"affine": _affine, "Brightness": _by_value, "Color": _color, "Contrast": _contrast,
       "Sharpness": _sharpness, "Posterize": _posterize, "Solarize": _by_value,
       "AutoContrast": _autocontrast, "Equalize": _equalize, "Invert": _invert}
