"""What the optional evaluations measure from a classifier's outputs (prunebench.engine.predictions), against hand
computations: expected calibration error, negative log-likelihood (the test loss's definition), accuracy per class,
agreement."""

from __future__ import annotations

import math

import pytest
import torch

from prunebench.data import DataBundle
from prunebench.engine import evaluate
from prunebench.engine.predictions import (
    agreement,
    class_accuracy,
    expected_calibration_error,
    logits_of,
    negative_log_likelihood,
)
from prunebench.testing import seeded_model


def two_class(confidence: float, predicted: int) -> list[float]:
    """Logits of two classes whose softmax gives `predicted` the probability `confidence`."""
    logit = math.log(confidence / (1 - confidence))
    return [0.0, logit] if predicted == 1 else [logit, 0.0]


def test_expected_calibration_error_by_hand() -> None:
    # Confidences 0.9 (right), 0.9 (wrong), 0.62 (right), 0.95 (right); 15 bins of width 1/15:
    # 0.9 in (13/15, 14/15]: 2 examples, accuracy 0.5, confidence 0.9 -> 2/4 * 0.4  = 0.2
    # 0.62 in (9/15, 10/15]: accuracy 1, confidence 0.62            -> 1/4 * 0.38 = 0.095
    # 0.95 in (14/15, 1]:    accuracy 1, confidence 0.95            -> 1/4 * 0.05 = 0.0125
    logits = torch.tensor(
        [two_class(0.9, 1), two_class(0.9, 1), two_class(0.62, 0), two_class(0.95, 1)], dtype=torch.float64
    )
    labels = torch.tensor([1, 0, 0, 1])
    assert expected_calibration_error(logits, labels, 15) == pytest.approx(0.3075, abs=1e-12)
    # One bin: |mean accuracy - mean confidence| = |0.75 - 0.8425|
    assert expected_calibration_error(logits, labels, 1) == pytest.approx(0.0925, abs=1e-12)


def test_expected_calibration_error_takes_the_largest_probability_as_confidence() -> None:
    logits = torch.log(
        torch.tensor([[0.2, 0.7, 0.1], [0.5, 0.3, 0.2]], dtype=torch.float64)
    )  # confidences 0.7 (right), 0.5 (wrong)
    labels = torch.tensor([1, 2])
    assert expected_calibration_error(logits, labels, 15) == pytest.approx(0.5 * 0.3 + 0.5 * 0.5)


def test_negative_log_likelihood_by_hand_and_as_the_test_loss(digits_data: DataBundle) -> None:
    logits = torch.tensor([two_class(0.75, 1), two_class(0.6, 0)], dtype=torch.float64)
    expected = -(math.log(0.75) + math.log(0.6)) / 2
    assert negative_log_likelihood(logits, torch.tensor([1, 0])) == pytest.approx(expected, rel=1e-12)
    model = seeded_model("small_cnn", (1, 8, 8))
    assert digits_data.test is not None
    kwargs = {"batch_size": 100, "device": torch.device("cpu")}
    logits, labels = logits_of(model, digits_data.test, **kwargs)
    loss = evaluate(model, digits_data.test, num_classes=10, **kwargs).loss  # type: ignore[arg-type]
    assert negative_log_likelihood(logits, labels) == pytest.approx(loss, rel=1e-6)
    assert len(labels) == digits_data.test.num_examples


def test_accuracy_per_class_and_agreement_by_hand() -> None:
    predicted = torch.tensor([0, 0, 1, 2, 2, 2])
    labels = torch.tensor([0, 1, 1, 2, 2, 0])
    # class 0: examples 0 and 5, predicted 0 and 2; class 1: 1 and 2, predicted 0 and 1; class 2: both right
    assert class_accuracy(predicted, labels, 4) == [0.5, 0.5, 1.0, None]
    assert agreement(torch.tensor([0, 1, 2, 3]), torch.tensor([0, 1, 0, 3])) == 0.75
    with pytest.raises(ValueError):
        agreement(torch.tensor([0, 1]), torch.tensor([0]))
