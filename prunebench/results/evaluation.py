"""The records of the optional evaluations (the protocol's `evaluation.robustness`, `calibration`, `forgetting`;
docs/analyses.md): each measured by the runner on the job's final model and, beside it, on its dense base model.

Per-example predictions are stored compactly: a label string is the base64 of the class indices, one byte each
(two, little-endian, where there are more than 256 classes), in the test split's order (`encode_labels`).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Annotated

from pydantic import Field

from prunebench.results.base import Count, Fraction, Loss, Record

BASE64 = r"^[A-Za-z0-9+/]*={0,2}$"
MAX_LABELS = 2**24  # characters of a label string: 12 M test examples at one byte each
Labels = Annotated[str, Field(max_length=MAX_LABELS, pattern=BASE64)]


def label_width(num_classes: int) -> int:
    """Bytes per stored class index: 1 up to 256 classes, else 2."""
    return 1 if num_classes <= 256 else 2


def encode_labels(values: Sequence[int], num_classes: int) -> str:
    """Class indices in [0, num_classes) as a label string (see the module's docstring)."""
    if label_width(num_classes) == 1:
        return base64.b64encode(bytes(values)).decode("ascii")
    return base64.b64encode(b"".join(v.to_bytes(2, "little") for v in values)).decode("ascii")


def decode_labels(text: str, num_classes: int) -> list[int]:
    """The class indices of a label string (`encode_labels`)."""
    raw = base64.b64decode(text.encode("ascii"), validate=True)
    if label_width(num_classes) == 1:
        return list(raw)
    if len(raw) % 2:
        raise ValueError("a two-byte label string of odd length")
    return [int.from_bytes(raw[i : i + 2], "little") for i in range(0, len(raw), 2)]


class RobustnessRecord(Record):
    """Test top-1 on corrupted copies of the test split, generated from it (prunebench.data.corruptions): the
    corruptions of Hendrycks & Dietterich 2019 with the CIFAR-10-C code's parameters, not CIFAR-10-C's files."""

    seed: Count = Field(description="The seed the random corruptions were drawn with (evaluation.robustness.seed).")
    severities: list[Annotated[int, Field(ge=1, le=5)]] = Field(max_length=5, description="Severities, in order.")
    top1: dict[str, list[Fraction]] = Field(
        max_length=64, description="The pruned model's test top-1 by corruption, one per severity (in order)."
    )
    dense_top1: dict[str, list[Fraction]] = Field(max_length=64, description="Its dense base model's, alike.")
    mean_top1: Fraction = Field(description="Mean corruption accuracy: the mean of `top1` over every entry.")
    dense_mean_top1: Fraction = Field(description="The dense base model's mean corruption accuracy.")


class CalibrationRecord(Record):
    """How far confidence is from accuracy on the test split (Guo et al. 2017), and the test NLL."""

    bins: Count = Field(description="Equal-width confidence bins of the expected calibration error.")
    ece: Fraction = Field(description="The pruned model's expected calibration error (a fraction, not %).")
    nll: Loss = Field(description="Its negative log-likelihood per test example: the test loss's definition.")
    dense_ece: Fraction = Field(description="Its dense base model's expected calibration error.")
    dense_nll: Loss = Field(description="Its dense base model's negative log-likelihood.")


class ForgettingRecord(Record):
    """What the pruned model predicts on each test example beside its dense model (Hooker et al. 2019)."""

    class_top1: list[Fraction | None] = Field(
        max_length=100_000, description="The pruned model's accuracy (recall) per class; None: no test example."
    )
    dense_class_top1: list[Fraction | None] = Field(max_length=100_000, description="Its dense base model's.")
    agreement: Fraction = Field(description="Share of test examples on which its top-1 is its dense model's.")
    predictions: Labels = Field(description="Its top-1 class on every test example (a label string).")
    dense_predictions: Labels = Field(description="Its dense base model's top-1 class on every test example.")
    labels: Labels = Field(description="The test examples' labels, alike.")


class EvaluationRecord(Record):
    """The optional evaluations a protocol asked for; a field it did not ask for is absent."""

    robustness: RobustnessRecord | None = Field(None, exclude_if=lambda r: r is None)
    calibration: CalibrationRecord | None = Field(None, exclude_if=lambda r: r is None)
    forgetting: ForgettingRecord | None = Field(None, exclude_if=lambda r: r is None)
