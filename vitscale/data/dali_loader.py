"""The DALI pipeline: vitscale owns the order and the random numbers, DALI decodes and augments.

    pip install 'vitscale[dali]'          # or nvidia-dali-cuda120
    data = dict(pipeline='dali')          # in the config

Each batch of this rank (sharding.py, the same order as every pipeline) is read as encoded
bytes from the source (`source.read(i)`: TFRecords, tar, folders) and fed to one DALI pipeline,
built once per loader. DALI decodes it, on the GPU ("mixed" nvJPEG) when training there, else on
the CPU, always to RGB (grayscale and CMYK JPEGs included), and then:

    train: random resized crop, decoded as a region of interest (only the crop's pixels are
           decoded) -> resize to img_size x img_size -> random horizontal flip
    eval:  resize the shorter side to round(img_size / eval_crop_pct) -> centre crop img_size,
           the same window as torchvision's Resize + CenterCrop (the other pipelines' eval)
    both:  normalise with mean/std and transpose to float32 (B, 3, img_size, img_size)

Random numbers. DALI's random operators are seeded once per pipeline and cannot be reseeded
per epoch, so the crop and flip parameters are drawn here, as the device loader draws them:
from (seed, epoch) for the whole global batch on every rank, also for skipped batches. The
augmentation of a sample is then the same on 1 or 4 ranks and after a resume in mid-epoch, and
the pipeline never has to be rebuilt. Per image the draws are an area fraction ~ U(rrc_scale),
an aspect ratio with log ~ U(log rrc_ratio), a position and a flip; DALI turns them into a
window with the image's own width and height (peek_image_shape). A window too wide or too tall
for its image is scaled down keeping its aspect ratio (torchvision instead draws again, up to
10 times): for square images this caps the area near 3/4 when the aspect ratio is 4/3.

Overlap: while DALI works on batch i, Python reads the bytes of batch i + 1; while the model
trains on batch i, DALI works on batch i + 1.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import torch

from ..errors import ConfigError, DataError
from . import sharding
from .base import ShardedLoader
from .decode import BadImage, open_rgb

MISSING_DALI = ("data.pipeline='dali' needs NVIDIA DALI: pip install 'vitscale[dali]' (or "
                "nvidia-dali-cuda120), or use data.pipeline='dataloader'")


def import_dali() -> SimpleNamespace:
    """DALI's modules, or a ConfigError that says how to install it."""
    try:
        import nvidia.dali.fn as fn
        import nvidia.dali.math as dmath
        import nvidia.dali.types as types
        from nvidia.dali import Pipeline
    except ImportError:
        raise ConfigError(MISSING_DALI) from None
    return SimpleNamespace(Pipeline=Pipeline, fn=fn, math=dmath, types=types)


