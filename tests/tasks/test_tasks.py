"""A task lays a model's outputs out as predictions (prunebench.tasks): classification as they are, so the engine's
arithmetic is what it was; a task of one prediction per position (a language model's tokens) is scored by the same
evaluation, over its units, its ignored positions left out."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from prunebench.engine.evaluate import evaluate
from prunebench.tasks import CLASSIFICATION, TASKS, Metric, Task


class PerPosition(Task):
    """Scores (batch, positions, classes) against labels (batch, positions), -100 ignored, as a causal LM's."""

    name = "per_position"
    title = "per-position"
    ranking = Metric("test_loss", "test loss", higher_is_better=False)

    def predictions(self, out: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        scores, labels = out.reshape(-1, out.shape[-1]), y.reshape(-1)
        kept = labels != -100
        return scores[kept], labels[kept]


class Batches:
    """A split of fixed batches (the interface evaluate reads)."""

    def __init__(self, batches: list[tuple[Tensor, Tensor]]) -> None:
        self._batches = batches

    def batches(self, batch_size: int, **_: Any) -> Iterator[tuple[Tensor, Tensor]]:
        return iter(self._batches)


def test_classification_scores_the_outputs_as_they_are() -> None:
    assert TASKS["classification"] is CLASSIFICATION and CLASSIFICATION.ranking.higher_is_better
    out, y = torch.randn(4, 10), torch.tensor([1, 2, 3, 4])
    scores, labels = CLASSIFICATION.predictions(out, y)
    assert scores is out and labels is y  # the very tensors: the loop's arithmetic is unchanged


def test_a_per_position_task_is_evaluated_over_its_units() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(16, 8), nn.Linear(8, 5))
    x = torch.randint(0, 16, (3, 7))
    y = torch.randint(0, 5, (3, 7))
    y[0, :3] = -100  # positions a causal LM does not score
    split = Batches([(x[:2], y[:2]), (x[2:], y[2:])])
    task = PerPosition()
    result = evaluate(model, split, num_classes=5, batch_size=2, device=torch.device("cpu"), task=task)  # type: ignore[arg-type]
    with torch.no_grad():
        out = model(x)
    kept = y != -100
    expected_loss = F.cross_entropy(out[kept], y[kept]).item()
    expected_top1 = int((out[kept].argmax(1) == y[kept]).sum()) / int(kept.sum())
    assert abs(result.loss - expected_loss) < 1e-6 and abs(result.top1 - expected_top1) < 1e-9
    # Read as classification, the same outputs cannot even be scored: the task is what decides.
    try:
        evaluate(model, split, num_classes=5, batch_size=2, device=torch.device("cpu"))  # type: ignore[arg-type]
    except (RuntimeError, ValueError, IndexError):
        pass
    else:
        raise AssertionError("per-position outputs scored as one class per example")
