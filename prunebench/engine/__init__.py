"""The engine: the one training loop (`loop`), evaluation (`evaluate`), what it reports as it works (`events`),
the seal on weights while method code runs (`guard`), optimizers and LR schedules (`optim`), seeds (`seeds`), a
stage's resumable state (`resume`), what DDP needs (`distributed`), and the adapters through which a method's
contexts reach the engine (`access`). The analyses of a job's weights are not the engine's: the runner measures
them from its reports (prunebench.analyses)."""

from prunebench.engine.access import EnginePruningAccess, EngineStepAccess
from prunebench.engine.evaluate import Evaluation, evaluate, state_copy
from prunebench.engine.events import EngineObserver, EpochReport, Snapshot
from prunebench.engine.guard import Seal
from prunebench.engine.loop import TRAINER_VERSION, Engine, overrides
from prunebench.engine.optim import build_optimizer, lr_factor
from prunebench.engine.resume import TrainState
from prunebench.engine.seeds import derive_seed

__all__ = [
    "TRAINER_VERSION",
    "Engine",
    "EngineObserver",
    "EnginePruningAccess",
    "EngineStepAccess",
    "EpochReport",
    "Evaluation",
    "Seal",
    "Snapshot",
    "TrainState",
    "build_optimizer",
    "derive_seed",
    "evaluate",
    "lr_factor",
    "overrides",
    "state_copy",
]
