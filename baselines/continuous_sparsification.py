"""Continuous Sparsification: learn the mask as a soft, annealed gate on every weight."""

from __future__ import annotations

import functools
import math
import operator
from typing import Literal

import torch
from pydantic import Field
from torch import Tensor, nn
from torch.nn.utils import parametrize

from prunebench.methods import Masks, Method, MethodConfig, PruningContext, StepContext, Taxonomy


class SoftMask(nn.Module):
    """The parametrization weight -> weight * sigmoid(beta * s) / sigmoid(s0): the gate starts at 1
    (s = s0, beta = 1) and approaches a hard 0/1 mask as beta grows."""

    def __init__(self, like: Tensor, initial: float) -> None:
        super().__init__()
        self.scores = nn.Parameter(torch.full_like(like, initial))
        self.beta = 1.0
        self.scale = 1.0 / (1.0 / (1.0 + math.exp(-initial)))

    def gate(self) -> Tensor:
        return torch.sigmoid(self.beta * self.scores) * self.scale

    def forward(self, weight: Tensor) -> Tensor:
        return weight * self.gate()


@torch.no_grad()
def reset_scores(scores: list[Tensor], initial: float) -> None:
    """The reset between rounds, in place: s <- min(s, s0) (the authors' code, at temperature 1)."""
    for s in scores:
        s.clamp_(max=initial)


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
    (their own SGD optimizer, stepped in `on_step_end`) on the task loss plus penalty * the soft mask's
    L1 norm, while beta rises geometrically from 1 to `final_temperature`; between rounds beta returns
    to 1 and the scores are reset to min(s, s0) (beta is 1 again when the authors reset), so surviving
    weights start the next round equal and pruned ones stay below. The ticket is the hard mask with the
    weights rewound to the protocol's rewind point, retrained with the protocol's recipe.

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
    hook_stages = ("pruning",)  # the soft masks live in the pruning stage only

    def __init__(self, config: CSConfig | None = None) -> None:
        super().__init__(config)
        # Per job, while prune() runs: the soft masks by weight name, their optimizer, and the schedule.
        self._soft: dict[str, SoftMask] = {}
        self._optimizer: torch.optim.Optimizer | None = None
        self._betas: list[float] = []
        self._round_epoch = 0
        self.betas_used: list[list[float]] = []  # beta of every epoch, per round

    def own_parameters(self) -> list[Tensor]:
        return [m.scores for m in self._soft.values()]

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
        self._betas = beta_schedule(epochs, cfg.final_temperature)
        self.betas_used = []
        try:
            self._attach(ctx)
            for r in range(cfg.rounds):
                self._set_beta(0)
                self.betas_used.append([])
                ctx.train(epochs)
                if r < cfg.rounds - 1:
                    self._reset_scores()
            scores = {name: m.scores.detach().clone() for name, m in self._soft.items()}
        finally:
            self._detach(ctx)
        alive = sum(int((s > 0).sum()) for s in scores.values())
        total = sum(s.numel() for s in scores.values())
        ctx.note("natural_sparsity", 1 - alive / total)
        ctx.note("round_epochs", epochs)
        ctx.note("beta_per_epoch", self.betas_used)
        if cfg.threshold == "zero":
            ctx.note("final_mask", "s > 0, as in the paper; its sparsity is what the scores give")
            return {name: s > 0 for name, s in scores.items()}
        ctx.note("final_mask", "learned scores thresholded to the target sparsity (highest s kept globally)")
        return ctx.masks_from_scores(scores, scope="global")

    # ---- the soft masks -------------------------------------------------------------------------
    def _attach(self, ctx: PruningContext) -> None:
        cfg = self.config
        modules = dict(ctx.model.named_modules())
        for name, weight in ctx.weights().items():
            module = modules[name.rpartition(".")[0]]
            soft = SoftMask(weight.detach(), cfg.mask_initial_value)
            parametrize.register_parametrization(module, name.rpartition(".")[2], soft)
            self._soft[name] = soft
        # The authors' mask optimizer: SGD, Nesterov momentum, no weight decay; its LR is set every step.
        self._optimizer = torch.optim.SGD(
            self.own_parameters(), lr=cfg.mask_lr or 0.1, momentum=cfg.mask_momentum, nesterov=cfg.mask_momentum > 0
        )

    def _detach(self, ctx: PruningContext) -> None:
        modules = dict(ctx.model.named_modules())
        for name in self._soft:
            module_name, _, attr = name.rpartition(".")
            # leave_parametrized=False puts the original weight Parameter back, so the engine's masks and
            # the rewound weights apply to the same tensors as before.
            parametrize.remove_parametrizations(modules[module_name], attr, leave_parametrized=False)
        self._soft = {}
        self._optimizer = None

    def _set_beta(self, epoch: int) -> None:
        self._round_epoch = epoch
        for m in self._soft.values():
            m.beta = self._betas[min(epoch, len(self._betas) - 1)]

    @torch.no_grad()
    def _reset_scores(self) -> None:
        """Between rounds the authors' main.py sets the temperature back to 1 before it resets the scores to
        min(temperature * s, s0): min(s, s0). Surviving scores restart equal, pruned ones keep their value."""
        for m in self._soft.values():
            if self.config.reset_temperature == "final":
                m.scores.mul_(m.beta)
        reset_scores([m.scores for m in self._soft.values()], self.config.mask_initial_value)

    # ---- hooks ----------------------------------------------------------------------------------
    def loss_term(self, model: nn.Module) -> Tensor | None:
        penalty = self.config.penalty
        if not self._soft or penalty == 0:
            return None
        return penalty * functools.reduce(operator.add, (m.gate().sum() for m in self._soft.values()))

    def on_step_end(self, ctx: StepContext) -> None:
        if self._optimizer is None:
            return
        lr = self.config.mask_lr or ctx.lr
        for group in self._optimizer.param_groups:
            group["lr"] = lr
        self._optimizer.step()
        self._optimizer.zero_grad(set_to_none=True)

    def on_epoch_end(self, ctx: StepContext) -> None:
        if not self._soft:
            return
        self.betas_used[-1].append(next(iter(self._soft.values())).beta)
        self._set_beta(self._round_epoch + 1)
