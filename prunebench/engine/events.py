"""What the engine reports as it works, to whoever runs it.

The runner does not take a job's ledger from the process the method ran in: it counts again from these
reports (`prunebench.run.job.reports`), each made from the engine's own local counts at the moment they happen,
so a method that resets or edits the engine's ledger changes nothing the runner records. Dense base training's
reports only drive the display of how far a run has got.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import Tensor

    from prunebench.protocol import TrainingSpec
    from prunebench.results import EpochRecord


@dataclass
class EpochReport:
    """One epoch as the engine counted it: its steps, examples, and each step's FLOPs, in order."""

    stage: str
    total_epochs: int  # of this training run
    record: EpochRecord
    step_examples: list[int]
    step_flops: list[float]


class EngineObserver:
    """Receives the engine's reports; every method does nothing by default."""

    # Whether the reports carry tensors (a Snapshot): only when the runner measures something from them (test
    # curves, analyses), since copying them costs time.
    wants_snapshots: bool = False
    # Whether a retraining stage starts with a Snapshot all the same: the runner checks the weights retraining starts
    # from against the states the job held (prunebench.run.job.run); one copy of the model a job.
    wants_retraining_start: bool = True

    def stage_started(self, stage: str, spec: TrainingSpec, snapshot: Snapshot | None) -> None:
        """A training run of `stage` starts with recipe `spec`."""

    def scored(self, examples: int, flops: float) -> None:
        """A batch of scoring examples went forward (flops counts the backward pass when there was one)."""

    def reconstructed(self, names: list[str]) -> None:
        """The engine's declared solver (SparseGPT's, prunebench.engine.layerwise) rewrote these prunable weights
        where they are kept: the one way a method's pruning changes kept weights without training."""

    def epoch_ended(self, report: EpochReport, snapshot: Snapshot | None) -> None:
        """An epoch ended."""


@dataclass
class Snapshot:
    """The model at a report, on the CPU: `state` is the architecture's state dict as the model computes with it
    (a weight under a parametrization, such as a soft mask, as its parametrized value), `weights` the prunable
    weights themselves and `masks` their keep-masks."""

    state: dict[str, Tensor]
    weights: dict[str, Tensor]
    masks: dict[str, Tensor]
