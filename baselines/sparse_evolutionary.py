"""Sparse Evolutionary Training (SET): a sparse network trained from scratch whose connections move, by magnitude
drop and random growth, on RigL's schedule (the form in which RigL's code compares it)."""

from __future__ import annotations

import math

import torch
from prunebench_baselines.static_sparse import StaticSparse, StaticSparseConfig
from pydantic import Field

from prunebench.methods import Masks, PruningContext, StepContext, Taxonomy


class SETConfig(StaticSparseConfig):
    update_steps: int = Field(100, ge=1, description="ΔT: optimizer steps between connection updates (RigL: 100).")
    drop_fraction: float = Field(
        0.3, gt=0, lt=1, description="alpha: the fraction of a layer's active connections moved at the first update."
    )
    end_fraction: float = Field(
        0.75, gt=0, le=1, description="Updates stop after this fraction of the training steps (RigL: 75 %)."
    )


def drop_fraction_at(step: int, *, alpha: float, end: int) -> float:
    """RigL's cosine decay of the drop fraction: alpha/2 * (1 + cos(pi t / T_end)) (Evci et al. 2020, eq. 2)."""
    return alpha / 2 * (1 + math.cos(math.pi * step / end))


def moved(weights: torch.Tensor, keep: torch.Tensor, fraction: float, generator: torch.Generator) -> torch.Tensor:
    """`keep` with floor(fraction * active) of its active connections of smallest |w| dropped and as many grown at
    random among the connections inactive after the drop (a dropped one may come back), so a layer keeps its count."""
    flat_keep = keep.flatten().clone()
    active = int(flat_keep.sum())
    k = math.floor(fraction * active)
    if k == 0:
        return keep
    magnitude = weights.detach().abs().flatten().double().masked_fill(~flat_keep, math.inf)
    flat_keep[torch.argsort(magnitude, stable=True)[:k]] = False
    inactive = (~flat_keep).nonzero().flatten()
    flat_keep[inactive[torch.randperm(len(inactive), generator=generator)[:k]]] = True
    return flat_keep.reshape(keep.shape)


class SparseEvolutionaryTraining(StaticSparse):
    """SET: a random mask at initialization (ERK or uniform, as `static_sparse`), trained from initialization with
    the retraining recipe; every `update_steps` steps until `end_fraction` of them, each layer's active connections
    of smallest magnitude are dropped, a fraction decaying from `drop_fraction` on a cosine, and as many grown at
    random among the missing ones, starting at zero (the engine keeps pruned weights at zero). The count of every
    layer, and so the sparsity, never changes.

    Mocanu et al. 2018, "Scalable training of artificial neural networks with adaptive sparse connectivity inspired
    by network science" (Nature Communications): magnitude drop, random growth, ζ = 0.3 each epoch. Here RigL's
    schedule (Evci et al. 2020; google-research/rigl, `SparseSETOptimizer`): ΔT = 100 steps, alpha = 0.3 decayed on a
    cosine, updates stop at 75 % of training."""

    name = "set"
    version = "1.0"
    citation = "Mocanu et al. 2018 (Nature Communications); Evci et al. 2020 (ICML), RigL's schedule"
    taxonomy = Taxonomy(
        when="before_training",
        granularity="unstructured",
        scope="layerwise",
        schedule="gradual",
        retraining="fine_tune",
    )
    hook_stages = ("retrain",)
    Config = SETConfig
    config: SETConfig

    def __init__(self, config: SETConfig | None = None) -> None:
        super().__init__(config)
        self._epochs = 0
        self._generator: torch.Generator | None = None
        self._updates = 0

    def prune(self, ctx: PruningContext) -> Masks:
        self._epochs = ctx.retrain_epochs
        self._generator = ctx.generator  # the same job-seeded draws after the mask's
        return super().prune(ctx)

    def on_step_end(self, ctx: StepContext) -> None:
        c = self.config
        end = math.floor(c.end_fraction * self._epochs * ctx.steps_per_epoch)
        nxt = (ctx.step // c.update_steps + 1) * c.update_steps
        ctx.next_call_at(nxt if nxt < end else None)
        if ctx.step % c.update_steps or ctx.step >= end or self._generator is None:
            return
        fraction = drop_fraction_at(ctx.step, alpha=c.drop_fraction, end=end)
        weights, masks = ctx.weights(), ctx.masks()
        ctx.set_masks({name: moved(weights[name], keep, fraction, self._generator) for name, keep in masks.items()})
        self._updates += 1

    def state_dict(self) -> dict[str, object]:
        return {"updates": self._updates, "epochs": self._epochs}

    def load_state_dict(self, state: dict[str, object]) -> None:
        self._updates = int(state.get("updates", 0))  # type: ignore[arg-type]
        self._epochs = int(state.get("epochs", self._epochs))  # type: ignore[arg-type]
