"""Train with the Engine in a loop of your own: vitscale builds model, optimizer, schedule,
precision and data from the config; you decide what happens around each step.

    python examples/train_with_engine.py --data ../shared/datasets/cifar10
"""

import argparse
import time

import vitscale

parser = argparse.ArgumentParser()
parser.add_argument("--config", default="configs/cifar10/quick_cpu.py")
parser.add_argument("--data", help="CIFAR-10 folder (default: $DATA)")
parser.add_argument("--run-dir", help="unused here: this loop writes no files")
parser.add_argument("--set", dest="overrides", action="append", default=[])
args = parser.parse_args()

cfg = vitscale.load_config(args.config, args.overrides)
engine = vitscale.build_engine(cfg, data=args.data)
print(f"{engine.plan.model_name}: {engine.num_parameters:,} parameters, "
      f"{engine.plan.steps_per_epoch} steps/epoch, {engine.precision.describe()}")

for epoch in range(cfg.NUM_EPOCHS):
    start = time.perf_counter()
    engine.train_loader.set_epoch(epoch)
    for images, labels in engine.train_loader:
        out = engine.train_step(images, labels)          # forward, backward, optimizer step
    metrics = engine.evaluate()
    print(f"epoch {epoch + 1}: last train loss {out.loss.item():.3f}, "
          f"test loss {metrics['loss']:.3f}, test acc1 {metrics['acc1']:.2f}%, "
          f"{time.perf_counter() - start:.1f}s")
