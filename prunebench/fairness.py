"""The fairness rules that numbers are judged by, each stated once; the runner and the reporter both use them.

- The comparison setups of Wang et al. 2023, Table 2, as a ladder: each S-level fixes everything the
  levels below it fix, plus one more thing (`SETUP_LADDER`, `fixes`). SX-A and SX-B stand apart: they
  fix a total budget of epochs or of training FLOPs of every stage, base training included, whatever a method
  spends it on (`counted`, `total_limits`, `allowance`): so sparse training from scratch, which uses no dense
  model (`trains_from_scratch`), is compared with pruning at equal total epochs or FLOPs, and only there
  (`assumes_shared_dense_model`).
- The sparsity tolerance: achieved sparsity may differ from the target by the protocol's tolerance
  (`off_target`), compared with one slack `EPS` for floating-point noise; effective sparsity above the target by
  more than the protocol's margin (`over_effective`); an accuracy within its margin of chance (`near_chance`).
- The budget audit of one job's ledger against the protocol (`audit_budget`), and how a retraining recipe
  differs from the protocol's (`recipe_differences`).
- Which of its dense model's saved states a job may have (`job_states`): a method that prunes before training
  never gets the trained weights.

What a method's code may not do while it runs (change weights outside the engine, hook the model) is the
engine's seal (prunebench.engine.guard); what its job returns is measured by the runner, in another process
(prunebench.run.measurement.measure).

This module sits below the protocol models (which take their setup names from here), so it reads
protocol objects without importing them, not even for their types: `AuditedProtocol`, `AuditedBudget` and
`AuditedRecipe` name, as typing.Protocols, exactly the fields the rules read, and prunebench.protocol's
`Protocol`, `BudgetSpec` and `TrainingSpec` have them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from prunebench.results import BudgetRecord, Ledger, StageLedger


# ---- what the rules read of a protocol (prunebench.protocol's models, by their shape) -------------------------
class _Schedule(Protocol):
    @property
    def name(self) -> str: ...


class AuditedRecipe(Protocol):
    """A training recipe as the rules read it (prunebench.protocol.TrainingSpec)."""

    @property
    def epochs(self) -> int: ...
    @property
    def optimizer(self) -> object: ...  # compared as a whole
    @property
    def schedule(self) -> _Schedule: ...
    def model_dump(self, *, exclude: set[str]) -> dict[str, Any]: ...


class AuditedBudget(Protocol):
    """A budget as the audit reads it (prunebench.protocol.BudgetSpec)."""

    @property
    def pruning_epochs(self) -> float: ...
    @property
    def total_epochs(self) -> float | None: ...
    @property
    def total_train_flops(self) -> float | None: ...


class _Pruning(Protocol):
    @property
    def scoring_examples(self) -> int: ...


class AuditedProtocol(Protocol):
    """A protocol as the audit reads it (prunebench.protocol.Protocol; for a retraining variant's job, the
    protocol with the variant's recipe)."""

    @property
    def comparison(self) -> str: ...
    @property
    def base(self) -> AuditedRecipe: ...
    @property
    def budget(self) -> AuditedBudget: ...
    @property
    def retrain(self) -> AuditedRecipe: ...
    @property
    def pruning(self) -> _Pruning: ...


EPS = 1e-6  # slack of every comparison of measured fractions and epochs
SETUP_LADDER = ("S1", "S2", "S3.1", "S3.2", "S4.1", "S4.2")
TOTAL_SETUPS = ("SX-A", "SX-B")
COMPARISON_SETUPS = (*SETUP_LADDER, *TOTAL_SETUPS)
ComparisonSetup = Literal[COMPARISON_SETUPS]  # type: ignore[valid-type]
# What each rung of the ladder adds to the one below it (Wang et al. 2023, Table 2).
FIXES = {
    "S2": "base_model",
    "S3.1": "retrain_epochs",
    "S3.2": "retrain_recipe",
    "S4.1": "pruning_epochs",
    "S4.2": "pruning_recipe",
}


def fixes(setup: str, what: str) -> bool:
    """Whether comparison setup `setup` fixes `what` (a value of FIXES) for every method."""
    if setup not in SETUP_LADDER:
        return False
    rung = next(s for s, w in FIXES.items() if w == what)
    return SETUP_LADDER.index(setup) >= SETUP_LADDER.index(rung)


def job_states(when: str, *, rewind_is_init: bool) -> tuple[str, ...]:
    """The saved states of its seed's dense model (init, rewind, final) that a job of a method pruning `when`
    gets: in its process, and so in its engine, which grants a method's `load_weights` only for states it holds.

    A method that prunes before training (SNIP, GraSP, SynFlow: pruning at initialization) starts from the
    initialization and may know nothing of base training: not its final weights, nor an early iterate of it.
    The rewind point is kept only when it is the initialization itself (pruning.rewind_epoch 0, the default);
    rewinding to a later iterate takes weights that base training made, and masks or weights chosen with them
    are lottery-ticket pruning (Frankle et al. 2020), which prunes during or after training and says so.
    Methods that prune during or after training start from the trained weights: they get every state."""
    if when == "before_training":
        return ("init", "rewind") if rewind_is_init else ("init",)
    return ("init", "rewind", "final")


def uses_dense_model(when: str) -> bool:
    """Whether a job of a method pruning `when` starts from its seed's trained dense model: every method but one
    that prunes before training (which starts from the initialization, `job_states`)."""
    return when != "before_training"


def trains_from_scratch(when: str, schedule: str) -> bool:
    """Sparse training from scratch (dynamic sparse training: SET, RigL): a sparse network from the initialization
    whose connections move while it trains. It uses no dense model, and its training is its whole life."""
    return when == "before_training" and schedule == "dynamic"


def assumes_shared_dense_model(setup: str) -> bool:
    """Whether a comparison setup compares methods on one trained dense model (S2 and above: the same base model,
    then the same retraining). Sparse training from scratch has none to share: under such a setup its training
    would be the retraining stage alone, a fraction of what the pruning methods beside it spend. It is compared
    under SX-A or SX-B (equal totals, dense training included; Liu et al. 2021, Evci et al. 2020), or S1."""
    return fixes(setup, "base_model")


def counted(ledger: Ledger, setup: str, *, dense_model: bool) -> StageLedger:
    """What a comparison setup counts of a job's ledger. The ladder counts what a method spends after the shared
    base model. SX-A and SX-B count every stage: base training too for a job that starts from the trained dense
    model (`dense_model`), and not for one that starts from the initialization, which never used it."""
    after = ledger.after_base()
    return ledger.base.add(after) if setup in TOTAL_SETUPS and dense_model else after


def total_limits(
    protocol: AuditedProtocol, stated: AuditedBudget | None, dense_flops: float, train_size: int
) -> tuple[float, float]:
    """(epochs, training FLOPs) that SX-A and SX-B allow a job: the budget's totals (by default pruning plus
    retraining epochs, and the FLOPs of retraining the dense model for as long), plus base training's (its epochs,
    and a dense model's FLOPs over them), which every method has, in a dense model or to train from scratch."""
    budget = stated or protocol.budget
    retrain, base = protocol.retrain.epochs, protocol.base.epochs
    epochs = budget.total_epochs if budget.total_epochs is not None else budget.pruning_epochs + retrain
    flops = (
        budget.total_train_flops if budget.total_train_flops is not None else 3.0 * dense_flops * train_size * retrain
    )
    return base + epochs, flops + 3.0 * dense_flops * train_size * base


@dataclass(frozen=True)
class Allowance:
    """What the comparison setup lets a job spend from where it starts (the trained dense model, or the
    initialization): epochs under SX-A, training FLOPs under SX-B (None where the setup fixes no such total). A
    method that chooses its training's length (`Method.retrain_epochs`) plans with it; the audit holds it to it."""

    epochs: float | None = None
    train_flops: float | None = None
    train_examples: int = 0  # an epoch's examples: what turns training FLOPs into epochs


def allowance(
    protocol: AuditedProtocol, stated: AuditedBudget | None, dense_flops: float, train_size: int, *, dense_model: bool
) -> Allowance:
    """The `Allowance` of a job under `protocol` (and a budget stated for its method): the totals of
    `total_limits`, less base training's for a job that starts from the dense model (which spent them)."""
    if protocol.comparison not in TOTAL_SETUPS:
        return Allowance()
    epochs, flops = total_limits(protocol, stated, dense_flops, train_size)
    if dense_model:
        epochs -= protocol.base.epochs
        flops -= 3.0 * dense_flops * train_size * protocol.base.epochs
    if protocol.comparison == "SX-A":
        return Allowance(epochs=epochs, train_examples=train_size)
    return Allowance(train_flops=flops, train_examples=train_size)


def off_target(achieved: float, target: float, tolerance: float) -> bool:
    """Whether an achieved sparsity misses its target by more than the protocol's tolerance."""
    return abs(achieved - target) > tolerance + EPS


def near_chance(top1: float, chance: float, margin: float) -> bool:
    """Whether a test top-1 is degenerate: no higher than chance (1 / classes) plus the protocol's margin
    (evaluation.chance_margin). A collapsed model predicts one class, or no better than a guess; below chance is as
    degenerate as at it. Such a result stays in its method's mean: it is the method's result."""
    return top1 <= chance + margin + EPS


def over_effective(effective: float, target: float, margin: float) -> bool:
    """Whether an effective sparsity (Vysogorets & Kempe 2023: zeros plus kept weights on no input-output path)
    exceeds the target sparsity by more than the protocol's margin (pruning.effective_margin)."""
    return effective - target > margin + EPS


def recipe_differences(used: AuditedRecipe, fixed: AuditedRecipe) -> list[str]:
    """How a retraining recipe differs from the protocol's apart from its length (optimizer, batch size,
    loss, LR schedule), as `field used (protocol: fixed)`. Schedule fields measured in epochs are compared
    only when the lengths agree: a stretched schedule is the same schedule, its length judged as epochs."""

    def flat(spec: AuditedRecipe) -> dict[str, Any]:
        raw = spec.model_dump(exclude={"epochs"})
        out = {f"{group}.{k}": v for group in ("optimizer", "schedule") for k, v in raw.pop(group).items()}
        out.update(raw)
        if used.epochs != fixed.epochs:
            for key in ("schedule.milestones", "schedule.step_size", "schedule.warmup_epochs"):
                out.pop(key)
        return out

    a, b = flat(used), flat(fixed)
    return [f"{k} {a[k]} (protocol: {b[k]})" for k in a if a[k] != b[k]]


def audit_budget(
    protocol: AuditedProtocol,
    stated: AuditedBudget | None,
    ledger: Ledger,
    pruning_specs: Sequence[AuditedRecipe],
    dense_flops: float,
    train_size: int,
    *,
    retrain_used: AuditedRecipe | None = None,
    recipe: str = "retrain",
    dense_model: bool = True,
) -> BudgetRecord:
    """Check what a job spent (the ledger) against the budget and the comparison setup of `protocol`
    (a prunebench.protocol.Protocol; for a retraining variant's job, the protocol with its recipe).

    `retrain_used` is the recipe the retraining stage ran (default: the protocol's) and `recipe` its name.
    S3.1 and above fix the retraining epochs; S3.2 and above also the retraining recipe (optimizer, batch
    size, LR schedule), so learning-rate rewinding is a violation there unless the protocol's `retrain`
    is that schedule. SX-A / SX-B judge only the totals of every stage (`counted`: base training too for a job that
    starts from the dense model, `dense_model`), whatever the regime spends them on."""
    budget = stated or protocol.budget
    setup = protocol.comparison
    retrain = protocol.retrain
    scoring = protocol.pruning.scoring_examples
    if setup in TOTAL_SETUPS:
        total_epochs, total_flops = total_limits(protocol, stated, dense_flops, train_size)
    else:  # recorded, not judged: what the budget totals are after the base model
        total_epochs = (
            budget.total_epochs if budget.total_epochs is not None else budget.pruning_epochs + retrain.epochs
        )
        total_flops = (
            budget.total_train_flops
            if budget.total_train_flops is not None
            else 3.0 * dense_flops * train_size * retrain.epochs
        )
    limits: dict[str, float | None] = {
        "pruning_epochs": budget.pruning_epochs,
        "scoring_examples": float(scoring),
        "retrain_epochs": float(retrain.epochs),
        "total_epochs": total_epochs,
        "total_train_flops": total_flops,
    }
    spent = counted(ledger, setup, dense_model=dense_model)
    violations = []
    if ledger.pruning.forward_examples > scoring:
        violations.append(
            f"scored weights on {ledger.pruning.forward_examples} examples; the protocol allows {scoring}"
        )
    if ledger.pruning.epochs > budget.pruning_epochs + EPS:
        violations.append(
            f"trained {ledger.pruning.epochs:.2f} epochs while pruning; the budget allows {budget.pruning_epochs:g}"
        )
    if fixes(setup, "retrain_epochs") and abs(ledger.retrain.epochs - retrain.epochs) > EPS:
        violations.append(f"{setup}: retrained {ledger.retrain.epochs:.2f} epochs; the protocol fixes {retrain.epochs}")
    differences = recipe_differences(retrain_used, retrain) if retrain_used is not None else []
    if fixes(setup, "retrain_recipe") and differences:
        violations.append(
            f"{setup}: retrained with the {recipe} recipe, not the protocol's retraining recipe that every "
            f"method shares: {'; '.join(differences)}"
        )
    if fixes(setup, "pruning_epochs") and abs(ledger.pruning.epochs - budget.pruning_epochs) > EPS:
        violations.append(
            f"{setup}: pruned over {ledger.pruning.epochs:.2f} epochs; every method must spend "
            f"{budget.pruning_epochs:g}"
        )
    if fixes(setup, "pruning_recipe"):
        for spec in pruning_specs:
            if spec.optimizer != retrain.optimizer or spec.schedule.name != retrain.schedule.name:
                violations.append(f"{setup}: trained while pruning with an optimizer or LR schedule of its own")
                break
    if setup == "SX-A" and spent.epochs > total_epochs + EPS:
        violations.append(f"SX-A: {spent.epochs:.2f} epochs in all; the budget is {total_epochs:g}")
    if setup == "SX-B" and spent.train_flops + spent.forward_flops > total_flops * (1 + EPS):
        violations.append(
            f"SX-B: {spent.train_flops + spent.forward_flops:.3g} training FLOPs in all; "
            f"the budget is {total_flops:.3g}"
        )
    return BudgetRecord(
        comparison=setup,
        stated_by="method" if stated is not None else "protocol",
        limits=limits,
        violations=violations,
    )