class DaliLoader(ShardedLoader):
    """Batches of `source` (len, labels, read(i) -> encoded image) decoded and augmented by DALI.

    `mean`/`std` are in [0, 1] units, as for the other loaders. `dali_device`: 'gpu' decodes
    and augments on `device` (a CUDA device), 'cpu' on the CPU (the batch is then copied to
    `device`), 'auto' picks 'gpu' for a CUDA `device`.
    """

    def __init__(self, source, batch_size: int, *, device: torch.device, mean, std, train: bool,
                 img_size: int, rrc_scale: tuple[float, float] = (0.08, 1.0),
                 rrc_ratio: tuple[float, float] = (3 / 4, 4 / 3), hflip: bool = True,
                 eval_crop_pct: float = 0.875, seed: int = 0, rank: int = 0, world_size: int = 1,
                 limit_batches: int | None = None, num_threads: int = 2,
                 dali_device: str = "auto"):
        super().__init__(len(source), batch_size, train=train, seed=seed, rank=rank,
                         world_size=world_size, limit_batches=limit_batches)
        self.dali = import_dali()                # fail at start, not at the first batch
        if len(source) and isinstance(source.read(0), np.ndarray):
            raise ConfigError("data.pipeline='dali' decodes image files, and this dataset is "
                              "held as decoded arrays (e.g. CIFAR's python batches): use "
                              "data.pipeline='device' or 'dataloader'")
        self.source = source
        self.device = torch.device(device)
        self.dali_device = _resolve_dali_device(dali_device, self.device)
        self.mean = [255 * float(m) for m in mean]
        self.std = [255 * float(s) for s in std]
        self.img_size = img_size
        self.rrc_scale, self.rrc_ratio = rrc_scale, rrc_ratio
        self.hflip = hflip
        self.eval_resize = round(img_size / eval_crop_pct)   # as transforms.AugmentSpec
        self.num_threads = num_threads
        self._pipe = None
        self._pending = 0                        # runs scheduled and not yet collected
        self._owner = None                       # the pass whose runs those are

    def __iter__(self):
        if self._pipe is None:
            self._pipe = self._build()
        self._drain()                            # an abandoned earlier pass
        owner = self._owner = object()
        steps = self._steps(self.position)
        try:
            current = next(steps, None)
            if current is not None:
                self._run(self._inputs(current))
            while current is not None:
                following = next(steps, None)
                # Read the next batch's bytes while DALI decodes this one.
                inputs = self._inputs(following) if following is not None else None
                images = self._collect(current)
                if inputs is not None:
                    self._run(inputs)
                i, idx, _ = current
                self.position = i + 1
                yield images, self.source.labels[idx].to(self.device)
                current = following
            self.position = 0  # a finished pass: the next one starts from the beginning
        finally:
            if self._owner is owner:
                self._drain()

    def _steps(self, start: int):
        """(batch number, indices, this rank's crop/flip draws or None) from batch `start` on."""
        g = sharding.epoch_generator(self.seed, self.epoch, stream=1)
        b = self.batch_size
        mine = slice(self.rank * b, (self.rank + 1) * b)
        for i, idx in enumerate(self._batches()):
            # Drawn for the whole global batch, also when skipped: see the module docstring.
            draws = self._draw(b * self.world_size, g)[mine][:len(idx)] if self.train else None
            if i >= start:
                yield i, idx, draws

    def _draw(self, n: int, g: torch.Generator) -> torch.Tensor:
        """(n, 5) float32: area fraction, aspect ratio, x and y position in [0, 1], flip (0/1)."""
        u = torch.rand(n, 5, generator=g)
        (a0, a1), (r0, r1) = self.rrc_scale, (math.log(self.rrc_ratio[0]),
                                              math.log(self.rrc_ratio[1]))
        area = a0 + (a1 - a0) * u[:, 0]
        ratio = torch.exp(r0 + (r1 - r0) * u[:, 1])
        flip = (u[:, 4] < 0.5).float() if self.hflip else torch.zeros(n)
        return torch.stack([area, ratio, u[:, 2], u[:, 3], flip], dim=1)

    def _inputs(self, step) -> dict:
        _, idx, draws = step
        inputs = {"encoded": [np.frombuffer(self.source.read(j), np.uint8) for j in idx.tolist()]}
        if draws is not None:
            inputs["draws"] = draws.numpy()
        return inputs

    def _run(self, inputs: dict) -> None:
        for name, data in inputs.items():
            self._pipe.feed_input(name, data)
        self._pipe.schedule_run()
        self._pending += 1

    def _collect(self, step) -> torch.Tensor:
        """The finished (B, 3, S, S) batch of `step`, on the training device."""
        gpu = self.dali_device == "gpu"
        stream = torch.cuda.current_stream(self.device) if gpu else None
        try:
            (out,) = self._pipe.outputs(cuda_stream=stream)
        except RuntimeError as e:
            self._pipe, self._pending = None, 0  # a failed pipeline is rebuilt by the next pass
            raise self._decode_failure(step[1], e) from None
        self._pending -= 1
        # Zero-copy: DALI's output buffers outlive later runs (its default dynamic executor).
        images = torch.from_dlpack(out.as_tensor())
        return images if gpu else images.to(self.device)

    def _decode_failure(self, idx: torch.Tensor, error: RuntimeError) -> DataError:
        """Name the image DALI stopped on: the first of the batch that PIL cannot decode either."""
        fix = ("replace it (vitscale prepare writes the TFRecords again), or use "
               "data.pipeline='dataloader' with data.on_bad_image='skip'")
        names = getattr(self.source, "names", None)
        for j in idx.tolist():
            try:
                open_rgb(self.source.read(j), "")
            except BadImage as bad:
                name = names[j] if names is not None else f"sample {j}"
                return DataError(f"{name} is not a readable image ({bad.reason}): {fix}")
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        # DALI's message: the operator, a traceback, then the cause after "encountered:".
        cause = next((b for a, b in zip(lines, lines[1:]) if a == "encountered:"), lines[0])
        return DataError(f"DALI failed on the batch of samples {idx.tolist()[:8]} ({cause}): {fix}")

    def _drain(self) -> None:
        while self._pending:
            self._pipe.outputs()
            self._pending -= 1

    def _build(self):
        """The DALI graph, built once: feed 'encoded' (and 'draws' in training) per batch."""
        d, S = self.dali, self.img_size
        fn, types = d.fn, d.types
        gpu = self.dali_device == "gpu"
        device_id = (self.device.index if self.device.index is not None
                     else torch.cuda.current_device()) if gpu else None
        # Depth 1: the loader itself keeps one batch in flight (see __iter__).
        pipe = d.Pipeline(batch_size=self.batch_size, num_threads=self.num_threads,
                          device_id=device_id, prefetch_queue_depth=1)
        decoder = "mixed" if gpu else "cpu"
        with pipe:
            encoded = fn.external_source(name="encoded", dtype=types.UINT8, ndim=1)
            if self.train:
                draws = fn.external_source(name="draws", dtype=types.FLOAT, ndim=1)
                anchor, shape = _crop_window(d, encoded, draws)
                images = fn.decoders.image_slice(encoded, anchor, shape, device=decoder,
                                                 output_type=types.RGB)
                images = fn.resize(images, size=[S, S])
                crop = {"mirror": fn.cast(draws[4], dtype=types.INT32)}
            else:
                window = _eval_window(d, encoded, self.eval_resize, S)
                images = fn.decoders.image(encoded, device=decoder, output_type=types.RGB)
                images = fn.resize(images, **window["resize"])
                crop = window["crop"]
            pipe.set_outputs(fn.crop_mirror_normalize(
                images, crop=(S, S), mean=self.mean, std=self.std, dtype=types.FLOAT,
                output_layout="CHW", **crop))
        pipe.build()
        return pipe


