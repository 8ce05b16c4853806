"""A classifier's outputs on every example of a split, and what the optional evaluations measure from them
(docs/analyses.md): expected calibration error, negative log-likelihood, accuracy per class, agreement.

Functions of logits take them as an (examples x classes) tensor, labels as int64 class indices.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

if TYPE_CHECKING:
    from prunebench.data import Split


@torch.no_grad()
def logits_of(
    model: nn.Module,
    split: Split,
    *,
    batch_size: int,
    device: torch.device,
    mixed_precision: bool = False,
    limit: int | None = None,
) -> tuple[Tensor, Tensor]:
    """(logits float32, labels int64) of every example of `split` in its order, on the CPU, in evaluation mode
    (bfloat16 autocast on CUDA when `mixed_precision`, as `evaluate` does); `limit`: the first that many batches."""
    was_training = model.training
    model.eval()
    amp = device.type == "cuda" and mixed_precision
    outs, labels = [], []
    for i, (x, y) in enumerate(split.batches(batch_size, shuffle=False, train=False, generator=None, device=device)):
        if limit is not None and i >= limit:
            break
        with torch.autocast("cuda", dtype=torch.bfloat16) if amp else nullcontext():
            outs.append(model(x).float().cpu())
        labels.append(y.cpu())
    model.train(was_training)
    return torch.cat(outs), torch.cat(labels)


def accuracy(logits: Tensor, labels: Tensor) -> float:
    """Top-1: the share of examples whose largest logit is their label's."""
    return float((logits.argmax(1) == labels).double().mean())


def negative_log_likelihood(logits: Tensor, labels: Tensor) -> float:
    """Mean over examples of -log softmax(logits)[label]: the test loss's definition (cross-entropy), in float64."""
    return float(F.cross_entropy(logits.double(), labels, reduction="mean"))


def expected_calibration_error(logits: Tensor, labels: Tensor, bins: int = 15) -> float:
    """Expected calibration error (Naeini et al. 2015; Guo et al. 2017, eq. 3): examples binned by confidence (the
    largest softmax probability) into `bins` equal-width bins (lo, hi] of [0, 1]; the sum over bins of the bin's
    share of examples times |its accuracy - its mean confidence|."""
    probs = torch.softmax(logits.double(), dim=1)
    confidence, predicted = probs.max(1)
    correct = (predicted == labels).double()
    edges = torch.linspace(0, 1, bins + 1, dtype=torch.float64)
    which = torch.bucketize(confidence, edges[1:-1], right=False)  # edges[i-1] < c <= edges[i] -> bin i
    n = len(labels)
    total = 0.0
    for b in range(bins):
        inside = which == b
        count = int(inside.sum())
        if count:
            total += count / n * abs(float(correct[inside].mean()) - float(confidence[inside].mean()))
    return total


def class_accuracy(predicted: Tensor, labels: Tensor, num_classes: int) -> list[float | None]:
    """Accuracy (recall) of each class: the share of its test examples predicted as it; None for a class with no
    test example."""
    out: list[float | None] = []
    for c in range(num_classes):
        mine = labels == c
        count = int(mine.sum())
        out.append(float((predicted[mine] == c).double().mean()) if count else None)
    return out


def agreement(a: Tensor, b: Tensor) -> float:
    """The share of examples on which two models' predicted classes are the same."""
    if a.shape != b.shape:
        raise ValueError(f"predictions of {len(a)} and {len(b)} examples")
    return float((a == b).double().mean())
