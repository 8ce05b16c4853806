"""The engine: the one training loop and evaluation (`loop`), optimizers and LR schedules (`optim`), seeds
(`seeds`), and the per-epoch analyses it records (`analyses`)."""

from prunebench.engine.analyses import Analyses
from prunebench.engine.loop import TRAINER_VERSION, AnalysisCallback, Engine, EpochCallback, Evaluation, state_copy
from prunebench.engine.optim import build_optimizer, lr_factor
from prunebench.engine.seeds import derive_seed

__all__ = [
    "TRAINER_VERSION",
    "Analyses",
    "AnalysisCallback",
    "Engine",
    "EpochCallback",
    "Evaluation",
    "build_optimizer",
    "derive_seed",
    "lr_factor",
    "state_copy",
]
