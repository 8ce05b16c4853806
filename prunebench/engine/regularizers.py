"""Declared regularizers (prunebench.methods.regularizers), applied by the engine inside its own training step.

A method declares them for a train call of the pruning stage (`PruningContext.train(..., regularizers=...)`); the
loop (prunebench.engine.loop) asks this module, at fixed points of every step and epoch, for:

- `begin()`: the declarations of a call checked and set up (a `GroupSparsity`'s groups against the model:
  prunebench.engine.group_sparsity);
- `terms()`: what the declarations add to the objective, in the order declared (added where a method's
  `loss_term` is added: loss + extra);
- `parameter_ids()`: the parameters they add (soft-mask scores), which the engine's optimizer, weight decay and
  gradient clipping leave out;
- `step(lr)`: after the engine's optimizer step and the masks applied again, the scores' own step at that step's
  learning rate; `end_epoch()`: after an epoch, before it is evaluated, the next temperature;
- `end()`: the parametrization removed after the call (the scores stay, for the job's later calls).
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn

from prunebench.engine.group_sparsity import GroupSparsityTerm
from prunebench.engine.soft_masks import SoftMaskState
from prunebench.methods.regularizers import (
    BatchNormL1,
    GroupLasso,
    GroupSparsity,
    Regularizer,
    SoftMasks,
    validate_regularizers,
)


def batch_norm_l1(model: nn.Module, coefficient: float) -> Tensor | None:
    """coefficient * sum |gamma| over the BatchNorm scales of `model` (Liu et al. 2017); None without any."""
    scales = [
        m.weight for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.weight is not None
    ]
    if coefficient == 0 or not scales:
        return None
    return coefficient * functools.reduce(operator.add, (g.abs().sum() for g in scales))


def group_lasso(weights: Iterable[Tensor], coefficient: float) -> Tensor | None:
    """coefficient * sum of the L2 norms of the filters (output channels) of the convolution weights among
    `weights` (Wen et al. 2016); None without any."""
    convs = [w for w in weights if w.dim() > 2]
    if coefficient == 0 or not convs:
        return None
    return coefficient * functools.reduce(
        operator.add, (torch.linalg.vector_norm(w.flatten(1), dim=1).sum() for w in convs)
    )


class Regularization:
    """The declared regularizers of one engine's job: the soft masks' state, kept over its train calls, and the
    declarations of the call in progress (none between calls)."""

    def __init__(self, model: nn.Module, weights: dict[str, nn.Parameter]) -> None:
        self.model = model
        self.weights = weights  # the prunable weights (the engine's MaskSet's), by name
        self.soft: SoftMaskState | None = None
        self.declared: tuple[Regularizer, ...] = ()
        self.group_sparsity: GroupSparsityTerm | None = None  # the call's, checked against the model

    def begin(self, declared: Iterable[Any], epochs: int) -> None:
        """Apply `declared` (declarations or their model_dump(), validated here) to a train call of `epochs`
        epochs: soft masks get their state (new in the job's first such call) and are attached to the model.
        Raises ValueError for a declaration the engine cannot apply."""
        self.declared, self.group_sparsity = (), None
        declared = validate_regularizers(declared)
        grouped = next((r for r in declared if isinstance(r, GroupSparsity)), None)
        group_sparsity = GroupSparsityTerm(self.model, grouped) if grouped is not None else None
        soft = next((r for r in declared if isinstance(r, SoftMasks)), None)
        if soft is not None:
            fresh = self.soft is None
            state = SoftMaskState(self.weights, soft) if self.soft is None else self.soft
            state.begin(soft, epochs, fresh=fresh)
            self.soft = state
            state.attach(self.model)
        self.declared, self.group_sparsity = declared, group_sparsity

    @property
    def _soft(self) -> SoftMaskState | None:
        """The soft masks, while a call that declares them is in progress."""
        return self.soft if self.soft is not None and self.soft.declared is not None else None

    def parameter_ids(self) -> set[int]:
        soft = self._soft
        return {id(m.scores) for m in soft.masks.values()} if soft is not None else set()

    def terms(self) -> list[Tensor]:
        out: list[Tensor | None] = []
        for r in self.declared:
            if isinstance(r, SoftMasks):
                out.append(self._soft.penalty() if self._soft is not None else None)
            elif isinstance(r, BatchNormL1):
                out.append(batch_norm_l1(self.model, r.coefficient))
            elif isinstance(r, GroupLasso):
                out.append(group_lasso(self.weights.values(), r.coefficient))
            elif isinstance(r, GroupSparsity) and self.group_sparsity is not None:
                out.append(self.group_sparsity())
        return [t for t in out if t is not None]

    def step(self, lr: float) -> None:
        if self._soft is not None:
            self._soft.step(lr)

    def end_epoch(self) -> None:
        if self._soft is not None:
            self._soft.end_epoch()

    def end(self) -> None:
        """Remove what the call attached; nothing when no call is in progress."""
        if self._soft is not None:
            self._soft.detach(self.model)
        self.declared, self.group_sparsity = (), None

    def scores(self) -> dict[str, Tensor]:
        """A copy of the learned soft-mask scores by weight name; empty when no call declared soft masks."""
        return self.soft.scores() if self.soft is not None else {}
