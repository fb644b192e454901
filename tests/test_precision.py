"""Precision modes: every mode steps on CPU; the naive loss scaler skips, backs off and grows."""

from __future__ import annotations

import pytest
import torch

from vitscale import build_engine, config_from_dict
from vitscale.precision import AMP_TYPE, DynamicLossScaler, ScalerSettings


def engine_for(extra: dict, seed_batch: int = 0):
    cfg = config_from_dict({"IMG_SIZE": 32, "PATCH_SIZE": 8, "HIDDEN_SIZE": 32, "DEPTH": 1,
                            "NUM_HEADS": 2, "BATCH_SIZE": 16, "NUM_EPOCHS": 1,
                            "LEARNING_RATE": 1e-3, "tf32": False, **extra})
    return build_engine(cfg, with_data=False, device="cpu")


def batch():
    g = torch.Generator().manual_seed(0)
    return torch.randn(16, 3, 32, 32, generator=g), torch.randint(0, 10, (16,), generator=g)


@pytest.mark.parametrize("mode, param_dtype, master", [
    ({}, torch.float32, False),
    ({"fp16": {"mode": AMP_TYPE.TORCH}}, torch.float32, False),
    ({"precision": "bf16"}, torch.float32, False),
    ({"fp16": {"mode": AMP_TYPE.NAIVE}}, torch.float16, True),
    ({"precision": "pure_bf16"}, torch.bfloat16, True),
])
def test_every_mode_trains_on_cpu(mode, param_dtype, master):
    engine = engine_for({**mode, "clip_grad_norm": 1.0})
    assert all(p.dtype == param_dtype for p in engine.model.parameters())
    opt_params = [p for g in engine.optimizer.param_groups for p in g["params"]]
    assert all(p.dtype == torch.float32 for p in opt_params)  # fp32 optimizer state always
    model_ids = {id(p) for p in engine.model.parameters()}
    assert all((id(p) in model_ids) != master for p in opt_params)  # masters are copies
    before = [p.detach().clone() for p in engine.model.parameters()]
    x, y = batch()
    losses = [engine.train_step(x, y).loss.item() for _ in range(3)]
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0]  # it learns the batch
    changed = [not torch.equal(a, b) for a, b in zip(before, engine.model.parameters())]
    assert all(changed)
    # The policy printed at start says what the engine does: the weights' dtype, the dtype the
    # model computes in, and whether fp32 master copies exist.
    text = engine.precision.describe()
    with torch.no_grad(), engine.precision.autocast():
        computed = engine.model(engine.precision.cast_input(x[:2])).dtype
    names = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16"}
    assert f"{names[param_dtype]} weights" in text, text
    assert names[computed] in text and (computed != param_dtype) == ("autocast" in text), text
    assert ("fp32 master weights" in text) == master, text


def test_naive_fp16_follows_fp32_closely():
    x, y = batch()
    ref, naive = engine_for({}), engine_for({"fp16": {"mode": AMP_TYPE.NAIVE}})
    for _ in range(3):
        a, b = ref.train_step(x, y).loss, naive.train_step(x, y).loss
    assert abs(a.item() - b.item()) < 2e-2
    for p, q in zip(ref.model.parameters(), naive.model.parameters()):
        torch.testing.assert_close(q.float(), p, rtol=0, atol=5e-3)


def test_loss_scaler_hysteresis_backoff_and_growth():
    s = DynamicLossScaler(ScalerSettings(init_scale=1024, growth_factor=2, backoff_factor=0.5,
                                         growth_interval=3, hysteresis=2, min_scale=64))
    s.update(True)
    assert s.scale == 1024  # first overflow spends the hysteresis budget only
    s.update(True)
    assert s.scale == 512
    s.update(True)
    assert s.scale == 256  # budget stays spent until the next growth
    for _ in range(3):
        s.update(False)
    assert s.scale == 512 and s.hysteresis_tracker == 2
    for _ in range(5):
        s.update(True)
    assert s.scale == 64  # never below min_scale
    state = s.state_dict()
    t = DynamicLossScaler(ScalerSettings())
    t.load_state_dict(state)
    assert t.state_dict() == state


def test_naive_mode_skips_an_overflowing_step_and_counts_it():
    # A loss scale beyond fp16's range (65504) makes every gradient inf: the step must be
    # skipped, the weights kept, and the scale backed off after `hysteresis` such steps.
    engine = engine_for({"fp16": {"mode": AMP_TYPE.NAIVE, "init_scale": 2.0**20,
                                  "hysteresis": 1, "backoff_factor": 2.0**-6,
                                  "growth_interval": 2, "growth_factor": 4.0}})
    x, y = batch()
    before = [p.detach().clone() for p in engine.model.parameters()]
    engine.train_step(x, y)
    assert engine.precision.skipped_steps == 1
    assert engine.precision.loss_scale == 2.0**14
    assert all(torch.equal(a, b) for a, b in zip(before, engine.model.parameters()))
    engine.train_step(x, y)
    engine.train_step(x, y)
    assert engine.precision.skipped_steps == 1
    assert engine.precision.loss_scale == 2.0**16  # grew once after 2 clean steps
    assert any(not torch.equal(a, b) for a, b in zip(before, engine.model.parameters()))


def test_torch_amp_scaler_options_reach_the_grad_scaler():
    engine = engine_for({"fp16": {"mode": AMP_TYPE.TORCH, "init_scale": 128.0,
                                  "growth_interval": 7}})
    assert engine.precision.scaler.get_scale() == 128.0
    assert engine.precision.scaler.get_growth_interval() == 7
