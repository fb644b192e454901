"""Config files in the seeds' format: loading, overrides, types, validation, derived values."""

from __future__ import annotations

import textwrap

import pytest

from vitscale import AMP_TYPE, ConfigError, config_from_dict, load_config
from vitscale.plan import make_plan

# Seed 000's ImageNet config, verbatim, with its colossalai import line removed.
SEED_000 = textwrap.dedent("""\
    TOTAL_BATCH_SIZE = 4096
    LEARNING_RATE = 3e-3
    WEIGHT_DECAY = 0.3

    NUM_EPOCHS = 300
    WARMUP_EPOCHS = 32

    # data parallel only
    TENSOR_PARALLEL_SIZE = 1
    TENSOR_PARALLEL_MODE = None

    # parallelism setting
    parallel = dict(
        pipeline=1,
        tensor=dict(mode=TENSOR_PARALLEL_MODE, size=TENSOR_PARALLEL_SIZE),
    )

    fp16 = dict(mode=AMP_TYPE.TORCH, ) # amp setting

    gradient_accumulation = 2 # accumulate 2 steps for gradient update

    BATCH_SIZE = TOTAL_BATCH_SIZE // gradient_accumulation # actual batch size for dataloader

    clip_grad_norm = 1.0 # clip gradient with norm 1.0
    """)


