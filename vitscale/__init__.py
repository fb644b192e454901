"""vitscale: train Vision Transformers from one Python config file, from a laptop CPU to a cluster.

    import vitscale
    cfg = vitscale.load_config("configs/cifar10/quick_cpu.py", ["NUM_EPOCHS=2"])
    summary = vitscale.Trainer(vitscale.build_engine(cfg, data="../shared/datasets/cifar10"),
                               run_dir="runs/demo").fit()
"""

__version__ = "0.1.0"

from .config import Config, config_from_dict, load_config  # noqa: E402
from .errors import ConfigError, DataError, VitscaleError  # noqa: E402
from .precision import AMP_TYPE  # noqa: E402
from .train import Engine, Hook, Trainer, build_engine  # noqa: E402

__all__ = ["AMP_TYPE", "Config", "ConfigError", "DataError", "Engine", "Hook", "Trainer",
           "VitscaleError", "__version__", "build_engine", "config_from_dict", "load_config"]
