"""Gradual magnitude pruning: prune while training, along a cubic sparsity schedule."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, model_validator

from prunebench.methods import Masks, Method, MethodConfig, PruningContext, StepContext, Taxonomy, masks_from_scores


def scheduled_sparsity(step: int, *, target: float, initial: float, begin: int, end: int, exponent: float) -> float:
    """Zhu & Gupta 2017, eq. 1: s_t = s_f + (s_i - s_f) * (1 - (t - t0) / (n * dt)) ** 3, with the
    exponent as a parameter; s_i before `begin`, s_f from `end` on."""
    if step <= begin:
        return initial
    if step >= end:
        return target
    progress = (step - begin) / (end - begin)
    return target + (initial - target) * (1.0 - progress) ** exponent


def pruning_steps(begin: int, end: int, frequency: int) -> list[int]:
    """The optimizer steps after which the schedule prunes: every `frequency` steps from `begin`, and
    always at `end`, so the target is reached whatever the frequency."""
    steps = list(range(begin, end, frequency))
    return [s for s in steps if s > 0] + [end]


class GradualMagnitudeConfig(MethodConfig):
    epochs: int | None = Field(
        None,
        ge=1,
        description="Epochs of training while pruning; None: the pruning budget the protocol states "
        "(budget.pruning_epochs, rounded down).",
    )
    initial_sparsity: float = Field(0.0, ge=0, lt=1, description="s_i: sparsity at the schedule's start.")
    exponent: float = Field(3.0, gt=0, description="Exponent of the schedule (3: Zhu & Gupta's cubic).")
    frequency_steps: int = Field(100, ge=1, description="dt: prune every this many optimizer steps (100 in the paper).")
    start_fraction: float = Field(
        0.0, ge=0, lt=1, description="t0: the schedule starts at this fraction of the pruning epochs."
    )
    end_fraction: float = Field(
        0.75,
        gt=0,
        le=1,
        description="The target is reached at this fraction of the pruning epochs; the rest trains the "
        "final mask at the stage's learning rate.",
    )
    scope: Literal["layerwise", "global"] = Field(
        "layerwise",
        description="layerwise: every layer to the scheduled sparsity (the paper); global: one threshold.",
    )

    @model_validator(mode="after")
    def _ordered(self) -> GradualMagnitudeConfig:
        if self.start_fraction >= self.end_fraction:
            raise ValueError("start_fraction must be before end_fraction")
        return self


class GradualMagnitude(Method[GradualMagnitudeConfig]):
    """Gradual magnitude pruning (GMP): train, and every `frequency_steps` optimizer steps prune the
    smallest-magnitude weights up to the sparsity of a cubic schedule that rises from
    `initial_sparsity` to the target between `start_fraction` and `end_fraction` of the pruning epochs.
    The pruning epochs are the method's budget (budget.pruning_epochs), counted in the pruning stage;
    the protocol's retraining follows.

    Zhu & Gupta 2017, "To prune, or not to prune: exploring the efficacy of pruning for model
    compression" (arXiv:1710.01878): cubic schedule (exponent 3), initial sparsity 0, pruning every
    100 to 1000 steps (they find the frequency makes no difference in that range), each layer pruned
    to the same sparsity. Gale et al. 2019 (arXiv:1902.09574) use it as the magnitude baseline.
    """

    name = "gradual_magnitude"
    version = "1.0"
    citation = "Zhu & Gupta 2017 (arXiv:1710.01878); Gale et al. 2019 (arXiv:1902.09574)"
    taxonomy = Taxonomy(
        when="during_training",
        granularity="unstructured",
        scope="layerwise",
        schedule="gradual",
        retraining="fine_tune",
    )
    taxonomy_from_config = {"scope": "scope"}
    hook_stages = ("pruning",)  # it prunes while it trains in its own pruning stage; retraining keeps the mask

    def __init__(self, config: GradualMagnitudeConfig | None = None) -> None:
        super().__init__(config)
        # Per job: set by prune() for the hooks of its pruning stage, cleared when it ends.
        self._active = False
        self._target = 0.0
        self._epochs = 0
        self._plan: tuple[float, int, int, set[int]] | None = None  # target, begin, end, pruning steps

    def prune(self, ctx: PruningContext) -> Masks:
        cfg = self.config
        epochs = cfg.epochs if cfg.epochs is not None else math.floor(ctx.budget.pruning_epochs + 1e-9)
        if epochs < 1:
            raise ValueError(
                "gradual magnitude pruning trains while it prunes: state a pruning budget "
                "(budget.pruning_epochs >= 1, for the protocol or this method) or set `epochs`"
            )
        self._target = ctx.target_sparsity
        self._epochs = epochs
        try:
            self._active = True
            ctx.train(epochs)
            # Few pruning events (a frequency too coarse for the stage's steps) degrade GMP to one-shot
            # pruning: say how many there were.
            if self._plan is not None:
                ctx.note("pruning_events", len(self._plan[3]))
                ctx.note("target_reached_at_step", self._plan[2])
        finally:
            self._active = False
            self._plan = None
        ctx.note("pruning_epochs", epochs)
        # The schedule ended at the target; ranking again keeps exactly those masks.
        return ctx.masks_from_scores({k: w.abs() for k, w in ctx.weights().items()}, scope=cfg.scope)

    def on_step_end(self, ctx: StepContext) -> None:
        if not self._active:
            return
        cfg = self.config
        if self._plan is None:
            total = self._epochs * ctx.steps_per_epoch
            begin = round(cfg.start_fraction * total)
            end = max(begin + 1, min(total, round(cfg.end_fraction * total)))
            self._plan = (self._target, begin, end, set(pruning_steps(begin, end, cfg.frequency_steps)))
        target, begin, end, steps = self._plan
        later = [s for s in steps if s > ctx.step]
        ctx.next_call_at(min(later) if later else None)  # the hook acts at pruning steps only
        if ctx.step not in steps:
            return
        sparsity = scheduled_sparsity(
            ctx.step, target=target, initial=cfg.initial_sparsity, begin=begin, end=end, exponent=cfg.exponent
        )
        if sparsity <= 0:
            return
        scores = {k: w.detach().abs() for k, w in ctx.weights().items()}
        ctx.set_masks(masks_from_scores(scores, sparsity, scope=cfg.scope, current=ctx.masks()))
