"""Sparse Evolutionary Training (SET): a sparse network trained from scratch whose connections move, by magnitude
drop and random growth, on RigL's schedule (the form in which RigL's code compares it). Its schedule and its update
are those of every method here that moves connections (RigL builds on them)."""

from __future__ import annotations

import math

import torch
from prunebench_baselines.static_sparse import StaticSparse, StaticSparseConfig
from pydantic import Field
from torch import Tensor

from prunebench.methods import Layout, Masks, PruningContext, Reach, StepContext, Target, Taxonomy


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


def updated_mask(weights: Tensor, keep: Tensor, grow_score: Tensor, fraction: float) -> Tensor:
    """One connection update of a layer: of its n active connections, the int(fraction * n) of smallest |w| are
    dropped, and as many grown where `grow_score` is largest among the connections not kept (one just dropped may
    come back), so the layer keeps its count.

    google-research/rigl, `SparseSETOptimizerBase._get_update_op`: the kept are the top n - int(fraction n) of |w|
    (ties: the lower index kept, as top_k orders them), the grown the top int(fraction n) of the score with the kept
    lifted out of reach. The reference adds N(0, 1e-5) noise to |w| to break ties at random; here ties go by index,
    and inactive connections (at zero, and tied with an active zero in the reference) are never kept by the drop."""
    flat_keep = keep.flatten()
    active = int(flat_keep.sum())
    n_drop = int(active * fraction)
    if n_drop == 0:
        return keep
    magnitude = weights.detach().abs().flatten().double().masked_fill(~flat_keep, -math.inf)
    kept = torch.zeros_like(flat_keep)
    kept[torch.argsort(magnitude, descending=True, stable=True)[: active - n_drop]] = True
    score = grow_score.detach().flatten().double().masked_fill(kept, -math.inf)
    grown = torch.argsort(score, descending=True, stable=True)[:n_drop]
    kept[grown] = True
    return kept.reshape(keep.shape)


class SparseEvolutionaryTraining(StaticSparse):
    """SET: a random mask at initialization (ERK or uniform, as `static_sparse`), trained from initialization with
    the retraining recipe; at every `update_steps`-th step t = 0, ΔT, 2ΔT, ... before `end_fraction` of the
    training's steps, each layer's active connections of smallest magnitude are dropped, a fraction decaying from
    `drop_fraction` on a cosine, and as many grown at random among the missing ones, starting at zero (the engine
    keeps pruned weights at zero, and a new connection's optimizer state is zero). The count of every layer, and so
    the sparsity, never changes.

    Mocanu et al. 2018, "Scalable training of artificial neural networks with adaptive sparse connectivity inspired
    by network science" (Nature Communications): magnitude drop, random growth, ζ = 0.3 each epoch. Here RigL's
    schedule (Evci et al. 2020; google-research/rigl, `SparseSETOptimizer`, whose first update is at step 0): ΔT =
    100 steps, alpha = 0.3 decayed on a cosine (the paper's; the code's flag defaults to a constant), updates stop at
    75 % of training. The reference updates the masks after the step's optimizer update, as here."""

    name = "set"
    version = "1.1"
    citation = "Mocanu et al. 2018 (Nature Communications); Evci et al. 2020 (ICML), RigL's schedule"
    taxonomy = Taxonomy(
        when="before_training",
        granularity="unstructured",
        scope="layerwise",
        schedule="dynamic",
        retraining="fine_tune",
    )
    hook_stages = ("retrain",)
    Config = SETConfig
    config: SETConfig

    def __init__(self, config: SETConfig | None = None) -> None:
        super().__init__(config)
        self._generator: torch.Generator | None = None
        self._updates = 0

    def reach(self, shapes: Layout, target: Target) -> Reach | None:
        """The allocation's (static_sparse), and a schedule that fits the training: an update interval beyond the
        steps before `end_fraction` of it would move the mask once, at the first step, and never again."""
        steps, c = shapes.max_training_steps, self.config
        if steps is not None and c.update_steps > c.end_fraction * steps:
            raise ValueError(
                f"update_steps {c.update_steps} is beyond the {math.floor(c.end_fraction * steps)} steps before "
                f"end_fraction {c.end_fraction:g} of its training (at most {steps} steps): the mask would move once"
            )
        return super().reach(shapes, target)

    def prune(self, ctx: PruningContext) -> Masks:
        self._generator = ctx.generator  # the same job-seeded draws after the mask's
        return super().prune(ctx)

    def grow_scores(self, ctx: StepContext, masks: Masks) -> dict[str, Tensor]:
        """Where each layer grows: the largest scores among the connections it does not keep. SET: at random."""
        assert self._generator is not None
        return {name: torch.rand(keep.shape, generator=self._generator) for name, keep in masks.items()}

    def on_step_end(self, ctx: StepContext) -> None:
        c = self.config
        t = ctx.step - 1  # the step just taken, counted from 0 as the reference's global step
        end = math.floor(c.end_fraction * ctx.epochs * ctx.steps_per_epoch)
        following = (t // c.update_steps + 1) * c.update_steps
        ctx.next_call_at(following + 1 if following < end else None)
        if t % c.update_steps or t >= end:
            return
        fraction = drop_fraction_at(t, alpha=c.drop_fraction, end=end)
        weights, masks = ctx.weights(), ctx.masks()
        scores = self.grow_scores(ctx, masks)
        ctx.set_masks({name: updated_mask(weights[name], keep, scores[name], fraction) for name, keep in masks.items()})
        self._updates += 1

    def state_dict(self) -> dict[str, object]:
        generator = self._generator.get_state() if self._generator is not None else None
        return {"updates": self._updates, "generator": generator}

    def load_state_dict(self, state: dict[str, object]) -> None:
        self._updates = int(state.get("updates", 0))  # type: ignore[call-overload]
        generator = state.get("generator")
        if isinstance(generator, Tensor):  # a resumed job prunes no more: its draws go on where they were
            self._generator = torch.Generator()
            self._generator.set_state(generator)
