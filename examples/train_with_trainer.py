"""Train with the Trainer: the loop, progress bar, metrics and run directory are built in.

    python examples/train_with_trainer.py --data ../shared/datasets/cifar10

Add behaviour with a hook (here: print the learning rate after every evaluation).
"""

import argparse

import vitscale


class PrintLR(vitscale.Hook):
    def on_eval_end(self, trainer, record):
        print(f"  lr after epoch {record['epoch']}: {record['lr']:.2e}")


parser = argparse.ArgumentParser()
parser.add_argument("--config", default="configs/cifar10/quick_cpu.py")
parser.add_argument("--data", help="CIFAR-10 folder (default: $DATA)")
parser.add_argument("--run-dir", default="runs/example_trainer")
parser.add_argument("--set", dest="overrides", action="append", default=[])
args = parser.parse_args()

cfg = vitscale.load_config(args.config, args.overrides)
engine = vitscale.build_engine(cfg, data=args.data)
summary = vitscale.Trainer(engine, run_dir=args.run_dir, hooks=[PrintLR()]).fit()
print(f"best test acc1 {summary['best_acc1']:.2f}%")
