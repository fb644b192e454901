"""Colossal-AI config files load as they are and mean what they meant (issue 18).

tests/fixtures/colossalai holds the public ViT and feature configs verbatim; the unit tests
below each exercise one import, one translated key or one inference rule.
"""

from __future__ import annotations

import os
import re
import textwrap
from pathlib import Path

import pytest

from conftest import REPO, run_cli
from vitscale import AMP_TYPE, ConfigError, config_from_dict, load_config
from vitscale.commands.train import plan_dry_run
from vitscale.config import read_config
from vitscale.data.infer import infer_dataset
from vitscale.plan import make_plan

FIXTURES = Path(__file__).parent / "fixtures" / "colossalai"
FILES = sorted(FIXTURES.rglob("*.py"))
SEEDS = REPO.parent / "shared" / "seeds"


@pytest.fixture(autouse=True)
def no_data_env(monkeypatch):
    monkeypatch.delenv("DATA", raising=False)  # as on a machine that never ran Colossal-AI


def write(tmp_path, text: str, name: str = "cfg.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def plan_file(path, overrides=(), data=None, world=None):
    """What `vitscale train FILE --dry-run [--world N]` plans: (loaded, inference, plan)."""
    loaded = read_config(path, overrides)
    dry = plan_dry_run(loaded, data, world)
    return loaded, dry.inference, dry.plan


# --------------------------------------------------------------------------------------------
# Every public config file


def test_fixtures_are_the_named_folders():
    names = {str(f.relative_to(FIXTURES)) for f in FILES}
    assert len(FILES) == 48
    for folder in ("ColossalAI-Examples/image/vision_transformer/hybrid_parallel/configs",
                   "ColossalAI-Examples/features/zero/config", "ColossalAI/benchmark/cifar/configs",
                   "ColossalAI/benchmark/imagenet1k/configs", "ColossalAI/configs/vit"):
        assert any(n.startswith(folder) for n in names), folder


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_every_public_config_file_plans_its_own_layout(path):
    source = path.read_text()
    loaded, inference, plan = plan_file(path)
    # The layout is the one the file writes: pipeline and tensor sizes read from its text.
    pipeline = re.search(r"pipeline=(?:dict\(size=)?(\d+|parallel)", source)
    if "parallel" in source and pipeline:
        assert plan.dims.pipeline == int(pipeline.group(1))
    if "TENSOR_PARALLEL_SIZE" in loaded.config.to_dict() and loaded.config.TENSOR_PARALLEL_SIZE:
        assert plan.dims.tensor == loaded.config.TENSOR_PARALLEL_SIZE
    # Every Colossal-only name the file assigns is accounted for in the notes.
    said = " ".join(loaded.lines())
    for name in ("LOG_PATH", "seed", "gradient_clipping", "NUM_CHUNKS", "USE_DDP", "dali",
                 "hooks", "logging", "optimizer", "lr_scheduler", "train_data"):
        if re.search(rf"^{name}\s*=", source, re.M):
            assert name in said, f"{name} is neither translated nor listed"


@pytest.mark.parametrize("name, layout, model, dataset, precision", [
    ("ColossalAI-Examples/image/vision_transformer/hybrid_parallel/configs/vit_2d_tp4_pp16.py",
     "pipeline 16 x tensor 4 (2d) x data 1", "custom", "imagenet1k", "naive_fp16"),
    ("ColossalAI-Examples/image/vision_transformer/hybrid_parallel/configs/vit_3d_tp8_pp8.py",
     "pipeline 8 x tensor 8 (3d) x data 1", "custom", "imagenet1k", "naive_fp16"),
    ("ColossalAI-Examples/image/vision_transformer/hybrid_parallel/configs/vit_2p5d_tp4_pp16.py",
     "pipeline 16 x tensor 4 (2.5d, depth 1) x data 1", "custom", "imagenet1k", "naive_fp16"),
    # DEPTH = 1 there is the Tesseract depth: the model stays ViT-Lite-7/4 with its 7 blocks.
    ("ColossalAI/benchmark/cifar/configs/vit_2p5d.py",
     "pipeline 1 x tensor 4 (2.5d, depth 1) x data 1", "vit_lite_7_4", "cifar10", "fp32"),
    ("ColossalAI/benchmark/imagenet1k/configs/vit_2p5d.py",
     "pipeline 1 x tensor 4 (2.5d, depth 1) x data 1", "vit_small_patch16_224", "cifar10", "fp16"),
    ("ColossalAI-Examples/features/zero/config/config_level_3.py",
     "pipeline 1 x tensor 1 x data 1", "vit_small_patch16_224", "imagenet1k", "fp32"),
    # The earliest format: model = dict(type='VisionTransformerFromConfig', ...), AMP PARALLEL.
    ("ColossalAI/tests/test_trainer/configs/test_trainer_vit_2d.py",
     "pipeline 1 x tensor 4 (2d) x data 1", "custom", "cifar10", "naive_fp16"),
    ("ColossalAI/configs/vit/vit_3d.py",
     "pipeline 1 x tensor 8 (3d) x data 1", "custom", "cifar10", "naive_fp16"),
    ("ColossalAI-Examples/image/vision_transformer/data_parallel/config.py",
     "pipeline 1 x tensor 1 x data 1", "vit_small_patch16_224", "imagenet1k", "fp16"),
])
def test_public_configs_mean_what_they_meant(name, layout, model, dataset, precision):
    _, _, plan = plan_file(FIXTURES / name)
    if "imagenet1k/configs/vit_2p5d" in name:
        # Nothing in that file names its dataset (train.py did): the keys give CIFAR-10's
        # default, said so by the dry run; --data or DATASET puts it on ImageNet.
        _, inference, plan = plan_file(FIXTURES / name, ["DATASET='imagenet1k'"])
        assert "dataset: imagenet1k (DATASET)" in inference.lines
        dataset = "imagenet1k"
    assert plan.dims.describe() == layout
    assert plan.model_name == model and plan.dataset.name == dataset
    assert plan.precision == precision


def test_cifar_2p5d_depth_is_the_tesseract_depth():
    loaded, _, plan = plan_file(FIXTURES / "ColossalAI/benchmark/cifar/configs/vit_2p5d.py")
    assert loaded.config.DEPTH is None and loaded.config.parallel.tensor.depth == 1
    assert plan.model.depth == 7 and plan.model.width == 256
    assert any("DEPTH=1 -> the Tesseract depth" in line for line in loaded.lines())


def test_hybrid_config_keys_checked_against_the_layout():
    path = FIXTURES / "ColossalAI-Examples/image/vision_transformer/hybrid_parallel/configs/" \
                      "vit_2d_tp4_pp16.py"
    loaded, _, plan = plan_file(path)
    assert plan.model.width == 4096 and plan.model.depth == 32
    assert loaded.config.NUM_MICRO_BATCHES == 16
    assert tuple(loaded.config.TENSOR_SHAPE) == (8192 // 16 // 2, 197, 4096 // 2)
    lines = loaded.lines()
    assert any(line.startswith("checked: SUMMA_DIM=2") for line in lines)
    assert any(line.startswith("checked: TENSOR_SHAPE") for line in lines)
    # A TENSOR_SHAPE that disagrees with the layout is one line.
    with pytest.raises(ConfigError, match=r"TENSOR_SHAPE=\(512, 197, 4096\) differs"):
        plan_file(path, ["TENSOR_SHAPE=(512, 197, 4096)"])
    with pytest.raises(ConfigError, match="NUM_MICRO_BATCHES=3 does not divide"):
        plan_file(path, ["NUM_MICRO_BATCHES=3"])
    with pytest.raises(ConfigError, match="SUMMA_DIM=4 but parallel"):
        plan_file(path, ["SUMMA_DIM=4"])


def test_a_launched_run_still_checks_the_real_world():
    path = FIXTURES / "ColossalAI-Examples/image/vision_transformer/hybrid_parallel/configs/" \
                      "vit_1d_tp2_pp2.py"
    # torch AMP: the file's naive fp16 cannot run data parallel under tensor parallelism (FSDP2).
    cfg = infer_dataset(load_config(path, ["fp16=dict(mode=AMP_TYPE.TORCH)"])).config
    with pytest.raises(ConfigError, match="pipeline parallelism"):
        make_plan(cfg, world_size=4)  # runnable=True, as `vitscale train` without --dry-run
    with pytest.raises(ConfigError, match="world size 6 is not divisible"):
        make_plan(cfg, world_size=6, runnable=False)
    assert make_plan(cfg, world_size=8, runnable=False).dims.data == 2


# --------------------------------------------------------------------------------------------
# The seeds' own config blocks, with their import lines


def _python_blocks(text: str) -> list[str]:
    return [b for b in re.findall(r"```(?:python)?\n(.*?)```", text, re.S)
            if re.search(r"^[A-Za-z_]+\s*=", b, re.M) and "<" not in b]


def test_seed_config_blocks_load_with_their_imports(tmp_path):
    seed0 = _python_blocks((SEEDS / "000_cec0d5e90bc154c4.txt").read_text())
    assert len(seed0) == 1
    cfg = load_config(write(tmp_path, "from colossalai.amp import AMP_TYPE\n" + seed0[0]))
    plan = make_plan(infer_dataset(cfg).config)
    assert (plan.global_batch, plan.accumulation, plan.precision) == (4096, 2, "fp16")
    # Seed 003: the model and hyperparameter blocks, the micro-batch line (its stray backtick
    # dropped) and a concrete parallel layout in place of its <int> placeholders.
    text = (SEEDS / "003_6893aa44ba4e07c5.txt").read_text()
    blocks = _python_blocks(text)
    micro = re.search(r"NUM_MICRO_BATCHES = parallel\['pipeline'\]", text).group(0)
    source = "\n".join(["from colossalai.amp import AMP_TYPE", *blocks,
                        "parallel = dict(pipeline=2, tensor=dict(mode='1d', size=4))",
                        "fp16 = dict(mode=AMP_TYPE.NAIVE)", micro])
    cfg = load_config(write(tmp_path, source, "seed003.py"))
    plan = make_plan(infer_dataset(cfg).config, world_size=8, runnable=False)
    assert plan.model.width == 4096 and plan.model.depth == 32 and plan.model.heads == 64
    assert plan.dims.describe() == "pipeline 2 x tensor 4 (1d) x data 1"
    assert cfg.NUM_MICRO_BATCHES == 2 and plan.dataset.name == "imagenet1k"


# --------------------------------------------------------------------------------------------
# Imports


def test_colossalai_titans_and_stdlib_imports_without_colossalai(tmp_path):
    import importlib.util
    assert importlib.util.find_spec("colossalai") is None  # nothing is installed for this
    cfg = load_config(write(tmp_path, """\
        import math
        import colossalai
        from colossalai.amp import AMP_TYPE
        from colossalai.engine import AMP_TYPE as ENGINE_AMP
        from colossalai.context import ParallelMode
        from titans.model.vit import vit_lite_depth7_patch4_32
        from tkinter import HIDDEN
        BATCH_SIZE = 8
        loss = dict(type='CrossEntropyLoss3D', input_parallel_mode=ParallelMode.PARALLEL_3D_OUTPUT)
        fp16 = dict(mode=ENGINE_AMP.PARALLEL)
        SUMMA_DIM = int(math.sqrt(4))
        """))
    assert cfg.fp16.mode is AMP_TYPE.NAIVE and cfg.precision == "naive_fp16"
    assert AMP_TYPE.PARALLEL is AMP_TYPE.NAIVE


def test_imported_names_are_helpers_unless_they_name_a_key(tmp_path):
    (tmp_path / "base_keys.py").write_text("LEARNING_RATE = 0.25\nHIDDEN = 'hidden'\n")
    import sys
    sys.path.insert(0, str(tmp_path))
    try:
        cfg = load_config(write(tmp_path, "from base_keys import LEARNING_RATE, HIDDEN\n"
                                          "BATCH_SIZE = 8\n"))
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("base_keys", None)
    assert cfg.LEARNING_RATE == 0.25  # a key, even imported; HIDDEN is the file's helper


def test_a_colossalai_name_in_a_used_key_is_one_line(tmp_path):
    path = write(tmp_path, """\
        from colossalai.nn.optimizer import Lamb
        BATCH_SIZE = 8
        OPTIMIZER = Lamb
        """)
    with pytest.raises(ConfigError, match="OPTIMIZER uses colossalai.nn.optimizer.Lamb"):
        load_config(path)


def test_environment_read_at_load_time(tmp_path, monkeypatch):
    text = """\
        import os
        from pathlib import Path
        BATCH_SIZE = 8
        train_data = dict(dataset=dict(type='CIFAR10Dataset', root=Path(os.environ['DATA'])))
        """
    loaded = read_config(write(tmp_path, text))
    assert loaded.config.data.root is None and loaded.config.DATASET == "cifar10"
    assert any("$DATA was read by the file but is not set" in line for line in loaded.lines())
    monkeypatch.setenv("DATA", str(tmp_path))
    loaded = read_config(write(tmp_path, text))
    assert loaded.config.data.root == str(tmp_path)
    assert not any(line.startswith("unset") for line in loaded.lines())


def test_an_unset_variable_that_is_used_is_one_line(tmp_path):
    path = write(tmp_path, "import os\nBATCH_SIZE = int(os.environ['MY_BATCH'])\n")
    with pytest.raises(ConfigError, match=r"reads \$MY_BATCH, which is not set"):
        load_config(path)


# --------------------------------------------------------------------------------------------
# Keys


@pytest.mark.parametrize("text, expect", [
    ("seed = 7", {"SEED": 7}),
    ("num_epochs = 3", {"NUM_EPOCHS": 3}),
    ("gradient_clipping = 2.0", {"clip_grad_norm": 2.0}),
    ("clip_grad = 0.5", {"clip_grad_norm": 0.5}),
    ("engine = dict(gradient_accumulation=4, gradient_clipping=1.0, gradient_handlers=None)",
     {"gradient_accumulation": 4, "clip_grad_norm": 1.0}),
    ("fp16 = dict(mode=None)", {"fp16": None, "precision": None}),
    ("fp16 = dict(mode=AMP_TYPE.NAIVE, initial_scale=2**8, min_scale=None, verbose=False)",
     {"precision": "naive_fp16"}),
    ("zero = dict(level=3, verbose=False)", {"zero.stage": 3}),
    ("zero = dict(type='ZeroRedundancyOptimizer_Level_2', dynamic_loss_scale=True, clip_grad=1.0)",
     {"zero.stage": 2, "clip_grad_norm": 1.0}),
    ("zero = dict(level=2, cpu_offload=True)", {"zero.stage": 2}),
    ("NUM_CHUNKS = 1", {}),
    ("NUM_CHUNKS = 2\nNUM_MICRO_BATCHES = 4\nparallel = dict(pipeline=2)",
     {"parallel.pipeline_chunks": 2, "parallel.pipeline_schedule": "interleaved_1f1b"}),
    ("USE_DDP = True", {"zero": None}),
    ("dali = dict(root='/data/imagenet', gpu_aug=True, mixup_alpha=0.2)",
     {"data.root": "/data/imagenet", "data.pipeline": "dali", "data.dali_device": "gpu",
      "MIXUP_ALPHA": 0.2}),
    ("optimizer = dict(type='Lamb', lr=1.8e-2, weight_decay=0.1)",
     {"OPTIMIZER": "lamb", "LEARNING_RATE": 1.8e-2, "WEIGHT_DECAY": 0.1,
      "LAMB_BIAS_CORRECTION": False}),
    ("optimizer = dict(type='Adam', lr=1e-3)", {"OPTIMIZER": "adamw", "WEIGHT_DECAY": 0.0}),
    ("loss = dict(type='CrossEntropyLoss2D', label_smoothing=0.1)", {"LABEL_SMOOTHING": 0.1}),
    ("num_epochs = 60\nlr_scheduler = dict(type='LinearWarmupLR', warmup_steps=5, "
     "total_steps=num_epochs)", {"LR_SCHEDULE": "linear", "WARMUP_EPOCHS": 5.0}),
    ("hooks = [dict(type='LossHook'), dict(type='LRSchedulerHook', by_epoch=False, "
     "lr_scheduler_cfg=dict(type='CosineAnnealingWarmupLR', warmup_steps=100, eta_min=1e-5)), "
     "dict(type='SaveCheckpointHook', interval=5)]",
     {"LR_SCHEDULE": "cosine", "WARMUP_STEPS": 100, "MIN_LR": 1e-5,
      "checkpoints.every_epochs": 5}),
    ("model = dict(type='vit_tiny_3d_patch4_32', drop_rate=0.1)",
     {"IMG_SIZE": 32, "PATCH_SIZE": 4, "HIDDEN_SIZE": 512, "DEPTH": 6, "NUM_HEADS": 8,
      "MLP_RATIO": 1.0, "DROP_RATE": 0.1}),
    ("model = dict(type='vit_lite_depth7_patch4_32')", {"MODEL": "vit_lite_7_4"}),
    ("train_data = dict(dataset=dict(type='CIFAR10Dataset', transform_pipeline=["
     "dict(type='RandomCrop', size=32, padding=4), dict(type='ToTensor')]), "
     "dataloader=dict(batch_size=64, num_workers=2, pin_memory=True))",
     {"DATASET": "cifar10", "TRAIN_CROP": "pad", "CROP_PADDING": 4, "HFLIP": False,
      "BATCH_SIZE": 64, "data.num_workers": 2}),
    ("DIM = 384\nNUM_ATTENTION_HEADS = 6\nNUM_BLOCKS = 4",
     {"HIDDEN_SIZE": 384, "NUM_HEADS": 6, "DEPTH": 4}),
    ("parallel = dict(pipeline=dict(size=2), tensor=dict(size=4, mode='2d'), data=4)",
     {"parallel.pipeline": 2, "parallel.tensor.size": 4, "parallel.data": 4}),
])
def test_colossal_keys_are_translated(tmp_path, text, expect):
    cfg = load_config(write(tmp_path, "BATCH_SIZE = 32\n" * ("BATCH_SIZE" not in str(expect))
                            + text + "\n"))
    for key, value in expect.items():
        node = cfg
        for part in key.split("."):
            node = getattr(node, part)
        assert node == value, key


@pytest.mark.parametrize("text, listed", [
    ("LOG_PATH = './log'", "ignored: LOG_PATH (the run directory"),
    ("logging = dict(root_path='./logs')", "ignored: logging ("),
    ("hooks = [dict(type='LogMetricByEpochHook'), dict(type='Accuracy2DHook')]",
     "ignored: hooks LogMetricByEpochHook, Accuracy2DHook (vitscale's loop logs"),
    ("zero = dict(level=2, cpu_offload=True)", "ignored: zero.cpu_offload (vitscale keeps"),
    ("zero = dict(level=3, offload_param_config=dict(device='cpu'))",
     "ignored: zero.offload_param_config"),
    ("NUM_CHUNKS = 1", "ignored: NUM_CHUNKS (one model chunk"),
    ("NUM_CHUNKS = 2", "ignored: NUM_CHUNKS (no pipeline"),
    ("NUM_MICRO_BATCHES = 4", "ignored: NUM_MICRO_BATCHES (no pipeline"),
    ("TP_TYPE = 'row'", "ignored: TP_TYPE"),
    ("seed = 1\nSEED = 2", "ignored: seed=1 (SEED=2 is set and wins)"),
])
def test_keys_without_meaning_are_listed_once(tmp_path, text, listed):
    loaded = read_config(write(tmp_path, "BATCH_SIZE = 32\n" + text + "\n"))
    lines = loaded.lines()
    assert sum(line.startswith(listed) for line in lines) == 1, lines


@pytest.mark.parametrize("text, message", [
    ("NUM_CHUNKS = 2.5\nparallel = dict(pipeline=2)", "whole number of model chunks"),
    ("TENSOR_PARALLEL_MODE = '2d'\nparallel = dict(tensor=dict(mode='1d', size=2))",
     "TENSOR_PARALLEL_MODE='2d' differs"),
    ("TESSERACT_DEPTH = 2\nparallel = dict(tensor=dict(mode='2.5d', size=4, depth=1))",
     "TESSERACT_DEPTH=2 but parallel"),
    ("TP_WORLD_SIZE = 4\nparallel = dict(tensor=dict(mode='1d', size=2))",
     "TP_WORLD_SIZE=4 differs"),
    ("USE_DDP = True\nzero = dict(level=2)", "keep one"),
    ("optimizer = dict(type='Adagrad', lr=0.1)", "optimizer type 'Adagrad'"),
    ("lr_scheduler = dict(type='OneCycleLR')", "'OneCycleLR' is not a schedule"),
    ("model = dict(type='resnet50')", "'resnet50' is not a Vision Transformer"),
    ("loss = dict(type='MSELoss')", "cross-entropy only"),
])
def test_what_vitscale_cannot_do_is_one_line(tmp_path, text, message):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, "BATCH_SIZE = 32\n" + text + "\n"))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_all_unknown_keys_are_named_at_once(tmp_path):
    path = write(tmp_path, "BATCH_SIZE = 8\nLEARNING_RAT = 1\nMY_OWN = 2\n"
                           "parallel = dict(tensor=dict(sise=2))\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "'LEARNING_RAT' (did you mean 'LEARNING_RATE'?)" in message
    assert "'MY_OWN'" in message and "parallel.tensor.sise (did you mean 'size'?)" in message


def test_set_speaks_the_config_language(tmp_path):
    path = write(tmp_path, "from colossalai.amp import AMP_TYPE\nBATCH_SIZE = 8\n"
                           "fp16 = dict(mode=AMP_TYPE.NAIVE)\n")
    cfg = load_config(path, ['parallel=dict(pipeline=2, tensor=dict(mode="1d", size=2))',
                             "fp16=dict(mode=AMP_TYPE.TORCH, init_scale=2**10)",
                             "seed=3", "zero.level=2"])
    assert cfg.parallel.pipeline == 2 and cfg.parallel.tensor.mode == "1d"
    assert cfg.parallel.tensor.size == 2
    assert cfg.fp16.mode is AMP_TYPE.TORCH and cfg.fp16.init_scale == 1024.0
    assert cfg.SEED == 3 and cfg.zero.stage == 2
    with pytest.raises(ConfigError, match="would run code"):
        load_config(path, ["BATCH_SIZE=__import__('os').getcwd()"])


# --------------------------------------------------------------------------------------------
# Dataset and model inference


@pytest.mark.parametrize("values, dataset, model", [
    ({}, "cifar10", "vit_lite_7_4"),
    ({"NUM_CLASSES": 1000, "IMG_SIZE": 224}, "imagenet1k", "vit_small_patch16_224"),
    ({"NUM_CLASSES": 1000}, "imagenet1k", "vit_small_patch16_224"),
    ({"IMG_SIZE": 224}, "imagenet1k", "vit_small_patch16_224"),
    ({"NUM_CLASSES": 100}, "cifar100", "vit_lite_7_4"),
    ({"NUM_CLASSES": 101}, "caltech101", "vit_small_patch16_224"),
    ({"MODEL": "vit_base_patch16_224"}, "imagenet1k", "vit_base_patch16_224"),
    ({"data": {"pipeline": "dali"}}, "imagenet1k", "vit_small_patch16_224"),
    ({"NUM_CLASSES": 37, "IMG_SIZE": 224}, "folder", "vit_small_patch16_224"),
])
def test_dataset_and_model_follow_the_keys(values, dataset, model):
    inference = infer_dataset(config_from_dict({"BATCH_SIZE": 8, **values}), scan=False)
    plan = make_plan(inference.config)
    assert plan.dataset.name == dataset and plan.model_name == model
    said = " ".join(inference.lines)
    assert f"dataset: {dataset} (" in said and "model: " in said
    if not values:
        assert "the default" in said and "nothing names a dataset" in said


def test_never_silently_cifar10_for_a_1000_class_224px_file(tmp_path, cifar_dir):
    path = write(tmp_path, "BATCH_SIZE = 8\nNUM_CLASSES = 1000\nIMG_SIZE = 224\n")
    _, inference, plan = plan_file(path)
    assert plan.dataset.name == "imagenet1k" and plan.model.num_classes == 1000
    with pytest.raises(ConfigError, match="NUM_CLASSES=1000 but cifar10 has 10"):
        plan_file(path, data=cifar_dir)  # the data is CIFAR-10: the file and data disagree


def _mixed_folder(root: Path, cifar_folder: Path, imagenette: Path, cifar_classes: list[str],
                  imagenette_classes: list[str]) -> Path:
    """train/ and val/ with CIFAR-10 (32 px) and Imagenette (224 px) classes side by side."""
    for split, cifar_split in (("train", "train"), ("val", "test")):
        os.makedirs(root / split)
        for cls in cifar_classes:
            os.symlink(cifar_folder / cifar_split / cls, root / split / cls)
        for cls in imagenette_classes:
            os.symlink(imagenette / split / cls, root / split / cls)
    return root


@pytest.fixture(scope="module")
def mixed_folders(cifar_folder, imagenette_subset, tmp_path_factory):
    imagenette, _ = imagenette_subset
    cifar = sorted(p.name for p in (cifar_folder / "train").iterdir())
    wnids = sorted(p.name for p in (imagenette / "train").iterdir())
    two = _mixed_folder(tmp_path_factory.mktemp("two"), cifar_folder, imagenette, cifar[3:4],
                        wnids[:1])
    twenty = _mixed_folder(tmp_path_factory.mktemp("twenty"), cifar_folder, imagenette, cifar,
                           wnids)
    return two, twenty


def test_folder_dataset_is_inferred_with_its_class_count(mixed_folders, tmp_path):
    two, twenty = mixed_folders
    path = write(tmp_path, "BATCH_SIZE = 8\n")
    for root, classes in ((two, 2), (twenty, 20)):
        _, inference, plan = plan_file(path, data=root)
        assert plan.dataset.name == "folder" and plan.model.num_classes == classes
        assert f"NUM_CLASSES: {classes} (class folders in {root})" in inference.lines
        assert inference.train_size == sum(len(os.listdir(d)) for d in (root / "train").iterdir())
    with pytest.raises(ConfigError, match="NUM_CLASSES=10 but .* has 20 class folders"):
        plan_file(path, ["NUM_CLASSES=10"], data=twenty)


def test_image_size_follows_the_images(cifar_folder, imagenette_subset, tmp_path):
    imagenette, _ = imagenette_subset
    small = _mixed_folder(tmp_path / "small", cifar_folder, imagenette, ["cat", "dog"], [])
    large = _mixed_folder(tmp_path / "large", cifar_folder, imagenette, [],
                          ["n01440764", "n02102040"])
    path = write(tmp_path, "BATCH_SIZE = 8\n")
    assert plan_file(path, data=small)[2].model_name == "vit_lite_7_4"
    _, inference, plan = plan_file(path, data=large)
    assert plan.model_name == "vit_small_patch16_224" and plan.model.img_size == 224
    assert any(line.startswith("IMG_SIZE: 224 (median image side 224") for line in
               inference.lines)


TINY_FOLDER_RUN = """\
    # No DATASET: the class count comes from the data.
    IMG_SIZE = 32
    PATCH_SIZE = 8
    HIDDEN_SIZE = 32
    DEPTH = 1
    NUM_HEADS = 2
    MLP_RATIO = 2
    BATCH_SIZE = 8
    NUM_EPOCHS = 1
    LIMIT_TRAIN_BATCHES = 3
    LIMIT_EVAL_BATCHES = 2
    LOG_EVERY = 1
    seed = 0
    """


def test_two_and_twenty_class_folders_train_without_dataset(mixed_folders, tmp_path):
    import torch

    from vitscale import build_engine
    two, twenty = mixed_folders
    cfg = load_config(write(tmp_path, TINY_FOLDER_RUN))
    assert cfg.DATASET is None
    for root, classes in ((two, 2), (twenty, 20)):
        engine = build_engine(cfg, data=root, device="cpu")
        assert engine.plan.dataset.name == "folder" and engine.cfg.NUM_CLASSES == classes
        assert engine.model.head.out_features == classes
        images, labels = next(iter(engine.train_loader))
        assert images.shape[1:] == (3, 32, 32) and int(labels.max()) < classes
        losses = [float(engine.train_step(x, y).loss)
                  for (x, y), _ in zip(engine.train_loader, range(3))]
        assert all(torch.isfinite(torch.tensor(losses)))
        result = engine.evaluate()
        assert 0 <= result["acc1"] <= 100


# --------------------------------------------------------------------------------------------
# The command line


def test_dry_run_plans_a_64_gpu_config_on_one_machine():
    path = FIXTURES / "ColossalAI-Examples/image/vision_transformer/hybrid_parallel/configs/" \
                      "vit_1d_tp4_pp16.py"
    env_free = run_cli("train", str(path), "--dry-run")
    assert env_free.returncode == 0, env_free.stderr
    out = env_free.stdout
    assert "layout               pipeline 16 x tensor 4 (1d) x data 1" in out
    assert "world_size           64 (the config's smallest: pipeline x tensor)" in out
    assert "dataset: imagenet1k (NUM_CLASSES=1000)" in out
    assert "checked: TENSOR_SHAPE=(256, 197, 4096)" in out and "Traceback" not in out
    # 128 processes: data 2 under tensor parallelism (FSDP2), with torch AMP as --set says.
    wide = run_cli("train", str(path), "--dry-run", "--world", "128",
                   "--set", "fp16=dict(mode=AMP_TYPE.TORCH)")
    assert wide.returncode == 0 and "x data 2" in wide.stdout
    # torch AMP under a pipeline is not provided: the dry run says so and why, it does not refuse.
    assert "# not runnable as it is: precision 'fp16' under pipeline parallelism" in wide.stdout
    bad = run_cli("train", str(path), "--world", "128")
    assert bad.returncode == 2 and "--world plans a dry run" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def test_dry_run_lists_ignored_keys_once():
    path = FIXTURES / "ColossalAI-Examples/features/zero/config/config_level_2.py"
    result = run_cli("train", str(path), "--dry-run")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.count("ignored: zero.cpu_offload") == 1
    assert "translated: zero.level=2 -> zero.stage=2" in out
    assert "translated: fp16 = dict(mode=None) -> no mixed precision (fp32)" in out
