"""Continuous Sparsification: learn the mask as a soft, annealed gate on every weight, declared to the engine
(prunebench.methods.SoftMasks), which applies it inside its own training step."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field

from prunebench.methods import Masks, Method, MethodConfig, PruningContext, SoftMasks, Taxonomy


def beta_schedule(epochs: int, final: float) -> list[float]:
    """The temperature of each epoch of a round: 1 at the first, `final` at the last, multiplied by the
    same factor final ** (1 / (epochs - 1)) every epoch (the authors' schedule)."""
    if epochs <= 1:
        return [1.0] * epochs
    return [final ** (e / (epochs - 1)) for e in range(epochs)]


class CSConfig(MethodConfig):
    rounds: int = Field(3, ge=1, description="Rounds of mask search (3 in the authors' CIFAR code).")
    round_epochs: int | None = Field(
        None,
        ge=1,
        description="Epochs of each round (at least 2 for the temperature to rise within it); None: the stated "
        "pruning budget (budget.pruning_epochs) split evenly over the rounds, rounded down.",
    )
    final_temperature: float = Field(200.0, gt=1, description="beta at the last epoch of every round.")
    penalty: float = Field(
        1e-8, ge=0, description="lambda: weight of the L1 penalty on the soft mask, sum of sigmoid(beta*s)/sigmoid(s0)."
    )
    mask_initial_value: float = Field(0.0, description="s0: initial mask score; lower values give sparser masks.")
    mask_lr: float | None = Field(
        None,
        gt=0,
        description="Learning rate of the mask scores; None: the engine's learning rate at each step, i.e. "
        "the weights' schedule, as the authors do.",
    )
    mask_momentum: float = Field(0.9, ge=0, lt=1, description="Nesterov momentum of the mask optimizer (SGD).")
    reset_temperature: Literal["one", "final"] = Field(
        "one",
        description="The temperature of the reset between rounds, s <- min(temperature * s, s0): one, as the "
        "authors' main.py (it sets the temperature back to 1 first); final, at the round's final temperature "
        "(prunebench 1.0; sends the pruned scores far lower).",
    )
    threshold: Literal["target", "zero"] = Field(
        "target",
        description="The final hard mask: `target` keeps the highest scores so that exactly the target sparsity "
        "is reached (a benchmark at fixed sparsity needs it); `zero` keeps s > 0 as the paper does, whatever "
        "sparsity that gives (a tolerance violation when it misses the target).",
    )


class ContinuousSparsification(Method[CSConfig]):
    """Continuous Sparsification (CS): every prunable weight gets a mask score s and the model computes
    with w * sigmoid(beta * s) / sigmoid(s0). Each round trains weights (engine optimizer) and scores
    (their own SGD) on the task loss plus penalty * the soft mask's L1 norm, while beta rises geometrically
    from 1 to `final_temperature`; between rounds beta returns to 1 and the scores are reset to min(s, s0)
    (beta is 1 again when the authors reset), so surviving weights start the next round equal and pruned
    ones stay below. The soft masks, penalty, schedule, reset and score optimizer are declared to the engine
    (`SoftMasks`, one declaration per round's train call), which applies them in its training step; the method
    reads the learned scores back (`ctx.soft_mask_scores()`). The ticket is the hard mask with the weights
    rewound to the protocol's rewind point, retrained with the protocol's recipe.

    Benchmarked at a fixed sparsity, the hard mask thresholds the learned scores so that exactly the
    target is reached (`threshold: target`); the result's method notes say so and give the sparsity
    s > 0 alone would have reached. The mask search starts from the shared trained base model (the
    paper searches from initialization; here base training plays that part), so the rewind point is
    base training's early iterate.

    Savarese, Silva & Maire 2020, "Winning the lottery with continuous sparsification" (NeurIPS).
    Defaults from the authors' code: 3 rounds, final temperature 200, lambda 1e-8, s0 = 0, mask SGD with
    the weights' learning rate, momentum 0.9 (Nesterov), no weight decay. Two deviations, by design
    (docs/methods.md): the ticket is the plain masked network (the authors' ticket computes with the kept
    weights times 1/sigmoid(s0), 2 at s0 = 0), and every prunable weight of the protocol gets a soft mask
    (the authors' ResNets leave the shortcut convolutions and the classifier dense: the protocol's
    `prunable.exclude` and `include_last` say so).
    """

    name = "continuous_sparsification"
    version = "1.1"  # 1.1: the reset between rounds at temperature 1, as the authors (1.0: at the final one)
    citation = "Savarese, Silva & Maire 2020 (NeurIPS)"
    taxonomy = Taxonomy(
        when="during_training",
        granularity="unstructured",
        scope="global",
        schedule="iterative",
        retraining="weight_rewinding",
    )

    def __init__(self, config: CSConfig | None = None) -> None:
        super().__init__(config)
        # Thresholded to the target, its mask is masks_from_scores of the learned scores: invert applies.
        self.scored = self.config.threshold == "target"

    def soft_masks(self, epochs: int) -> SoftMasks:
        """What every round declares: the soft masks over a round of `epochs` epochs. The first round's reset
        has nothing to reset (its scores are new); each later one resets the scores the round before left."""
        cfg = self.config
        return SoftMasks(
            temperatures=beta_schedule(epochs, cfg.final_temperature),
            initial=cfg.mask_initial_value,
            penalty=cfg.penalty,
            lr=cfg.mask_lr,
            momentum=cfg.mask_momentum,
            reset="last" if cfg.reset_temperature == "final" else "one",
        )

    def prune(self, ctx: PruningContext) -> Masks:
        cfg = self.config
        epochs = cfg.round_epochs
        if epochs is None:
            epochs = math.floor(ctx.budget.pruning_epochs / cfg.rounds + 1e-9)
            if epochs < 1:
                raise ValueError(
                    f"{cfg.rounds} rounds need a pruning budget of at least {cfg.rounds} epochs "
                    f"(budget.pruning_epochs is {ctx.budget.pruning_epochs:g}); state one or set `round_epochs`"
                )
        declared = self.soft_masks(epochs)
        for _ in range(cfg.rounds):
            ctx.train(epochs, regularizers=[declared])
        scores = ctx.soft_mask_scores()
        alive = sum(int((s > 0).sum()) for s in scores.values())
        total = sum(s.numel() for s in scores.values())
        ctx.note("natural_sparsity", 1 - alive / total)
        ctx.note("round_epochs", epochs)
        ctx.note("beta_per_epoch", [list(declared.temperatures)] * cfg.rounds)  # beta of every epoch, per round
        if cfg.threshold == "zero":
            ctx.note("final_mask", "s > 0, as in the paper; its sparsity is what the scores give")
            return {name: s > 0 for name, s in scores.items()}
        ctx.note("final_mask", "learned scores thresholded to the target sparsity (highest s kept globally)")
        return ctx.masks_from_scores(scores, scope="global")