def write(tmp_path, text: str, name: str = "cfg.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_seed_000_imagenet_config_loads(tmp_path):
    cfg = load_config(write(tmp_path, SEED_000))
    assert cfg.TOTAL_BATCH_SIZE == 4096 and cfg.BATCH_SIZE == 2048
    assert cfg.LEARNING_RATE == 3e-3 and cfg.WEIGHT_DECAY == 0.3
    assert cfg.NUM_EPOCHS == 300 and cfg.WARMUP_EPOCHS == 32.0
    assert cfg.fp16.mode is AMP_TYPE.TORCH and cfg.precision == "fp16"
    assert cfg.gradient_accumulation == 2 and cfg.clip_grad_norm == 1.0
    assert cfg.parallel.pipeline == 1 and cfg.parallel.tensor.size == 1
    assert cfg.parallel.tensor.mode is None
    plan = make_plan(cfg, world_size=1)
    assert (plan.global_batch, plan.per_device_batch, plan.accumulation) == (4096, 2048, 2)


def test_amp_type_importable_and_predefined(tmp_path):
    from vitscale.precision import AMP_TYPE as inner
    assert AMP_TYPE is inner
    cfg = load_config(write(tmp_path, "BATCH_SIZE = 8\nfp16 = dict(mode=AMP_TYPE.TORCH)\n"))
    assert cfg.fp16.mode is AMP_TYPE.TORCH


def test_set_pins_a_key_before_the_file_runs(tmp_path):
    path = write(tmp_path, SEED_000)
    cfg = load_config(path, ["TOTAL_BATCH_SIZE=512", "gradient_accumulation=4"])
    # BATCH_SIZE = TOTAL_BATCH_SIZE // gradient_accumulation is recomputed from the new values.
    assert cfg.TOTAL_BATCH_SIZE == 512 and cfg.gradient_accumulation == 4
    assert cfg.BATCH_SIZE == 128


def test_set_parses_literals_words_and_nested_keys(tmp_path):
    path = write(tmp_path, "BATCH_SIZE = 8\n")
    cfg = load_config(path, ["MODEL=vit_small_patch16_224", "BETAS=(0.9, 0.95)",
                             "fp16.mode=AMP_TYPE.TORCH", "parallel.tensor.depth=2",
                             "clip_grad_norm=None", "CHECKPOINT=True"])
    assert cfg.MODEL == "vit_small_patch16_224" and cfg.BETAS == (0.9, 0.95)
    assert cfg.fp16.mode is AMP_TYPE.TORCH and cfg.parallel.tensor.depth == 2
    assert cfg.clip_grad_norm is None and cfg.CHECKPOINT is True


@pytest.mark.parametrize("text, overrides, message", [
    ("LEARNING_RAT = 1e-3\n", [], "unknown key 'LEARNING_RAT' (did you mean 'LEARNING_RATE'?)"),
    ("BATCH_SIZE = 8\n", ["NUM_EPOCH=3"], "--set NUM_EPOCH: unknown key (did you mean 'NUM_EPOCHS'?)"),
    ("BATCH_SIZE = 8\nparallel = dict(tensor=dict(sise=2))\n", [],
     "unknown key parallel.tensor.sise (did you mean 'size'?)"),
    ("NUM_EPOCHS = 'ten'\n", [], "NUM_EPOCHS='ten' has the wrong type: expected int"),
    ("BATCH_SIZE = 8.5\n", [], "BATCH_SIZE=8.5 has the wrong type"),
    ("CHECKPOINT = 1\n", [], "CHECKPOINT=1 has the wrong type: expected bool"),
    ("precision = 'fp8'\n", [], "precision='fp8' is not allowed"),
    ("fp16 = dict(mode='fast')\n", [], "fp16.mode='fast' has the wrong type"),
    ("BATCH_SIZE = 8\n", ["BATCH_SIZE"], "expected KEY=VALUE"),
    ("x = 1 +\n", [], "syntax error"),
    ("BATCH_SIZE = 1 / 0\n", [], "config file raised ZeroDivisionError"),
    ("import not_a_module_of_anyone\nBATCH_SIZE = 8\n", [],
     "import of 'not_a_module_of_anyone' failed"),
])
def test_bad_config_is_one_clear_error(tmp_path, text, overrides, message):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), overrides)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("values, message", [
    ({"TOTAL_BATCH_SIZE": 100, "gradient_accumulation": 3}, "not divisible by data-parallel size"),
    ({"TOTAL_BATCH_SIZE": 512, "BATCH_SIZE": 100}, "not divisible by BATCH_SIZE 100"),
    ({"TOTAL_BATCH_SIZE": 512, "BATCH_SIZE": 100, "gradient_accumulation": 2},
     "BATCH_SIZE=100 contradicts TOTAL_BATCH_SIZE"),
    ({}, "neither BATCH_SIZE nor TOTAL_BATCH_SIZE is set"),
    ({"BATCH_SIZE": 8, "MODEL": "vit_lite_7_3"}, "did you mean 'vit_lite_7_4'"),
    ({"BATCH_SIZE": 8, "MODEL": "vit_lite_7_4", "PATCH_SIZE": 5}, "IMG_SIZE=32 is not divisible by PATCH_SIZE=5"),
    ({"BATCH_SIZE": 8, "MODEL": "vit_lite_7_4", "NUM_HEADS": 3}, "HIDDEN_SIZE=256 is not divisible by NUM_HEADS=3"),
    ({"BATCH_SIZE": 8, "DATASET": "cifar10", "NUM_CLASSES": 100}, "set NUM_CLASSES = 10"),
    ({"BATCH_SIZE": 8, "MODEL": "vit_lite_7_4", "HIDDEN_SIZE": 64}, None),  # variant + override
    ({"BATCH_SIZE": 8, "HIDDEN_SIZE": 64, "NUM_HEADS": 3}, "HIDDEN_SIZE=64 is not divisible"),
    ({"BATCH_SIZE": 8, "WARMUP_EPOCHS": 20, "NUM_EPOCHS": 10}, "warmup (125000 steps) is longer"),
    ({"BATCH_SIZE": 8, "WARMUP_EPOCHS": 1, "WARMUP_STEPS": 5}, "keep one"),
    ({"BATCH_SIZE": 8, "LR_SCHEDULE": "multistep"}, "needs LR_MILESTONES"),
    ({"BATCH_SIZE": 8, "LR_MILESTONES": (5, 2)}, "must be increasing"),
    ({"BATCH_SIZE": 8, "OPTIMIZER": "adam"}, "did you mean 'adamw'"),
    ({"BATCH_SIZE": 8, "fp16": {"mode": AMP_TYPE.APEX}}, "needs NVIDIA apex"),
    ({"BATCH_SIZE": 8, "parallel": {"tensor": {"mode": "1d", "size": 4}}},
     "world size 1 is not divisible by pipeline x tensor = 1 x 4"),
    ({"BATCH_SIZE": 8, "parallel": {"tensor": {"size": 2}}}, "needs a mode"),
    ({"BATCH_SIZE": 8, "TENSOR_PARALLEL_SIZE": 2}, "TENSOR_PARALLEL_SIZE=2 differs"),
    ({"BATCH_SIZE": 8, "SEQ_LENGTH": 50}, "SEQ_LENGTH=50 does not match"),
    ({"BATCH_SIZE": 8, "fp16": {"mode": AMP_TYPE.TORCH}, "precision": "bf16"}, "conflicts"),
    ({"BATCH_SIZE": 100_000}, "larger than the 50000 training images"),
    ({"BATCH_SIZE": 8, "LEARNING_RATE": -1.0}, "LEARNING_RATE=-1.0 is out of range"),
])
def test_impossible_combinations_stop_before_work(values, message):
    if message is None:
        make_plan(config_from_dict(values))
        return
    with pytest.raises(ConfigError, match=None) as info:
        make_plan(config_from_dict(values))
    assert message in str(info.value)


