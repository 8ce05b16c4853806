"""The runner's optional evaluations of a job's final model beside its dense base model (the protocol's
`evaluation.robustness`, `calibration`, `forgetting`; docs/analyses.md), on the test split, by its own code.

The dense model's outcome is measured once per checkpoint in a runner process and kept: every job of a seed shares
it. The corrupted splits (prunebench.data.corruptions) are generated once per runner process and kept while all of
them fit in KEEP_BYTES (the quickstart's 45 take 1 MB, the CPU CIFAR protocol's 138 MB); beyond, each job generates
them again, one at a time.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from prunebench.data import Split
from prunebench.data.corruptions import corrupted_split
from prunebench.engine.predictions import (
    accuracy,
    agreement,
    class_accuracy,
    expected_calibration_error,
    logits_of,
    negative_log_likelihood,
)
from prunebench.protocol import EvaluationSpec
from prunebench.protocol.evaluations import ECE_BINS
from prunebench.results import (
    CalibrationRecord,
    EvaluationRecord,
    ForgettingRecord,
    RobustnessRecord,
    encode_labels,
)

KEEP_BYTES = 256 * 2**20  # corrupted splits a runner process keeps between jobs


@dataclass
class Outcome:
    """What the evaluations measured of one model: its clean test logits' derivatives and corruption accuracies."""

    predicted: Tensor
    ece: float
    nll: float
    class_top1: list[float | None]
    corrupted: dict[str, list[float]] = field(default_factory=dict)  # by corruption, per severity


class EvaluationMeasurement:
    """Measures a protocol's optional evaluations of a model and its dense base model on the test split."""

    def __init__(
        self,
        spec: EvaluationSpec,
        test: Split,
        *,
        num_classes: int,
        batch_size: int,
        device: torch.device,
        limit: int | None = None,
    ) -> None:
        self.spec, self.test, self.num_classes = spec, test, num_classes
        self.batch_size, self.device, self.limit = batch_size, device, limit
        self._dense: dict[str, Outcome] = {}  # by the dense checkpoint's sha256
        self._corrupted: dict[tuple[str, int], Split] = {}  # kept when they all fit in KEEP_BYTES
        self.labels: Tensor | None = None
        robustness = spec.robustness
        count = len(robustness.corruptions) * len(robustness.severities) if robustness is not None else 0
        images = getattr(test, "images", None)
        self._keep = images is not None and count * images.numel() <= KEEP_BYTES  # stored as uint8

    def record(
        self, model: nn.Module, dense: Callable[[], nn.Module], dense_sha256: str, *, mixed_precision: bool = False
    ) -> EvaluationRecord:
        """The evaluations of `model` beside those of its dense base model (`dense` builds it when its outcome,
        kept by `dense_sha256`, is not known yet)."""
        models = {"pruned": model}
        if dense_sha256 not in self._dense:
            models["dense"] = dense().to(self.device)
        outcomes = self._measure(models, mixed_precision)
        if "dense" in outcomes:
            self._dense[dense_sha256] = outcomes["dense"]
        return self._build(outcomes["pruned"], self._dense[dense_sha256])

    def _measure(self, models: dict[str, nn.Module], mixed_precision: bool) -> dict[str, Outcome]:
        out = {}
        for name, m in models.items():
            logits, labels = self._logits(m, self.test, mixed_precision)
            self.labels = labels
            out[name] = Outcome(
                predicted=logits.argmax(1),
                ece=expected_calibration_error(logits, labels, ECE_BINS),
                nll=negative_log_likelihood(logits, labels),
                class_top1=class_accuracy(logits.argmax(1), labels, self.num_classes),
            )
        robustness = self.spec.robustness
        if robustness is None:
            return out
        for corruption in robustness.corruptions:
            for severity in robustness.severities:
                split = self._corrupted.get((corruption, severity))
                if split is None:
                    split = corrupted_split(self.test, corruption, severity, robustness.seed)
                    if self._keep:
                        self._corrupted[(corruption, severity)] = split
                for name, m in models.items():
                    logits, labels = self._logits(m, split, mixed_precision)
                    out[name].corrupted.setdefault(corruption, []).append(accuracy(logits, labels))
        return out

    def _logits(self, model: nn.Module, split: Split, mixed_precision: bool) -> tuple[Tensor, Tensor]:
        return logits_of(
            model,
            split,
            batch_size=self.batch_size,
            device=self.device,
            mixed_precision=mixed_precision,
            limit=self.limit,
        )

    def _build(self, pruned: Outcome, dense: Outcome) -> EvaluationRecord:
        spec, parts = self.spec, {}
        if spec.robustness is not None:
            parts["robustness"] = RobustnessRecord(
                seed=spec.robustness.seed,
                severities=list(spec.robustness.severities),
                top1=pruned.corrupted,
                dense_top1=dense.corrupted,
                mean_top1=_mean_of(pruned.corrupted),
                dense_mean_top1=_mean_of(dense.corrupted),
            )
        if spec.calibration:
            parts["calibration"] = CalibrationRecord(
                bins=ECE_BINS, ece=pruned.ece, nll=pruned.nll, dense_ece=dense.ece, dense_nll=dense.nll
            )
        if spec.forgetting:
            assert self.labels is not None
            parts["forgetting"] = ForgettingRecord(
                class_top1=pruned.class_top1,
                dense_class_top1=dense.class_top1,
                agreement=agreement(pruned.predicted, dense.predicted),
                predictions=encode_labels(pruned.predicted.tolist(), self.num_classes),
                dense_predictions=encode_labels(dense.predicted.tolist(), self.num_classes),
                labels=encode_labels(self.labels.tolist(), self.num_classes),
            )
        return EvaluationRecord(**parts)


def _mean_of(by_corruption: dict[str, list[float]]) -> float:
    values = [v for per in by_corruption.values() for v in per]
    return math.fsum(values) / len(values)
