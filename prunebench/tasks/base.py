"""The contract of a task (prunebench.tasks)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import Tensor, nn

from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True)
class Metric:
    """A number a task's results are judged by: its name in records, its label on boards, and its direction."""

    name: str  # the field of a record's metrics (and of its base model's) that holds it
    label: str
    higher_is_better: bool
    percent: bool = False  # a fraction, shown as a percentage (accuracy); otherwise shown as it is (perplexity)


class Task:
    """How a model's outputs are scored: `outputs` runs the model on a batch's inputs, `predictions` lays the
    outputs and the batch's targets out as (scores [units, classes], labels [units]), one unit per prediction (an
    image; a token), so that the loss (cross-entropy) and top-k hits are computed once, for every task, by the
    engine (prunebench.engine.loop, prunebench.engine.evaluate). `ranking` is the metric boards rank by."""

    name: ClassVar[str]
    title: ClassVar[str]
    ranking: ClassVar[Metric]

    def outputs(self, model: nn.Module, x: Tensor) -> Tensor:
        """The model's scores for a batch of inputs."""
        out: Tensor = model(x)
        return out

    def predictions(self, out: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """(scores [units, classes], labels [units]) of a batch's outputs and targets."""
        raise NotImplementedError
