"""SNIP: single-shot pruning at initialization by connection sensitivity |g * w|."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from typing import Literal

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


BatchNormMode = Literal["eval", "train"]


def scoring_copy(model: nn.Module, mode: BatchNormMode = "train") -> nn.Module:
    """A copy to score on, so that the engine's model (weights, running statistics, mode) is never touched:
    in `eval` mode BatchNorm normalizes with its running statistics (inference), in `train` mode with the
    statistics of each scoring batch (and dropout is active)."""
    scorer = copy.deepcopy(model)
    return scorer.eval() if mode == "eval" else scorer.train()


class SNIPConfig(MethodConfig):
    examples: int | None = Field(
        None,
        gt=0,
        description="Training examples the sensitivity is computed on (the paper: one mini-batch); "
        "default: the protocol's pruning.scoring_examples.",
    )
    batch_norm: BatchNormMode = Field(
        "eval",
        description="How BatchNorm normalizes while scoring: eval (its running statistics, inference mode, as in "
        "both reference implementations, snip-public and Synaptic-Flow) or train (batch statistics).",
    )


class SNIP(Method[SNIPConfig]):
    """SNIP: prune at initialization, once, the weights whose removal changes the loss least to first
    order, by connection sensitivity |dL/dw * w| on a batch of training data, ranked globally.

    Lee et al. 2019, "SNIP: Single-shot network pruning based on connection sensitivity" (ICLR). The
    paper scores on one mini-batch; here the examples default to the protocol's scoring budget
    (pruning.scoring_examples), all drawn through ctx.batches so that the budget is counted.
    BatchNorm is in inference mode by default, as in the reference implementations (`batch_norm`), on a
    copy of the model. The pruned network then trains from its
    initialization with the protocol's retraining recipe (the engine starts before_training methods
    from the initial weights; regime fine_tune keeps them).
    """

    name = "snip"
    version = "1.1"  # 1.1: BatchNorm in inference mode by default, as the references (1.0: batch statistics)
    citation = "Lee et al. 2019 (ICLR), SNIP: Single-shot network pruning based on connection sensitivity"
    scored = True  # its masks are masks_from_scores of its scores: the invert sanity ablation applies
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
        scorer = scoring_copy(ctx.model, self.config.batch_norm)
        scores = snip_scores(scorer, names, ctx.batches(examples, backward=True))
        return ctx.masks_from_scores(scores, scope="global")