def _crop_window(d: SimpleNamespace, encoded, draws):
    """Each image's random resized crop as (x, y) anchor and (w, h) shape, relative to its size.

    A window of area = a * H * W pixels with aspect ratio w/h = r has, in units of the image's
    width and height, w = sqrt(a * r * H / W) and h = sqrt(a / r * W / H).
    """
    fn, dmath = d.fn, d.math
    hwc = fn.peek_image_shape(encoded, dtype=d.types.FLOAT)   # (H, W, C), without decoding
    height, width = hwc[0], hwc[1]
    area, ratio = draws[0], draws[1]
    w = dmath.sqrt(area * ratio * height / width)
    h = dmath.sqrt(area / ratio * width / height)
    fit = dmath.max(dmath.max(w, h), 1.0)                      # shrink to fit, same ratio
    w, h = w / fit, h / fit
    return fn.stack(draws[2] * (1.0 - w), draws[3] * (1.0 - h)), fn.stack(w, h)


def _eval_window(d: SimpleNamespace, encoded, resize: int, size: int) -> dict:
    """fn.resize and fn.crop_mirror_normalize arguments that reproduce torchvision's
    Resize(resize) + CenterCrop(size) exactly, so that every pipeline evaluates the same pixels.

    Resize makes the shorter side `resize` and truncates the longer one (DALI's resize_shorter
    would round it); the centre crop starts at round((length - size) / 2), half to even.
    """
    dmath = d.math
    hwc = d.fn.peek_image_shape(encoded, dtype=d.types.FLOAT)
    height, width = hwc[0], hwc[1]
    shorter = dmath.min(height, width)
    height = dmath.floor(height * resize / shorter)
    width = dmath.floor(width * resize / shorter)

    def position(length):
        extra = length - size
        start = dmath.floor((extra + 1) / 4) + dmath.floor((extra + 2) / 4)  # round(extra / 2)
        # With rounding='truncate', DALI starts the crop at floor(position * extra) = start.
        return (start + 0.25) / dmath.max(extra, 1.0)

    return {"resize": {"resize_x": width, "resize_y": height},
            "crop": {"crop_pos_x": position(width), "crop_pos_y": position(height),
                     "rounding": "truncate"}}


def _resolve_dali_device(dali_device: str, device: torch.device) -> str:
    if dali_device == "auto":
        return "gpu" if device.type == "cuda" else "cpu"
    if dali_device not in ("cpu", "gpu"):
        raise ConfigError(f"data.dali_device={dali_device!r}: use 'auto', 'cpu' or 'gpu'")
    if dali_device == "gpu" and device.type != "cuda":
        raise ConfigError(f"data.dali_device='gpu' needs a CUDA training device (this run "
                          f"trains on {device}): use dali_device='cpu' or 'auto'")
    return dali_device
