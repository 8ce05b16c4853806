"""Iterative magnitude pruning: prune a fraction of the remaining weights, retrain, repeat.

The three published retraining variants differ only in what each round retrains from and with which
learning-rate schedule, which is exactly the protocol's retraining regime:

- `lottery_ticket`: weight rewinding (Frankle & Carbin 2019; Frankle et al. 2020);
- `lr_rewinding`: learning-rate rewinding (Renda et al. 2020);
- `imp_fine_tune`: fine-tuning (Han et al. 2015), the classic that Renda et al. compare against.

Every round but the last trains in the pruning stage (counted against budget.pruning_epochs); after
the last round the runner applies the regime (e.g. rewinds the weights) and runs the retraining stage.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field

from prunebench.methods import Masks, Method, MethodConfig, PruningContext, Taxonomy


def round_sparsities(target: float, *, rate: float, rounds: int | None = None) -> list[float]:
    """Sparsity after each pruning round; the last is exactly `target`.

    rounds=None: every round prunes `rate` of the remaining weights, as many rounds as the target needs
    (the last prunes less when the target falls between two rounds). rounds=R: every round prunes the
    same fraction 1 - (1 - target) ** (1 / R) of the remaining weights, so the R-th reaches the target."""
    if not 0 < target < 1:
        raise ValueError(f"target sparsity {target} outside (0, 1)")
    if rounds is None:
        if not 0 < rate < 1:
            raise ValueError(f"rate {rate} outside (0, 1)")
        # The tolerance keeps a target that a whole number of rounds reaches (0.36 at rate 0.2) from a
        # spurious extra round through rounding.
        needed = max(1, math.ceil(math.log(1 - target) / math.log(1 - rate) - 1e-9))
        out = [min(target, 1 - (1 - rate) ** r) for r in range(1, needed + 1)]
    else:
        if rounds < 1:
            raise ValueError(f"rounds must be at least 1 (got {rounds})")
        out = [1 - (1 - target) ** (r / rounds) for r in range(1, rounds + 1)]
    out[-1] = target
    return out


class IterativeConfig(MethodConfig):
    rate: float = Field(
        0.2, gt=0, lt=1, description="Fraction of the remaining weights pruned per round (20% in the papers)."
    )
    rounds: int | None = Field(
        None,
        ge=1,
        description="Pruning rounds. Set: each prunes the same fraction of the remaining weights so that the "
        "last reaches the target (rate is unused). None: as many rounds of `rate` as the target needs.",
    )
    round_epochs: int | None = Field(
        None,
        ge=1,
        description="Training epochs after each round but the last; None: the stated pruning budget "
        "(budget.pruning_epochs) split evenly over them, rounded down.",
    )
    scope: Literal["global", "layerwise"] = Field(
        "global", description="global: one magnitude threshold across layers (Frankle et al. for deep nets)."
    )


class LotteryTicket(Method[IterativeConfig]):
    """Iterative magnitude pruning with weight rewinding (the lottery ticket procedure): prune `rate`
    of the remaining weights by global magnitude, rewind the survivors to the protocol's rewind point,
    train, repeat; the ticket (final mask, rewound weights) is retrained with the protocol's recipe.

    The rewind point is the protocol's pruning.rewind_epoch: 0 rewinds to the initialization (Frankle &
    Carbin 2019, "The lottery ticket hypothesis", ICLR); k > 0 to the iterate after k epochs, any step
    through a fractional epoch (Frankle et al. 2020, "Linear mode connectivity and the lottery ticket
    hypothesis", ICML). Defaults: 20% per round, global ranking.
    """

    name = "lottery_ticket"
    version = "1.0"
    citation = "Frankle & Carbin 2019 (ICLR); Frankle et al. 2020 (ICML)"
    scored = True  # every round's masks are masks_from_scores of magnitudes (so are lr_rewinding's and imp_fine_tune's)
    taxonomy = Taxonomy(
        when="after_training",
        granularity="unstructured",
        scope="global",
        schedule="iterative",
        retraining="weight_rewinding",
    )
    taxonomy_from_config = {"scope": "scope"}  # so do lr_rewinding and imp_fine_tune, which inherit it

    def prune(self, ctx: PruningContext) -> Masks:
        cfg = self.config
        schedule = round_sparsities(ctx.target_sparsity, rate=cfg.rate, rounds=cfg.rounds)
        trainings = len(schedule) - 1
        epochs = self._round_epochs(ctx, trainings)
        ctx.note("round_sparsities", schedule)
        ctx.note("round_epochs", epochs)
        for sparsity in schedule[:-1]:
            ctx.set_masks(self._magnitude(ctx, sparsity))
            self.before_round(ctx)
            ctx.train(epochs, spec=ctx.recipe(self.taxonomy.retraining, epochs))
        # The last round; the runner applies the regime (rewinding here) and retrains.
        return self._magnitude(ctx, schedule[-1])

    def before_round(self, ctx: PruningContext) -> None:
        """Weight rewinding: the survivors restart from the protocol's rewind point."""
        ctx.load_weights(ctx.rewind_weights())

    def _magnitude(self, ctx: PruningContext, sparsity: float) -> Masks:
        scope = self.config.scope
        return ctx.masks_from_scores({k: w.abs() for k, w in ctx.weights().items()}, scope=scope, sparsity=sparsity)

    def _round_epochs(self, ctx: PruningContext, trainings: int) -> int:
        cfg = self.config
        if trainings == 0:
            return 0
        if cfg.round_epochs is not None:
            return cfg.round_epochs
        epochs = math.floor(ctx.budget.pruning_epochs / trainings + 1e-9)
        if epochs < 1:
            raise ValueError(
                f"{trainings} rounds of training need a pruning budget of at least {trainings} epochs "
                f"(budget.pruning_epochs is {ctx.budget.pruning_epochs:g}); state one, set `rounds` or `round_epochs`"
            )
        return epochs


class LRRewinding(LotteryTicket):
    """Iterative magnitude pruning with learning-rate rewinding: prune `rate` of the remaining weights
    by global magnitude, keep the trained weights, and retrain with the learning-rate schedule of base
    training rewound by the retraining length (its last epochs, at base training's optimizer and batch
    size); repeat. The retraining stage after the last round runs the same recipe (the protocol's
    `base_tail` recipe over retrain.epochs), so under S3.2 it is a violation unless the protocol's
    `retrain` is that schedule: that is Wang et al. 2023's point about larger retraining LRs.

    Renda, Frankle & Carbin 2020, "Comparing rewinding and fine-tuning in neural network pruning"
    (ICLR): 20% per round, global ranking.
    """

    name = "lr_rewinding"
    citation = "Renda, Frankle & Carbin 2020 (ICLR)"
    taxonomy = Taxonomy(
        when="after_training",
        granularity="unstructured",
        scope="global",
        schedule="iterative",
        retraining="lr_rewinding",
    )

    def before_round(self, ctx: PruningContext) -> None:
        """The weights stay as trained; only the schedule is rewound (by the recipe)."""


class IterativeFineTune(LRRewinding):
    """Iterative magnitude pruning with fine-tuning: prune `rate` of the remaining weights by global
    magnitude and retrain from the trained weights with the protocol's retraining recipe; repeat.

    Han et al. 2015, "Learning both weights and connections for efficient neural networks" (NeurIPS);
    the fine-tuning arm of Renda et al. 2020. 20% per round, global ranking.
    """

    name = "imp_fine_tune"
    citation = "Han et al. 2015 (NeurIPS); Renda et al. 2020 (ICLR)"
    taxonomy = Taxonomy(
        when="after_training",
        granularity="unstructured",
        scope="global",
        schedule="iterative",
        retraining="fine_tune",
    )
