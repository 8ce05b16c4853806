"""Optimizers and learning-rate schedules as the protocol names them."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from prunebench.protocol import OptimizerSpec, ScheduleSpec


def build_optimizer(params: Any, spec: OptimizerSpec) -> torch.optim.Optimizer:
    if spec.name == "sgd":
        return torch.optim.SGD(
            params,
            lr=spec.lr,
            momentum=spec.momentum,
            nesterov=spec.nesterov and spec.momentum > 0,
            weight_decay=spec.weight_decay,
        )
    if spec.name == "adam":
        return torch.optim.Adam(params, lr=spec.lr, weight_decay=spec.weight_decay)
    return torch.optim.AdamW(params, lr=spec.lr, weight_decay=spec.weight_decay)


def lr_factor(schedule: ScheduleSpec, epochs: int, steps_per_epoch: int, peak_lr: float) -> Callable[[int], float]:
    """Multiplier of the peak LR at each optimizer step (schedules are defined in epochs and
    applied per step, so warmup and cosine are smooth). A schedule with span_epochs / start_epoch is
    laid out over its span and entered at its start epoch (a window of a longer schedule)."""
    total = max(1, (schedule.span_epochs or epochs) * steps_per_epoch)
    warm = schedule.warmup_epochs * steps_per_epoch
    offset = round(schedule.start_epoch * steps_per_epoch)

    def factor(local_step: int) -> float:
        step = local_step + offset
        if warm and step < warm:
            return (step + 1) / warm
        epoch = step / steps_per_epoch
        if schedule.name == "step":
            assert schedule.step_size is not None
            return schedule.gamma ** math.floor(epoch / schedule.step_size)
        if schedule.name == "multistep":
            return schedule.gamma ** sum(1 for m in schedule.milestones if m <= epoch)
        if schedule.name == "cosine":
            decayed = min(1.0, (step - warm) / max(1.0, total - warm))  # the fraction of the decay done
            return 1.0 + (schedule.min_lr / peak_lr - 1.0) * 0.5 * (1 - math.cos(math.pi * decayed))
        return 1.0

    return factor