def test_resolved_config_round_trips(tmp_path):
    cfg = load_config(write(tmp_path, SEED_000), ["MODEL=vit_small_patch16_224"])
    again = load_config(write(tmp_path, cfg.to_python(), "resolved.py"))
    assert again == cfg


def test_helper_names_with_underscore_are_ignored(tmp_path):
    cfg = load_config(write(tmp_path, "_BASE = 64\nBATCH_SIZE = _BASE * 2\nimport math\n"))
    assert cfg.BATCH_SIZE == 128


def test_derived_values_for_the_shipped_configs():
    from pathlib import Path
    configs = Path(__file__).resolve().parents[1] / "configs"
    lite = make_plan(load_config(configs / "cifar10" / "vit_lite_7_4.py"))
    assert lite.model_name == "vit_lite_7_4" and lite.global_batch == 512
    assert lite.steps_per_epoch == 50_000 // 512 and lite.precision == "bf16"
    assert lite.warmup_steps == 10 * lite.steps_per_epoch and lite.peak_lr == pytest.approx(2e-3)


@pytest.mark.parametrize("world, parallel, message", [
    (4, {"tensor": {"mode": "2d", "size": 3}}, "'2d' needs a square size"),
    (8, {"tensor": {"mode": "2.5d", "size": 8, "depth": 3}}, "'2.5d' needs size = depth x q^2"),
    (4, {"tensor": {"mode": "3d", "size": 4}}, "'3d' needs a cube size"),
    (8, {"tensor": {"mode": "1d", "size": 8}}, "NUM_HEADS=4, HIDDEN_SIZE=256"),
    (8, {"pipeline": 8}, "DEPTH=7 blocks"),
    (6, {"tensor": {"mode": "1d", "size": 4}},
     "world size 6 is not divisible by pipeline x tensor = 1 x 4"),

    # A layout that is valid but not run yet is refused before the world size is checked.
    (8, {"pipeline": 2, "tensor": {"mode": "1d", "size": 4, "sequence_parallel": True}},
     "sequence_parallel: not provided yet"),
    (4, {"pipeline": 2, "pipeline_schedule": "interleaved_1f1b"}, "set parallel.pipeline_chunks=2"),
    (4, {"pipeline": 2, "pipeline_chunks": 2}, "runs one stage per rank"),
    (4, {"pipeline": 4, "pipeline_schedule": "interleaved_1f1b", "pipeline_chunks": 2},
     "pipeline=4 x pipeline_chunks=2 stages but DEPTH=7 blocks"),
    (4, {"tensor": {"mode": "2d", "size": 4, "sequence_parallel": True}}, "is a 1D option"),
])
def test_impossible_parallel_layouts_are_one_line(world, parallel, message):
    cfg = config_from_dict({"BATCH_SIZE": 8, "MODEL": "vit_lite_7_4", "parallel": parallel})
    with pytest.raises(ConfigError) as info:
        make_plan(cfg, world_size=world)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_zbv_schedule_is_refused_on_a_torch_that_fails_it(monkeypatch):
    """torch 2.11's ZBV schedule fails its first step on gloo (measured): one line at start."""
    import torch
    monkeypatch.setattr(torch, "__version__", "2.11.0+cu130")
    cfg = config_from_dict({"BATCH_SIZE": 8, "MODEL": "vit_lite_7_4", "parallel": {
        "pipeline": 2, "pipeline_schedule": "zbv_zero_bubble", "pipeline_chunks": 2}})
    with pytest.raises(ConfigError) as info:
        make_plan(cfg, world_size=2)
    assert "use torch >= 2.14, or 'interleaved_zero_bubble'" in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("world, values, message", [
    # The grid modes split more than heads and width, each said in one line with its divisor.
    (8, {"parallel": {"tensor": {"mode": "3d", "size": 8}}, "HIDDEN_SIZE": 34, "NUM_HEADS": 2},
     "splits HIDDEN_SIZE 4 ways, but it is 34"),
    (4, {"parallel": {"tensor": {"mode": "2d", "size": 4}}, "MLP_DIM": 99},
     "splits the MLP width"),
    (4, {"parallel": {"tensor": {"mode": "2d", "size": 4}}, "BATCH_SIZE": 3},
     "batch of 3 images 2 ways"),
    (8, {"parallel": {"tensor": {"mode": "2.5d", "size": 8, "depth": 2}}, "BATCH_SIZE": 6},
     "batch of 6 images 4 ways"),
    (8, {"parallel": {"tensor": {"mode": "3d", "size": 8}}, "zero": {"stage": 2}}, None),
    (16, {"parallel": {"tensor": {"mode": "3d", "size": 8}}, "zero": {"stage": 2}},
     "zero stage 2 with tensor mode '3d' is not run yet"),
    (4, {"parallel": {"tensor": {"mode": "2d", "size": 4}}}, None),
    # Under a pipeline each grid rank cuts its own share of the batch into the micro-batches.
    (8, {"parallel": {"pipeline": 2, "tensor": {"mode": "2d", "size": 4}}}, None),
    (16, {"parallel": {"pipeline": 2, "tensor": {"mode": "3d", "size": 8}}}, None),
    (8, {"parallel": {"pipeline": 2, "tensor": {"mode": "2d", "size": 4}},
         "NUM_MICRO_BATCHES": 8}, "does not divide the 4 images each rank of the 2d grid"),
])
def test_grid_modes_check_what_they_split(world, values, message):
    cfg = config_from_dict({"BATCH_SIZE": 8, "MODEL": "vit_lite_7_4", **values})
    if message is None:
        make_plan(cfg, world_size=world)
        return
    with pytest.raises(ConfigError) as info:
        make_plan(cfg, world_size=world)
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("world, values, message", [
    # apex O1 patches functions for plain tensors; TP and FSDP2 hold DTensors.
    (2, {"fp16": {"mode": AMP_TYPE.APEX}, "parallel": {"tensor": {"mode": "1d", "size": 2}}},
     "apex O1) patches torch functions"),
    (2, {"fp16": {"mode": AMP_TYPE.APEX}, "zero": {"stage": 3}}, "apex O1) patches"),
    # Naive fp16's fp32 masters would duplicate FSDP2's sharded fp32 parameters.
    (4, {"fp16": {"mode": AMP_TYPE.NAIVE}, "zero": {"stage": 2}}, "AMP_TYPE.NAIVE keeps fp32"),
    (4, {"fp16": {"mode": AMP_TYPE.NAIVE}, "parallel": {"tensor": {"mode": "1d", "size": 2}}},
     "data parallelism under tensor parallelism runs on FSDP2"),
    # ... and where no FSDP2 runs, they are fine: naive fp16 with tensor parallelism alone,
    # torch AMP fp16 with FSDP2 (its scaler agrees across ranks on overflows).
    (2, {"fp16": {"mode": AMP_TYPE.NAIVE}, "parallel": {"tensor": {"mode": "1d", "size": 2}}}, None),
    (4, {"fp16": {"mode": AMP_TYPE.TORCH}, "zero": {"stage": 3}}, None),
    # Dropout on uneven token shards would desynchronise the ranks' random streams.
    (2, {"DROP_RATE": 0.1, "parallel": {"tensor": {"mode": "1d", "size": 2,
                                                    "sequence_parallel": True}}},
     "splits N=65 tokens unevenly over 2 ranks"),
    (2, {"DROP_PATH_RATE": 0.1, "parallel": {"tensor": {"mode": "1d", "size": 2,
                                                         "sequence_parallel": True}}}, None),
])
def test_modes_that_cannot_run_under_a_layout_are_refused(world, values, message):
    cfg = config_from_dict({"BATCH_SIZE": 8, "MODEL": "vit_lite_7_4", **values})
    if message is None:
        make_plan(cfg, world_size=world)
        return
    with pytest.raises(ConfigError) as info:
        make_plan(cfg, world_size=world)
    assert message in str(info.value) and "\n" not in str(info.value)



