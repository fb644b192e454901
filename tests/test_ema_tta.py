"""EMA of the weights (train/ema.py) and flip test-time augmentation (evaluate.py) on tiny
real CIFAR-10 runs: what is evaluated and exported equals the hand-computed quantity."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vitscale import ConfigError, Trainer, build_engine, load_config
from vitscale.plan import make_plan

from conftest import TINY

QUICK = "configs/cifar10/quick_cpu.py"


def _engine(cifar_dir, *extra):
    cfg = load_config(QUICK, TINY + ["NUM_EPOCHS=1", "tf32=False", *extra])
    return build_engine(cfg, data=cifar_dir, device="cpu")


def _weights(engine) -> list[torch.Tensor]:
    return [p.detach().clone() for p in engine.model.parameters()]


@pytest.mark.parametrize("warmup", [False, True])
def test_ema_evaluates_the_hand_computed_average_of_the_trajectory(cifar_dir, warmup):
    decay = 0.8
    engine = _engine(cifar_dir, f"EMA_DECAY={decay}", f"EMA_WARMUP={warmup}")
    ema = _weights(engine)                                  # starts at the initial weights
    engine.train_loader.set_epoch(0)
    for t, (x, y) in enumerate(engine.train_loader, start=1):
        engine.train_step(x, y)
        d = min(decay, (1 + t) / (10 + t)) if warmup else decay
        ema = [d * e + (1 - d) * w for e, w in zip(ema, _weights(engine))]
    trained = _weights(engine)
    assert not all(torch.allclose(e, w) for e, w in zip(ema, trained))
    with engine.ema_weights():
        for got, want in zip(engine.model.parameters(), ema):
            torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7)
    # evaluate() sees the average and puts the trained weights back, bit for bit.
    with_ema = engine.evaluate()
    assert all(torch.equal(a, b) for a, b in zip(engine.model.parameters(), trained))
    with torch.no_grad():
        for p, e in zip(engine.model.parameters(), ema):
            p.copy_(e)
    engine.ema = None
    by_hand = engine.evaluate()
    assert with_ema["loss"] == pytest.approx(by_hand["loss"], rel=1e-5)
    assert with_ema["acc1"] == pytest.approx(by_hand["acc1"], abs=0.2)


def test_tta_flip_averages_the_logits_of_each_image_and_its_mirror(cifar_dir):
    engine = _engine(cifar_dir, "TTA_FLIP=True")
    engine.train_loader.set_epoch(0)
    for x, y in engine.train_loader:
        engine.train_step(x, y)
    flipped = engine.evaluate()
    model = engine.model.eval()
    loss, hits, count = 0.0, 0, 0
    with torch.no_grad():
        for x, y in engine.eval_loader:
            logits = (model(x) + model(x.flip(-1))) / 2
            loss += F.cross_entropy(logits, y, reduction="sum").item()
            hits += (logits.argmax(-1) == y).sum().item()
            count += len(y)
    assert flipped["images"] == count
    assert flipped["loss"] == pytest.approx(loss / count, rel=1e-5)
    assert flipped["acc1"] == pytest.approx(100 * hits / count)
    engine.cfg.TTA_FLIP = False
    assert engine.evaluate()["loss"] != pytest.approx(flipped["loss"], rel=1e-6)


def test_run_exports_the_average_and_records_both_in_the_summary(cifar_dir, tmp_path):
    from vitscale.io import load_exported
    engine = _engine(cifar_dir, "EMA_DECAY=0.9", "TTA_FLIP=True", "tensorboard=False",
                     "report=False")
    summary = Trainer(engine, run_dir=tmp_path / "run", progress=False, console=False).fit()
    assert summary["ema_decay"] == 0.9 and summary["tta_flip"] is True
    model, meta = load_exported(tmp_path / "run" / "model_final.safetensors")
    for (name, p), s in zip(model.named_parameters(), engine.ema.shadow):
        assert torch.equal(p.detach(), s), name
    assert meta["config"]["TTA_FLIP"] is True


def test_ema_on_a_sharded_layout_is_refused_in_one_line():
    cfg = load_config(QUICK, TINY + ["EMA_DECAY=0.99",
                                     "parallel=dict(tensor=dict(size=2, mode='1d'))"])
    with pytest.raises(ConfigError, match="EMA_DECAY averages whole weights.*parallel.tensor"):
        make_plan(cfg, world_size=2)
    with pytest.raises(ConfigError, match="EMA_DECAY"):
        make_plan(load_config(QUICK, TINY + ["EMA_DECAY=1.5"]))
