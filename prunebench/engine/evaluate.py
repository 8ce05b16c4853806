"""Evaluation: loss, top-1 and top-5 of a model on a split, with the same code wherever it runs (the engine
during training, the runner when it measures a job's final weights)."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from prunebench.engine import distributed as ddp
from prunebench.tasks import CLASSIFICATION, Task

if TYPE_CHECKING:
    from prunebench.data import Split


@dataclass
class Evaluation:
    loss: float
    top1: float
    top5: float | None


def state_copy(model: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


@torch.no_grad()
def evaluate(
    model: nn.Module,
    split: Split,
    *,
    num_classes: int,
    batch_size: int,
    device: torch.device,
    top_k: tuple[int, ...] = (1, 5),
    mixed_precision: bool = False,
    limit: int | None = None,
    task: Task = CLASSIFICATION,
) -> Evaluation:
    """Mean cross-entropy, top-1 and top-5 (None unless asked for and there are more than 5 classes) over the
    split, in evaluation mode; bfloat16 autocast on CUDA when `mixed_precision` (the stage that trained the
    weights used it). `limit`: only the first that many batches (a smoke run, `run --limit`). The means are over
    the task's units of prediction (prunebench.tasks: an image; a token)."""
    was_training = model.training
    model.eval()
    amp = device.type == "cuda" and mixed_precision
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    correct1 = torch.zeros((), device=device, dtype=torch.long)
    correct5 = torch.zeros((), device=device, dtype=torch.long)
    n = 0
    k = min(5, num_classes)
    for i, (x, y) in enumerate(split.batches(batch_size, shuffle=False, train=False, generator=None, device=device)):
        if limit is not None and i >= limit:
            break
        x, y = ddp.shard(x, y)  # on several ranks, each evaluates its share; the sums are added below
        with torch.autocast("cuda", dtype=torch.bfloat16) if amp else nullcontext():
            out = task.outputs(model, x)
        scores, labels = task.predictions(out.float(), y)
        loss_sum += F.cross_entropy(scores, labels, reduction="sum").double()
        topk = scores.topk(k, dim=1).indices
        hits = topk == labels[:, None]
        correct1 += hits[:, 0].sum()
        correct5 += hits.any(1).sum()
        n += len(labels)
    model.train(was_training)
    if ddp.active():
        loss_sum, correct1, correct5 = ddp.all_sum(loss_sum), ddp.all_sum(correct1), ddp.all_sum(correct5)
        n = int(ddp.all_sum(torch.tensor(n, device=device)))
    top5 = float(correct5) / n if 5 in top_k and num_classes > 5 else None
    return Evaluation(loss=float(loss_sum) / n, top1=float(correct1) / n, top5=top5)
