"""Soft masks as the engine applies them (prunebench.methods.SoftMasks, Savarese, Silva & Maire 2020): a score per
prunable weight, the parametrization w -> w * sigmoid(beta * s) / sigmoid(s0), the L1 penalty on the gates, the
temperature schedule and the scores' own SGD.

The scores and their optimizer belong to the job (one `SoftMaskState` on the engine, kept across train calls);
the parametrization is on the model only during a train call that declares soft masks, and is removed after it
with the original weights put back (leave_parametrized=False), so masks, rewinding and retraining apply to the
plain weights.
"""

from __future__ import annotations

import functools
import math
import operator

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from prunebench.methods.regularizers import SoftMasks


class SoftMask(nn.Module):
    """The parametrization weight -> weight * sigmoid(beta * s) / sigmoid(s0): the gate starts at 1 (s = s0,
    beta = 1) and approaches a hard 0/1 mask as beta grows."""

    def __init__(self, like: Tensor, initial: float) -> None:
        super().__init__()
        self.scores = nn.Parameter(torch.full_like(like, initial))
        self.beta = 1.0
        self.scale = 1.0 / (1.0 / (1.0 + math.exp(-initial)))

    def gate(self) -> Tensor:
        return torch.sigmoid(self.beta * self.scores) * self.scale

    def forward(self, weight: Tensor) -> Tensor:
        return weight * self.gate()


class SoftMaskState:
    """One job's soft masks: the scores by weight name (execution order), their SGD optimizer (Nesterov momentum,
    no weight decay, its learning rate set at every step), and the declaration of the train call in progress."""

    def __init__(self, weights: dict[str, nn.Parameter], declared: SoftMasks) -> None:
        self.first = declared
        self.masks = {name: SoftMask(w.detach(), declared.initial) for name, w in weights.items()}
        momentum = declared.momentum
        self.optimizer = torch.optim.SGD(
            [m.scores for m in self.masks.values()], lr=declared.lr or 0.1, momentum=momentum, nesterov=momentum > 0
        )
        self.declared: SoftMasks | None = None  # while a train call applies them
        self.epoch = 0  # within the train call

    def begin(self, declared: SoftMasks, epochs: int, *, fresh: bool) -> None:
        """Start a train call of `epochs` epochs under `declared`: check it against the first declaration (the
        scores' initial value and optimizer are the job's), reset scores an earlier call left, set beta."""
        if len(declared.temperatures) != epochs:
            raise ValueError(
                f"soft masks declare {len(declared.temperatures)} temperatures for a train call of {epochs} epochs "
                "(one per epoch)"
            )
        first = self.first
        if (declared.initial, declared.momentum) != (first.initial, first.momentum):
            raise ValueError(
                f"soft masks keep their initial value and optimizer over the job: this train call declares initial "
                f"{declared.initial:g}, momentum {declared.momentum:g}; the first declared {first.initial:g}, "
                f"{first.momentum:g}"
            )
        if not fresh and declared.reset != "keep":
            self._reset(declared)
        self.declared = declared
        self._set_epoch(0)

    @torch.no_grad()
    def _reset(self, declared: SoftMasks) -> None:
        """s <- min(t * s, s0): t the temperature the scores ended at (`last`), or 1 (`one`: the authors' main.py
        sets the temperature back to 1 first, so surviving scores restart equal and pruned ones keep their value)."""
        for m in self.masks.values():
            if declared.reset == "last":
                m.scores.mul_(m.beta)
        for m in self.masks.values():
            m.scores.clamp_(max=declared.initial)

    def _set_epoch(self, epoch: int) -> None:
        assert self.declared is not None
        self.epoch = epoch
        betas = self.declared.temperatures
        for m in self.masks.values():
            m.beta = betas[min(epoch, len(betas) - 1)]

    def attach(self, model: nn.Module) -> None:
        modules = dict(model.named_modules())
        for name, mask in self.masks.items():
            module_name, _, attr = name.rpartition(".")
            parametrize.register_parametrization(modules[module_name], attr, mask)

    def detach(self, model: nn.Module) -> None:
        modules = dict(model.named_modules())
        for name in self.masks:
            module_name, _, attr = name.rpartition(".")
            module = modules[module_name]
            if parametrize.is_parametrized(module, attr):
                parametrize.remove_parametrizations(module, attr, leave_parametrized=False)
        self.declared = None

    def penalty(self) -> Tensor | None:
        """penalty * the L1 norm of the gates, or None when the penalty is 0."""
        assert self.declared is not None
        penalty = self.declared.penalty
        if penalty == 0:
            return None
        return penalty * functools.reduce(operator.add, (m.gate().sum() for m in self.masks.values()))

    def step(self, lr: float) -> None:
        """One step of the scores, at the declared learning rate or else `lr` (the engine's, at this step)."""
        assert self.declared is not None
        lr = self.declared.lr or lr
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def end_epoch(self) -> None:
        """beta moves on to the next epoch's temperature (before the epoch is evaluated)."""
        self._set_epoch(self.epoch + 1)

    def scores(self) -> dict[str, Tensor]:
        return {name: m.scores.detach().clone() for name, m in self.masks.items()}
