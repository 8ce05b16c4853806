"""SNIP: single-shot pruning at initialization by connection sensitivity |g * w|."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from prunebench.methods import Masks, Method, MethodConfig, PruningContext, Taxonomy


def loss_gradients(
    model: nn.Module, names: Sequence[str], batches: Iterable[tuple[Tensor, Tensor]], *, temperature: float = 1.0
) -> tuple[list[Tensor], int]:
    """Gradients of the mean cross-entropy (of logits / temperature) over every example of `batches`
    with respect to the named parameters, accumulated batch by batch; and the number of examples."""
    params = [model.get_parameter(name) for name in names]
    grads = [torch.zeros_like(p) for p in params]
    seen = 0
    for x, y in batches:
        loss = F.cross_entropy(model(x) / temperature, y, reduction="sum")
        for g, d in zip(grads, torch.autograd.grad(loss, params, allow_unused=True), strict=True):
            if d is not None:
                g += d
        seen += len(y)
    if seen == 0:
        raise ValueError("no examples to score on (is the protocol's pruning.scoring_examples 0?)")
    return [g / seen for g in grads], seen


def snip_scores(model: nn.Module, names: Sequence[str], batches: Iterable[tuple[Tensor, Tensor]]) -> dict[str, Tensor]:
    """Connection sensitivity |dL/dc| = |dL/dw * w| of each named weight (Lee et al. 2019, eq. 5
    without the normalization, which does not change the ranking), L the mean cross-entropy."""
    grads, _ = loss_gradients(model, names, batches)
    return {name: (g * model.get_parameter(name).detach()).abs() for name, g in zip(names, grads, strict=True)}


def scoring_copy(model: nn.Module) -> nn.Module:
    """A copy in training mode to score on: BatchNorm normalizes with batch statistics as in training,
    and the engine's model (weights, running statistics, mode) is never touched."""
    return copy.deepcopy(model).train()


class SNIPConfig(MethodConfig):
    examples: int | None = Field(
        None,
        gt=0,
        description="Training examples the sensitivity is computed on (the paper: one mini-batch); "
        "default: the protocol's pruning.scoring_examples.",
    )


class SNIP(Method[SNIPConfig]):
    """SNIP: prune at initialization, once, the weights whose removal changes the loss least to first
    order, by connection sensitivity |dL/dw * w| on a batch of training data, ranked globally.

    Lee et al. 2019, "SNIP: Single-shot network pruning based on connection sensitivity" (ICLR). The
    paper scores on one mini-batch; here the examples default to the protocol's scoring budget
    (pruning.scoring_examples), all drawn through ctx.batches so that the budget is counted.
    BatchNorm uses batch statistics, on a copy of the model. The pruned network then trains from its
    initialization with the protocol's retraining recipe (the engine starts before_training methods
    from the initial weights; regime fine_tune keeps them).
    """

    name = "snip"
    version = "1.0"
    citation = "Lee et al. 2019 (ICLR), SNIP: Single-shot network pruning based on connection sensitivity"
    taxonomy = Taxonomy(
        when="before_training",
        granularity="unstructured",
        scope="global",
        schedule="one_shot",
        retraining="fine_tune",
    )

    def prune(self, ctx: PruningContext) -> Masks:
        names = list(ctx.weights())
        examples = self.config.examples or ctx.scoring_examples
        scores = snip_scores(scoring_copy(ctx.model), names, ctx.batches(examples, backward=True))
        return ctx.masks_from_scores(scores, scope="global")