def test_data_parallel_size_is_derived_and_ranks_are_laid_out_like_colossal_ai():
    plan = make_plan(config_from_dict({"BATCH_SIZE": 8, "MODEL": "vit_lite_7_4"}), world_size=4)
    dims = plan.dims
    assert (dims.data, dims.pipeline, dims.tensor) == (4, 1, 1) and plan.global_batch == 32
    from vitscale.distributed.mesh import ParallelDims
    d = ParallelDims(world=16, pipeline=2, tensor=4, data=2)
    # rank = data_rank * (P * T) + pipeline_rank * T + tensor_rank
    assert d.coordinates(13) == (1, 1, 1) and d.coordinates(6) == (0, 1, 2)


def test_every_shipped_config_plans_its_own_layout():
    """configs/**: each loads and plans on the smallest world its layout needs (those that
    need pipeline parallelism too: a dry run plans what a launch would refuse)."""
    from pathlib import Path
    configs = sorted((Path(__file__).resolve().parents[1] / "configs").rglob("*.py"))
    assert len(configs) >= 20
    for path in configs:
        cfg = load_config(path)
        t = cfg.parallel.tensor
        world = cfg.parallel.pipeline * t.size * (cfg.parallel.data or 1)
        plan = make_plan(cfg, world_size=world, runnable=False)
        assert plan.dims.tensor == t.size and plan.dims.pipeline == cfg.parallel.pipeline, path
