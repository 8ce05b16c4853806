"""GraSP: pruning at initialization that preserves gradient flow, by the Hessian-gradient product."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from prunebench_baselines.snip import loss_gradients, scoring_copy
from pydantic import Field
from torch import Tensor, nn

from prunebench.methods import Masks, Method, MethodConfig, PruningContext, Taxonomy


def grasp_scores(
    model: nn.Module, names: Sequence[str], batches: Sequence[tuple[Tensor, Tensor]], *, temperature: float
) -> dict[str, Tensor]:
    """GraSP's score -w * (H g) of each named weight (Wang et al. 2020, eq. 8), with g and H the
    gradient and Hessian of the mean cross-entropy of logits / temperature over all examples. The
    paper removes the weights of highest score.

    H g is computed batch by batch as the gradient of g . dL_b/dw (g held constant), weighted by
    each batch's share of the examples: the mean-loss Hessian times g, exactly."""
    grads, seen = loss_gradients(model, names, batches, temperature=temperature)
    params = [model.get_parameter(name) for name in names]
    hg = [torch.zeros_like(p) for p in params]
    for x, y in batches:
        loss = F.cross_entropy(model(x) / temperature, y, reduction="sum") / seen
        batch_grads = torch.autograd.grad(loss, params, create_graph=True)
        dot = sum((g * b).sum() for g, b in zip(grads, batch_grads, strict=True))
        for h, d in zip(hg, torch.autograd.grad(dot, params, allow_unused=True), strict=True):
            if d is not None:
                h += d
    return {name: -(p.detach() * h) for name, p, h in zip(names, params, hg, strict=True)}


def balanced_sample(
    batches: Iterable[tuple[Tensor, Tensor]], num_classes: int, per_class: int
) -> list[tuple[Tensor, Tensor]]:
    """Up to `per_class` examples of every class, in the order the batches bring them; stops drawing
    as soon as every class is full (so the engine counts no batch beyond that)."""
    counts = [0] * num_classes
    chosen: list[tuple[Tensor, Tensor]] = []
    for x, y in batches:
        take = []
        for c in range(num_classes):
            idx = (y == c).nonzero().flatten()[: per_class - counts[c]]
            counts[c] += len(idx)
            take.append(idx)
        keep = torch.cat(take).sort().values
        if len(keep):
            chosen.append((x[keep], y[keep]))
        if min(counts) >= per_class:
            break
    return chosen


def class_sorted_halves(sample: Sequence[tuple[Tensor, Tensor]]) -> list[tuple[Tensor, Tensor]]:
    """The sample as the authors batch it: sorted by class (stable), split into two halves."""
    x = torch.cat([b[0] for b in sample])
    y = torch.cat([b[1] for b in sample])
    order = torch.argsort(y, stable=True)
    x, y = x[order], y[order]
    half = len(y) // 2
    return [(x[:half], y[:half]), (x[half:], y[half:])]


class GraSPConfig(MethodConfig):
    temperature: float = Field(200.0, gt=0, description="Logits are divided by this before the loss (T).")
    samples_per_class: int = Field(10, gt=0, description="Training examples of every class the scores use.")
    batch_norm: Literal["halves", "eval", "train"] = Field(
        "halves",
        description="How the sample meets BatchNorm: halves (the authors' code: sorted by class, split into two "
        "halves, each scored under its own batch statistics), eval (running statistics, as Synaptic-Flow's "
        "re-implementation scores), train (batch statistics of the scoring batches as drawn).",
    )


class GraSP(Method[GraSPConfig]):
    """GraSP: prune at initialization, once, the weights whose removal reduces the gradient norm
    least (or increases it), scored by -w * (H g) on samples_per_class examples of every class, with
    the logits divided by a temperature; ranked globally, the highest scores removed.

    Wang et al. 2020, "Picking winning tickets before training by preserving gradient flow" (ICLR);
    defaults of the authors' code: temperature 200, 10 samples per class, one iteration. The samples
    come through ctx.batches from the protocol's scoring budget (pruning.scoring_examples): drawing
    stops once every class has its samples, and the engine counts every example drawn. Should the
    budget not hold enough of some class, GraSP scores on what it holds and warns. Unlike the
    authors' code, the linear layers are not re-initialized before scoring (the engine owns the
    weights). BatchNorm meets the sample as in the authors' code by default: sorted by class and split
    into two halves, each under its own batch statistics (`batch_norm`), on a copy of the model. The
    pruned network then trains from its initialization with the protocol's retraining recipe.
    """

    name = "grasp"
    version = "1.1"  # 1.1: the authors' class-sorted halves by default (1.0 scored the batches as drawn)
    citation = "Wang et al. 2020 (ICLR), Picking winning tickets before training by preserving gradient flow"
    scored = True  # its masks are masks_from_scores of its scores: the invert sanity ablation applies
    taxonomy = Taxonomy(
        when="before_training",
        granularity="unstructured",
        scope="global",
        schedule="one_shot",
        retraining="fine_tune",
    )

    def prune(self, ctx: PruningContext) -> Masks:
        cfg = self.config
        names = list(ctx.weights())
        wanted = cfg.samples_per_class * ctx.num_classes
        pool = ctx.batches(ctx.scoring_examples, backward=True)
        sample = balanced_sample(pool, ctx.num_classes, cfg.samples_per_class)
        got = sum(len(y) for _, y in sample)
        if got < wanted:
            warnings.warn(
                f"grasp: the scoring budget ({ctx.scoring_examples} examples) held {got} of the "
                f"{wanted} balanced examples wanted; scoring on those",
                stacklevel=2,
            )
        if cfg.batch_norm == "halves":
            sample = class_sorted_halves(sample)
        scorer = scoring_copy(ctx.model, "eval" if cfg.batch_norm == "eval" else "train")
        scores = grasp_scores(scorer, names, sample, temperature=cfg.temperature)
        # masks_from_scores keeps the highest: negate, so that the highest GraSP scores go.
        return ctx.masks_from_scores({name: -s for name, s in scores.items()}, scope="global")
