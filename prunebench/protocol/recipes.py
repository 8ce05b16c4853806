"""Training recipes: optimizer, learning-rate schedule and the recipe of one training stage, and the
recipe each retraining regime runs under a protocol (`retraining_recipe`, which raises `RecipeError`)."""

from __future__ import annotations

from typing import Literal, NamedTuple, get_args

from pydantic import Field, ValidationError, model_validator

from prunebench.protocol.base import MAX_BATCH, MAX_EPOCHS, MAX_ITEMS, StrictModel
from prunebench.protocol.identity import HASHED_WHEN_SET, NOT_HASHED
from prunebench.protocol.language import ExpectSpec
from prunebench.results.taxonomy import Regime

# The recipes a retraining regime can run: the protocol's `retrain`, or base training's tail (see below).
RecipeName = Literal["retrain", "base_tail"]


class OptimizerSpec(StrictModel):
    name: Literal["sgd", "adam", "adamw"] = Field("sgd", description="Optimizer.")
    lr: float = Field(0.1, gt=0, le=1000, description="Peak learning rate (after warmup, before decay).")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum (ignored by Adam/AdamW).")
    nesterov: bool = Field(False, description="Use Nesterov momentum (SGD only).")
    weight_decay: float = Field(1e-4, ge=0, le=1, description="L2 weight decay (decoupled for AdamW).")


class ScheduleSpec(StrictModel):
    name: Literal["constant", "step", "multistep", "cosine"] = Field(
        "constant", description="Learning-rate schedule over the stage's epochs; applied per step."
    )
    milestones: list[int] = Field(
        default_factory=list,
        max_length=MAX_ITEMS,
        description="multistep: epochs at which the LR is multiplied by gamma.",
    )
    step_size: int | None = Field(
        None, gt=0, le=MAX_EPOCHS, description="step: the LR is multiplied by gamma every step_size epochs."
    )
    gamma: float = Field(0.1, gt=0, le=1, description="Multiplicative decay of step and multistep schedules.")
    warmup_epochs: float = Field(
        0.0, ge=0, le=MAX_EPOCHS, description="Linear warmup from 0 to the peak LR over these epochs."
    )
    min_lr: float = Field(0.0, ge=0, le=1000, description="cosine: the LR reached at the last step.")
    span_epochs: int | None = Field(
        None,
        gt=0,
        le=MAX_EPOCHS,
        description="Epochs the schedule is laid out over (cosine length, milestone range); default: the "
        "stage's epochs. With start_epoch, a stage runs a window of a longer schedule.",
        json_schema_extra=HASHED_WHEN_SET,
    )
    start_epoch: float = Field(
        0.0,
        ge=0,
        le=MAX_EPOCHS,
        description="Enter the schedule at this epoch: the stage runs its window [start_epoch, start_epoch + "
        "epochs). Learning-rate rewinding (Renda et al. 2020) runs the last epochs of base training's schedule.",
        json_schema_extra=HASHED_WHEN_SET,
    )

    @model_validator(mode="after")
    def _shape(self) -> ScheduleSpec:
        if self.name == "multistep" and not self.milestones:
            raise ValueError("a multistep schedule needs milestones")
        if self.name == "step" and self.step_size is None:
            raise ValueError("a step schedule needs step_size")
        if sorted(set(self.milestones)) != list(self.milestones):
            raise ValueError("milestones must be increasing")
        if any(m <= 0 for m in self.milestones):
            raise ValueError("milestones must be positive epochs")
        return self


class TrainingSpec(StrictModel):
    epochs: int = Field(ge=0, le=MAX_EPOCHS, description="Epochs of this stage.")
    batch_size: int = Field(128, gt=0, le=MAX_BATCH, description="Training batch size.")
    optimizer: OptimizerSpec = Field(default_factory=OptimizerSpec, description="Optimizer of this stage.")
    schedule: ScheduleSpec = Field(default_factory=ScheduleSpec, description="Learning-rate schedule of this stage.")
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="Label smoothing of the cross-entropy loss.")
    grad_clip: float | None = Field(None, gt=0, le=1e9, description="Clip the global gradient norm to this value.")
    mixed_precision: bool = Field(
        True,
        description="On CUDA, train in bfloat16 autocast with channels_last, and evaluate the model this stage "
        "trained in bfloat16 autocast; ignored on the CPU.",
    )

    @model_validator(mode="after")
    def _schedule_fits(self) -> TrainingSpec:
        s = self.schedule
        span = s.span_epochs or self.epochs
        what = f"the schedule's span of {span} epochs" if s.span_epochs else f"the stage's {self.epochs} epochs"
        if s.milestones and s.milestones[-1] >= span:
            raise ValueError(f"schedule milestone {s.milestones[-1]} is not before the last epoch of {what}")
        if s.warmup_epochs > span:
            raise ValueError(f"warmup_epochs {s.warmup_epochs} exceeds {what}")
        if s.step_size is not None and s.step_size > span:
            raise ValueError(f"step_size {s.step_size} exceeds {what}")
        if s.start_epoch and s.start_epoch >= span:
            raise ValueError(f"start_epoch {s.start_epoch} is not within {what}")
        return self

    def with_epochs(self, epochs: int) -> TrainingSpec:
        """This recipe over `epochs` epochs, its schedule stretched or shrunk in proportion (milestones,
        step size and warmup scale; cosine follows the stage's length), e.g. for Scratch-B's longer run."""
        if epochs == self.epochs:
            return self
        raw = self.model_dump()
        s = raw["schedule"]
        if epochs == 0:  # no step is taken: no schedule to lay out
            raw["schedule"] = {"name": "constant"}
        elif s["span_epochs"] is None and s["start_epoch"] == 0 and self.epochs > 0:
            ratio = epochs / self.epochs
            s["milestones"] = [m for m in sorted({max(1, round(m * ratio)) for m in s["milestones"]}) if m < epochs]
            if s["name"] == "multistep" and not s["milestones"]:
                raw["schedule"] = {"name": "constant"}
            if s["step_size"] is not None:
                s["step_size"] = min(epochs, max(1, round(s["step_size"] * ratio)))
            s["warmup_epochs"] = min(float(epochs), s["warmup_epochs"] * ratio)
        # A window of a longer schedule (span_epochs set) keeps its layout: only the window's length changes.
        raw["epochs"] = epochs
        return TrainingSpec.model_validate(raw)

    def recipe(self) -> TrainingSpec:
        """This stage's training recipe alone (for base training: without where its dense model may come from)."""
        return TrainingSpec.model_validate(self.model_dump(include=set(TrainingSpec.model_fields)))


