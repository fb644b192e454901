"""Shared fixtures. Tests read the real datasets from ../shared/datasets (or $VITSCALE_DATASETS).

Nothing is skipped when the data is missing: the suite fails and says where to put it.
"""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

# Colossal-AI's config files are test data: one is named test_*.py, and imports colossalai.
collect_ignore = ["fixtures"]

REPO = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("VITSCALE_DATASETS", REPO.parent / "shared" / "datasets"))
os.environ.setdefault("VITSCALE_CACHE", str(REPO / ".cache" / "vitscale-test"))
# One torch thread per process, here and in every process a test starts (they inherit the
# variable; torchrun's ranks already get it). `make test` runs two workers on two cores, and
# the multi-process tests start up to 8 ranks: with a second intra-op thread each, a join
# waits for a descheduled thread. Measured on 2 cores, 2026-12-03: the suite took 19:38
# with torch's default threads and 15:54 with one, 7 minutes less CPU time.
# test_pipelines.py runs the per-core worker threads of the input pipeline explicitly.
os.environ.setdefault("OMP_NUM_THREADS", "1")

# `make test` runs the suite on two pytest-xdist workers, a file per worker at a time
# (--dist loadfile: a module's shared runs happen once). The files that start the most
# processes go first, longest first, so that no long file starts last and runs alone.
# (Makefile: --no-loadscope-reorder keeps this order; xdist would put files with many tests
# first.) Seconds on 2 cores, 2026-12-03: 405, 168, 134, 116, 108, 72, 63, 62, 50, 45, 36.
LONGEST_FIRST = ["test_tensor_parallel_runs.py", "test_durable.py", "test_distributed.py",
                 "test_pipeline_runs.py", "test_tensor_parallel.py", "test_pipeline_parallel.py",
                 "test_optim.py", "test_ffn.py", "test_cli.py", "test_pipelines.py",
                 "test_sweep.py"]


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: order within


# A model and recipe small enough for a few seconds of CPU per run, on real CIFAR-10.
TINY = ["IMG_SIZE=32", "PATCH_SIZE=8", "HIDDEN_SIZE=32", "DEPTH=1", "NUM_HEADS=2",
        "MLP_RATIO=2", "BATCH_SIZE=32", "NUM_EPOCHS=2", "LIMIT_TRAIN_BATCHES=3",
        "LIMIT_EVAL_BATCHES=2", "LOG_EVERY=2", "WARMUP_EPOCHS=0"]


@pytest.fixture(scope="session")
def cifar_dir() -> Path:
    path = DATASETS / "cifar10"
    if not (path / "train.tar.gz").is_file():
        pytest.fail(f"real CIFAR-10 not found at {path}: set VITSCALE_DATASETS to the folder "
                    "holding cifar10/train.tar.gz (see ../shared/datasets/README.md)")
    return path


@pytest.fixture(scope="session")
def quick_config() -> Path:
    return REPO / "configs" / "cifar10" / "quick_cpu.py"


def _extract_subset(archive: Path, out: Path, per_class: int) -> None:
    taken: dict[str, int] = {}
    with tarfile.open(archive) as tar:
        for member in tar:
            if not member.isfile():
                continue
            cls = Path(member.name).parts[-2]
            if taken.get(cls, 0) >= per_class:
                continue
            taken[cls] = taken.get(cls, 0) + 1
            target = out / member.name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(tar.extractfile(member).read())


@pytest.fixture(scope="session")
def cifar_folder(cifar_dir, tmp_path_factory) -> Path:
    """A real ImageFolder tree: 20 train and 10 test images per class, from the archives."""
    root = tmp_path_factory.mktemp("cifar_folder")
    _extract_subset(cifar_dir / "train.tar.gz", root, per_class=20)
    _extract_subset(cifar_dir / "test.tar.gz", root, per_class=10)
    return root


@pytest.fixture(scope="session")
def cifar_batches(cifar_folder, tmp_path_factory) -> Path:
    """The standard cifar-10-batches-py layout, written from the real images above."""
    from vitscale.data import load_splits

    root = tmp_path_factory.mktemp("cifar_batches") / "cifar-10-batches-py"
    root.mkdir()
    for split, names in (("train", [f"data_batch_{i}" for i in range(1, 6)]),
                         ("test", ["test_batch"])):
        data = load_splits("cifar10", cifar_folder)[split == "test"]
        flat = data.images.reshape(len(data.labels), -1).numpy()
        for i, name in enumerate(names):
            part = slice(i, None, len(names))
            batch = {b"data": np.ascontiguousarray(flat[part]),
                     b"labels": data.labels[part].tolist(), b"batch_label": name.encode()}
            with open(root / name, "wb") as f:
                pickle.dump(batch, f)
    return root


def run_cli(*args: str, cwd: Path | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run `python -m vitscale ...` in a subprocess, as a user would."""
    return subprocess.run([sys.executable, "-m", "vitscale", *args], cwd=cwd or REPO,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def imagenette_dir() -> Path:
    path = DATASETS / "imagenette"
    if not (path / "train.tar.gz").is_file():
        pytest.fail(f"real Imagenette not found at {path}: set VITSCALE_DATASETS to the folder "
                    "holding imagenette/train.tar.gz (see ../shared/datasets/README.md)")
    return path


def _extract_imagenette(archive: Path, out: Path, per_class: int, grayscale: int) -> list[Path]:
    """The first `per_class` images of each class, plus the first `grayscale` grayscale
    images found anywhere in the archive; returns the grayscale files."""
    from PIL import Image
    taken: dict[str, int] = {}
    gray: list[Path] = []
    with tarfile.open(archive) as tar:
        for member in tar:
            if not member.isfile():
                continue
            cls = Path(member.name).parts[-2]
            want = taken.get(cls, 0) < per_class
            if not want and len(gray) >= grayscale:
                if len(taken) == 10 and all(v >= per_class for v in taken.values()):
                    break
                continue
            data = tar.extractfile(member).read()
            is_gray = Image.open(io.BytesIO(data)).mode == "L"
            if not want and not (is_gray and len(gray) < grayscale):
                continue
            target = out / member.name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            taken[cls] = taken.get(cls, 0) + 1
            if is_gray:
                gray.append(target)
    return gray


@pytest.fixture(scope="session")
def imagenette_subset(imagenette_dir, tmp_path_factory) -> tuple[Path, list[Path]]:
    """Real Imagenette in ImageNet's layout: 8 train and 4 val images per class, and at least
    one grayscale (mode L) training image; (root, the grayscale files)."""
    root = tmp_path_factory.mktemp("imagenette")
    gray = _extract_imagenette(imagenette_dir / "train.tar.gz", root, per_class=8, grayscale=1)
    _extract_imagenette(imagenette_dir / "val.tar.gz", root, per_class=4, grayscale=0)
    assert gray, "no grayscale image found in Imagenette's train archive"
    return root, gray