class BaseSpec(TrainingSpec):
    """Dense training of the base model; or, with `checkpoint`, a dense model the user has (e.g. torchvision's
    pretrained ResNet-50, which most ImageNet pruning papers prune), loaded instead of trained. The recipe fields
    then describe how that model was trained: learning-rate rewinding and Scratch-B derive from them."""

    checkpoint: str | None = Field(
        None,
        max_length=4096,
        description="A dense checkpoint (a state dict, torch.save) to start from instead of base training; "
        "`${VAR}` reads an environment variable. Not hashed: its sha256 is.",
        json_schema_extra=NOT_HASHED,
    )
    sha256: str | None = Field(
        None,
        pattern=r"^[0-9a-f]{64}$",
        description="sha256 of the checkpoint file (`sha256sum`): part of the protocol's identity.",
        json_schema_extra=HASHED_WHEN_SET,
    )
    expect: ExpectSpec | None = Field(
        None,
        description="The dense model's expected test perplexity (task causal_lm): measured before any pruned "
        "result of it is accepted, a mismatch fails the run in one line.",
        json_schema_extra=HASHED_WHEN_SET,
    )

    @model_validator(mode="after")
    def _checkpoint_named_by_its_hash(self) -> BaseSpec:
        if (self.checkpoint is None) != (self.sha256 is None):
            raise ValueError(
                "base.checkpoint and base.sha256 go together: the file's hash, not its path, says which model it is"
            )
        return self


# The training recipe each retraining regime runs. It is derived from the protocol, so the protocol
# (not the method) controls it; the result records the recipe's name and the budget audit judges it.
RETRAINING_RECIPES: dict[Regime, RecipeName] = {
    "fine_tune": "retrain",  # the protocol's retraining recipe, from the pruned weights
    "weight_rewinding": "retrain",  # the same recipe, from the weights saved at pruning.rewind_epoch
    "scratch": "retrain",  # the same recipe, from a fresh initialization
    "lr_rewinding": "base_tail",  # base training's recipe over its last epochs (Renda et al. 2020)
}
if set(RETRAINING_RECIPES) != set(get_args(Regime)):  # a regime added to the taxonomy needs its recipe here
    raise ImportError(f"RETRAINING_RECIPES covers {sorted(RETRAINING_RECIPES)}, not every Regime {get_args(Regime)}")


class RecipeError(ValueError):
    """A retraining regime has no recipe under a protocol: the regime is unknown, or the recipe derived for it is
    not a valid TrainingSpec (e.g. more epochs than a stage may have, or learning-rate rewinding into a base
    training of 0 epochs). A ValueError, as the failures it replaces were."""


class RetrainingRecipe(NamedTuple):
    """What a retraining regime runs: the recipe's name (`retrain` or `base_tail`) and the recipe. A tuple, so
    `name, spec = retraining_recipe(...)` reads it."""

    name: RecipeName
    spec: TrainingSpec


def retraining_recipe(
    regime: Regime | str, *, base: TrainingSpec, retrain: TrainingSpec, epochs: int | None = None
) -> RetrainingRecipe:
    """The recipe a retraining regime runs over `epochs` epochs (default retrain.epochs): the one derivation of
    it, for the runner (`Protocol.retraining_recipe`), a job and a method's context alike.

    `retrain`: the protocol's retraining recipe, stretched in proportion when a method asks for other
    epochs. `base_tail`: base training's optimizer, batch size and LR schedule, entered so that the
    stage runs the schedule's last `epochs` epochs (learning-rate rewinding).

    Raises RecipeError, and only that, when the regime has no recipe (see RecipeError)."""
    n = retrain.epochs if epochs is None else epochs
    # A regime read from a record or a header is any string until it is looked up here.
    name = next((recipe for known, recipe in RETRAINING_RECIPES.items() if known == regime), None)
    if name is None:
        raise RecipeError(f"unknown retraining regime {regime!r} (known: {', '.join(RETRAINING_RECIPES)})")
    try:
        if name == "retrain":
            return RetrainingRecipe(name, retrain.with_epochs(n))
        raw = base.recipe().model_dump()
        schedule = raw["schedule"]
        end = schedule["start_epoch"] + base.epochs
        schedule["span_epochs"] = schedule["span_epochs"] or base.epochs
        schedule["start_epoch"] = max(0.0, end - n)
        raw["epochs"] = n
        return RetrainingRecipe(name, TrainingSpec.model_validate(raw))
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(map(str, error["loc"]))
        what = error["msg"].removeprefix("Value error, ")
        raise RecipeError(
            f"{regime} over {n} epochs: its {name} recipe would not be valid ({where + ': ' if where else ''}{what})"
        ) from None
