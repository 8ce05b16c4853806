"""The protocol file: everything a comparison fixes that is not the pruning method.

The pydantic models below are the documentation of the format: every field says what it means.
Loading is strict (unknown keys are errors) and every error names the file, line, column and
field. A protocol is identified by a content hash over the fields that change results; paths and
worker counts, which differ between machines, are left out of it.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from prunebench.errors import FieldError, ProtocolError

if typing.TYPE_CHECKING:
    from prunebench.variants import VariantPlan

Loc = tuple[str | int, ...]

COMPARISON_SETUPS = ("S1", "S2", "S3.1", "S3.2", "S4.1", "S4.2", "SX-A", "SX-B")
ComparisonSetup = Literal["S1", "S2", "S3.1", "S3.2", "S4.1", "S4.2", "SX-A", "SX-B"]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class OptimizerSpec(StrictModel):
    name: Literal["sgd", "adam", "adamw"] = Field("sgd", description="Optimizer.")
    lr: float = Field(0.1, gt=0, description="Peak learning rate (after warmup, before decay).")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum (ignored by Adam/AdamW).")
    nesterov: bool = Field(False, description="Use Nesterov momentum (SGD only).")
    weight_decay: float = Field(1e-4, ge=0, description="L2 weight decay (decoupled for AdamW).")


class ScheduleSpec(StrictModel):
    name: Literal["constant", "step", "multistep", "cosine"] = Field(
        "constant", description="Learning-rate schedule over the stage's epochs; applied per step."
    )
    milestones: list[int] = Field(
        default_factory=list, description="multistep: epochs at which the LR is multiplied by gamma."
    )
    step_size: int | None = Field(None, gt=0, description="step: the LR is multiplied by gamma every step_size epochs.")
    gamma: float = Field(0.1, gt=0, le=1, description="Multiplicative decay of step and multistep schedules.")
    warmup_epochs: float = Field(0.0, ge=0, description="Linear warmup from 0 to the peak LR over these epochs.")
    min_lr: float = Field(0.0, ge=0, description="cosine: the LR reached at the last step.")
    span_epochs: int | None = Field(
        None,
        gt=0,
        description="Epochs the schedule is laid out over (cosine length, milestone range); default: the "
        "stage's epochs. With start_epoch, a stage runs a window of a longer schedule.",
    )
    start_epoch: float = Field(
        0.0,
        ge=0,
        description="Enter the schedule at this epoch: the stage runs its window [start_epoch, start_epoch + "
        "epochs). Learning-rate rewinding (Renda et al. 2020) runs the last epochs of base training's schedule.",
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
    epochs: int = Field(ge=0, description="Epochs of this stage.")
    batch_size: int = Field(128, gt=0, description="Training batch size.")
    optimizer: OptimizerSpec = Field(default_factory=OptimizerSpec, description="Optimizer of this stage.")
    schedule: ScheduleSpec = Field(default_factory=ScheduleSpec, description="Learning-rate schedule of this stage.")
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="Label smoothing of the cross-entropy loss.")
    grad_clip: float | None = Field(None, gt=0, description="Clip the global gradient norm to this value.")
    mixed_precision: bool = Field(
        True, description="On CUDA, train in bfloat16 autocast with channels_last; ignored on the CPU."
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


class DataSpec(StrictModel):
    name: str = Field(description="Dataset name in the registry (`prunebench datasets` lists them).")
    root: str | None = Field(
        None,
        description="Directory of the data; `${VAR}` and `${VAR:-default}` read environment variables. "
        "Not part of the protocol hash: the same data may live anywhere.",
    )
    val_fraction: float = Field(
        0.1, gt=0, lt=0.5, description="Fraction of the training data held out as the validation split."
    )
    split_seed: int = Field(0, description="Seed of the train/validation split (and of subsets); fixed per protocol.")
    train_subset: int | None = Field(
        None,
        gt=0,
        description="Use this many training examples, the validation split included (class-balanced, "
        "seeded by split_seed).",
    )
    test_subset: int | None = Field(None, gt=0, description="Use this many test examples (class-balanced).")
    augmentation: str = Field("none", description="Training augmentation by name: none, flip_crop, imagenet.")
    eval_batch_size: int = Field(512, gt=0, description="Batch size of evaluation passes (not hashed).")
    num_workers: int = Field(0, ge=0, description="Data-loading worker processes for on-disk data (not hashed).")

    def resolved_root(self) -> Path | None:
        """The root with environment variables expanded; a FieldError when one is unset."""
        if self.root is None:
            return None

        def expand(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(3)
            value = os.environ.get(name)
            if value:
                return value
            if default is not None:
                return default
            raise FieldError(("data", "root"), f"environment variable {name} is not set (it names the data directory)")

        return Path(re.sub(r"\$\{(\w+)(:-([^}]*))?\}", expand, self.root)).expanduser()


class ModelSpec(StrictModel):
    name: str = Field(description="Model name in the registry (`prunebench models` lists them).")
    args: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments of the model constructor.")


class PrunableSpec(StrictModel):
    layer_types: list[Literal["conv", "linear"]] = Field(
        default_factory=lambda: ["conv", "linear"],
        description="Weights of these layer types are prunable; biases and normalization layers never are.",
    )
    include_first: bool = Field(True, description="Whether the first layer (in execution order) is prunable.")
    include_last: bool = Field(True, description="Whether the last layer (the classifier) is prunable.")
    exclude: list[str] = Field(
        default_factory=list, description="Parameter names (glob patterns, e.g. `*.downsample.*`) never pruned."
    )


class PruningSpec(StrictModel):
    sparsities: list[float] = Field(
        description="Target sparsities: fraction of prunable weights that are zero after pruning."
    )
    tolerance: float = Field(
        0.005, ge=0, lt=1, description="Achieved sparsity may differ from the target by this much."
    )
    granularity: Literal["unstructured", "filter", "n:m"] = Field(
        "unstructured",
        description="The finest structure a method may remove. Sparsity is always counted in weights; a "
        "method whose granularity is finer than this is refused (no unstructured method in a filter protocol).",
    )
    prunable: PrunableSpec = Field(default_factory=PrunableSpec, description="Which tensors count and may be pruned.")
    rewind_epoch: float = Field(
        0.0, ge=0, description="Base training saves the weights at this epoch for rewinding (0: the initialization)."
    )
    scoring_examples: int = Field(
        1024, ge=0, description="Examples a data-dependent criterion may look at when it scores weights."
    )

    @field_validator("sparsities")
    @classmethod
    def _valid(cls, v: list[float]) -> list[float]:
        if not v:
            raise ValueError("at least one target sparsity is needed")
        for s in v:
            if not 0 < s < 1:
                raise ValueError(f"sparsity {s} is not between 0 and 1 (exclusive)")
        if len(set(v)) != len(v):
            raise ValueError("sparsities repeat")
        return sorted(v)


class BudgetSpec(StrictModel):
    pruning_epochs: float = Field(
        0.0,
        ge=0,
        description="Training epochs a method may spend while pruning (iterative rounds, gradual "
        "schedules, soft masks); 0 means one-shot pruning of the base model.",
    )
    total_epochs: float | None = Field(
        None, gt=0, description="SX-A: pruning plus retraining epochs (default pruning_epochs + retrain.epochs)."
    )
    total_train_flops: float | None = Field(
        None,
        gt=0,
        description="SX-B: training FLOPs of pruning plus retraining (default: retraining the dense "
        "model for retrain.epochs).",
    )


# The training recipe each retraining regime runs. It is derived from the protocol, so the protocol
# (not the method) controls it; the result records the recipe's name and the budget audit judges it.
RETRAINING_RECIPES: dict[str, str] = {
    "fine_tune": "retrain",  # the protocol's retraining recipe, from the pruned weights
    "weight_rewinding": "retrain",  # the same recipe, from the weights saved at pruning.rewind_epoch
    "scratch": "retrain",  # the same recipe, from a fresh initialization
    "lr_rewinding": "base_tail",  # base training's recipe over its last epochs (Renda et al. 2020)
}


def retraining_recipe(
    regime: str, *, base: TrainingSpec, retrain: TrainingSpec, epochs: int | None = None
) -> tuple[str, TrainingSpec]:
    """(recipe name, recipe) of a retraining regime over `epochs` epochs (default retrain.epochs).

    `retrain`: the protocol's retraining recipe, stretched in proportion when a method asks for other
    epochs. `base_tail`: base training's optimizer, batch size and LR schedule, entered so that the
    stage runs the schedule's last `epochs` epochs (learning-rate rewinding)."""
    n = retrain.epochs if epochs is None else epochs
    name = RETRAINING_RECIPES.get(regime)
    if name is None:
        raise ValueError(f"unknown retraining regime {regime!r} (known: {', '.join(RETRAINING_RECIPES)})")
    if name == "retrain":
        return name, retrain.with_epochs(n)
    raw = base.model_dump()
    schedule = raw["schedule"]
    end = schedule["start_epoch"] + base.epochs
    schedule["span_epochs"] = schedule["span_epochs"] or base.epochs
    schedule["start_epoch"] = max(0.0, end - n)
    raw["epochs"] = n
    return name, TrainingSpec.model_validate(raw)


class MethodSpec(StrictModel):
    name: str = Field(description="A registered method name, `package.module:Class`, or `path/to/file.py:Class`.")
    label: str | None = Field(None, description="Name in results and tables (default: the method's name).")
    config: dict[str, Any] = Field(default_factory=dict, description="The method's hyperparameters.")
    budget: BudgetSpec | None = Field(
        None, description="A budget stated for this method alone; it is checked and shown in every table."
    )

    @property
    def key(self) -> str:
        return self.label or self.name


class EvaluationSpec(StrictModel):
    test_curves: bool = Field(
        False,
        description="Also record test accuracy after each epoch. Nothing selects on it; the reported "
        "number is always the last epoch's.",
    )
    top_k: list[int] = Field(default_factory=lambda: [1, 5], description="Top-k accuracies to report.")


class SheddingSpec(StrictModel):
    """Cascade weight shedding (Azarian & Porikli 2021); definitions in docs/analyses.md."""

    enabled: bool = Field(False, description="Record, each epoch, how many kept weights fell below the threshold.")
    threshold: Literal["global_pruning", "layer_pruning", "layer_scale"] = Field(
        "global_pruning",
        description="The magnitude below which a kept weight counts as shed: global_pruning, the threshold of "
        "global magnitude pruning of the reference weights to the masks' sparsity; layer_pruning, the same per "
        "layer; layer_scale, the root mean square of the layer's reference weights. Times `factor`.",
    )
    factor: float = Field(
        1.0, gt=0, description="Multiplier of the threshold (default 1.0; 0.1 with threshold: layer_scale)."
    )
    reference: Literal["auto", "init", "rewind", "base"] = Field(
        "auto",
        description="Weights the threshold is computed from. auto: the dense weights retraining starts from "
        "(rewind for weight rewinding, init for scratch and for methods that prune before training, else base).",
    )
    per_layer: bool = Field(False, description="Also record each prunable layer's numbers.")

    @model_validator(mode="before")
    @classmethod
    def _default_factor(cls, data: Any) -> Any:
        # The factor's natural scale depends on the rule: the pruning threshold itself, or a tenth of a layer's RMS.
        if isinstance(data, dict) and "factor" not in data:
            data = {**data, "factor": 0.1 if data.get("threshold") == "layer_scale" else 1.0}
        return data


class CorrelationSpec(StrictModel):
    """Weight correlation R_p (Liu et al. 2021); definition in docs/analyses.md."""

    enabled: bool = Field(False, description="Record, each epoch, R_p between the current and reference weights.")
    p: list[float] = Field(
        default_factory=lambda: [0.1, 0.2, 0.3, 0.4, 0.5],
        description="Fractions p of each layer's weights whose top-p sets by magnitude are compared.",
    )
    against: list[Literal["init", "rewind", "base"]] = Field(
        default_factory=lambda: ["init", "rewind", "base"],
        description="Reference weights: init (base training's initialization), rewind (saved at "
        "pruning.rewind_epoch), base (the trained dense model).",
    )
    per_layer: bool = Field(False, description="Also record each prunable layer's R_p.")

    @field_validator("p")
    @classmethod
    def _fractions(cls, v: list[float]) -> list[float]:
        if not v or any(not 0 < p < 1 for p in v) or len(set(v)) != len(v):
            raise ValueError("p must be a non-empty list of distinct fractions between 0 and 1 (exclusive)")
        return sorted(v)

    @field_validator("against")
    @classmethod
    def _references(cls, v: list[str]) -> list[str]:
        if not v or len(set(v)) != len(v):
            raise ValueError("against must name at least one reference, each once")
        return v


class TrainabilitySpec(StrictModel):
    """Trainability accuracy (Wang et al. 2023); definition in docs/analyses.md."""

    enabled: bool = Field(False, description="Record the mean validation accuracy of the first retraining epochs.")
    epochs: int | None = Field(
        None,
        gt=0,
        description="Epochs averaged; default the first LR stage of retraining (first milestone, first step, "
        "every epoch of a constant schedule, the first half of a cosine decay).",
    )


class AnalysesSpec(StrictModel):
    """Measurements recorded alongside the curves; they never influence training or selection.
    Hashed only when set, so protocols without them keep their identity."""

    shedding: SheddingSpec = Field(default_factory=SheddingSpec, description="Cascade weight shedding, per epoch.")
    correlation: CorrelationSpec = Field(
        default_factory=CorrelationSpec, description="Weight correlation R_p with reference weights, per epoch."
    )
    trainability: TrainabilitySpec = Field(
        default_factory=TrainabilitySpec, description="Trainability accuracy, once per job."
    )


def hashed_analyses(content: dict[str, Any]) -> None:
    """Keep in a protocol dump only the analyses that are enabled, and no `analyses` key when none is:
    protocols written before analyses existed keep their hash, and settings of an analysis that is off
    change nothing. (Analyses never change training, yet they change what a result file holds.)"""
    enabled = {k: v for k, v in content.get("analyses", {}).items() if isinstance(v, dict) and v.get("enabled")}
    if enabled:
        content["analyses"] = enabled
    else:
        content.pop("analyses", None)


# ---- retraining variants (prunebench.variants expands them; docs/analyses.md) ---------------------
class OptimizerChange(StrictModel):
    """Optimizer fields a retraining variant changes; an unset field keeps the protocol's value."""

    name: Literal["sgd", "adam", "adamw"] | None = Field(None, description="Optimizer.")
    lr: float | None = Field(None, gt=0, description="Peak learning rate.")
    momentum: float | None = Field(None, ge=0, lt=1, description="SGD momentum.")
    nesterov: bool | None = Field(None, description="Nesterov momentum (SGD only).")
    weight_decay: float | None = Field(None, ge=0, description="Weight decay.")


class RecipeChange(StrictModel):
    """A retraining recipe written as changes to the protocol's `retrain`; `{}` is that recipe itself."""

    epochs: int | None = Field(
        None,
        gt=0,
        description="Retraining epochs. Without `schedule`, the protocol's schedule is stretched to them "
        "(TrainingSpec.with_epochs); with it, the schedule is taken as written.",
    )
    batch_size: int | None = Field(None, gt=0, description="Training batch size.")
    optimizer: OptimizerChange = Field(
        default_factory=OptimizerChange, description="Optimizer fields that change; the others stay the protocol's."
    )
    schedule: ScheduleSpec | None = Field(
        None, description="The LR schedule, replacing the protocol's whole one (its fields depend on one another)."
    )
    label_smoothing: float | None = Field(None, ge=0, lt=1, description="Label smoothing of the loss.")
    grad_clip: float | None = Field(None, gt=0, description="Global gradient-norm clip (unset: the protocol's).")


class RetrainSweepSpec(StrictModel):
    """Retraining-LR sweep: each candidate recipe runs for every method; selection is on validation only."""

    lr: list[float] = Field(
        default_factory=list,
        description="Peak retraining learning rates tried, each with the protocol's optimizer otherwise. The "
        "protocol's own recipe is always a candidate; an entry equal to it is that candidate, not run twice.",
    )
    schedules: dict[str, ScheduleSpec] = Field(
        default_factory=dict,
        description="Named LR schedules tried (over retrain.epochs), each with every `lr` (or with the protocol's "
        "LR when `lr` is empty). Default: only the protocol's schedule.",
    )

    @field_validator("lr")
    @classmethod
    def _lrs(cls, v: list[float]) -> list[float]:
        if any(lr <= 0 for lr in v) or len(set(v)) != len(v):
            raise ValueError("lr must be distinct positive learning rates")
        return v

    @field_validator("schedules")
    @classmethod
    def _names(cls, v: dict[str, ScheduleSpec]) -> dict[str, ScheduleSpec]:
        for name in v:
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_.-]*", name) or name in ("protocol", "selected"):
                raise ValueError(
                    f"schedule name {name!r} must start with a letter, use [A-Za-z0-9_.-] and not be "
                    "`protocol` or `selected`"
                )
        return v

    @model_validator(mode="after")
    def _something(self) -> RetrainSweepSpec:
        if not self.lr and not self.schedules:
            raise ValueError("a retraining sweep needs `lr` or `schedules`")
        return self


class RetrainExtensionSpec(StrictModel):
    """Retraining-epoch extension: the same recipes over more epochs, schedules stretched."""

    epochs: list[int] = Field(
        min_length=1,
        description="Extra retraining epochs e: each adds the protocol's recipe and every sweep candidate over "
        "retrain.epochs + e epochs, their schedules stretched in proportion (TrainingSpec.with_epochs).",
    )

    @field_validator("epochs")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if any(e <= 0 for e in v) or len(set(v)) != len(v):
            raise ValueError("epochs must be distinct positive numbers of extra epochs")
        return sorted(v)


class SwapSpec(StrictModel):
    """The swap test (Wang et al. 2023, §5): methods A and B, each with its own retraining recipe FT_A and FT_B,
    run as A+FT_A, A+FT_B, B+FT_A and B+FT_B from the same dense checkpoints."""

    recipes: dict[str, RecipeChange] = Field(
        description="Each method's own retraining recipe, by method label, as changes to `retrain` ({} is the "
        "protocol's recipe). At least two methods."
    )
    pairs: list[tuple[str, str]] | None = Field(
        None, description="The pairs (A, B) swapped; default every pair of the methods in `recipes`, in order."
    )


class VariantsSpec(StrictModel):
    """Retraining variants: the protocol run again with another retraining recipe in place of `retrain`, from
    the same dense checkpoints; each variant's jobs and results stand beside the protocol's own, never mixed
    into its ranking. Hashed only when set, so protocols without variants keep their identity."""

    retrain_sweep: RetrainSweepSpec | None = Field(
        None, description="Retraining-LR sweep; the leaderboard adds each method at its validation-selected recipe."
    )
    retrain_extension: RetrainExtensionSpec | None = Field(
        None, description="Retraining extended by given epochs (of the protocol's recipe and each sweep candidate)."
    )
    swap: SwapSpec | None = Field(None, description="The swap test of two methods' own retraining recipes.")


def hashed_variants(content: dict[str, Any]) -> None:
    """Keep in a protocol dump only the variant sections that are set, and no `variants` key when none is."""
    kept = {k: v for k, v in content.get("variants", {}).items() if v is not None}
    if kept:
        content["variants"] = kept
    else:
        content.pop("variants", None)


class Protocol(StrictModel):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="Short name; names the results directory.")
    description: str = Field("", description="What this protocol compares (not hashed).")
    data: DataSpec = Field(description="Data set, splits and augmentation.")
    model: ModelSpec = Field(description="Architecture.")
    base: TrainingSpec = Field(description="Dense training of the base model, once per seed, shared by all methods.")
    pruning: PruningSpec = Field(description="Sparsity targets and what counts as a prunable weight.")
    retrain: TrainingSpec = Field(description="Retraining after pruning: the same for every method.")
    budget: BudgetSpec = Field(default_factory=BudgetSpec, description="What a method may spend beyond retraining.")
    comparison: ComparisonSetup = Field(
        "S3.2", description="Comparison setup of Wang et al. 2023, Table 2, checked for every job."
    )
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], description="Seeds; every stage is seeded.")
    methods: list[MethodSpec] = Field(min_length=1, description="The methods compared.")
    evaluation: EvaluationSpec = Field(default_factory=EvaluationSpec, description="What is measured at the end.")
    analyses: AnalysesSpec = Field(
        default_factory=AnalysesSpec, description="Analyses recorded per epoch and per job (docs/analyses.md)."
    )
    variants: VariantsSpec = Field(
        default_factory=VariantsSpec,
        description="Retraining variants run beside the protocol's own recipe: an LR sweep, an epoch extension, "
        "the swap test (docs/analyses.md).",
    )

    # Where each field stands in the file, for error messages; not part of the protocol.
    _source: Path | None = None
    _marks: dict[Loc, tuple[int, int]] = {}

    @model_validator(mode="after")
    def _unique(self) -> Protocol:
        keys = [m.key for m in self.methods]
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        if dupes:
            raise ValueError(f"method {dupes[0]!r} appears twice; give each a distinct label")
        if len(set(self.seeds)) != len(self.seeds) or not self.seeds:
            raise ValueError("seeds must be a non-empty list without repeats")
        return self

    @model_validator(mode="after")
    def _analyses_fit(self) -> Protocol:
        n = self.analyses.trainability.epochs
        if n is not None and n > self.retrain.epochs:
            raise ValueError(f"analyses.trainability.epochs {n} exceeds the {self.retrain.epochs} retraining epochs")
        return self

    @field_validator("variants")
    @classmethod
    def _variants_expand(cls, v: VariantsSpec, info: ValidationInfo) -> VariantsSpec:
        # Expanded here (not only when run) so that a recipe that does not fit, or an unknown method label,
        # is an error naming its own field.
        if v == VariantsSpec() or any(k not in info.data for k in ("retrain", "methods", "analyses")):
            return v
        from prunebench.variants import VariantError, expand_variants

        try:
            expand_variants(
                v,
                retrain=info.data["retrain"],
                labels=[m.key for m in info.data["methods"]],
                trainability_epochs=info.data["analyses"].trainability.epochs,
            )
        except VariantError as exc:
            error = PydanticCustomError("value_error", "{message}", {"message": exc.message})
            raise ValidationError.from_exception_data(
                "Protocol", [InitErrorDetails(type=error, loc=exc.loc, input=v.model_dump(mode="json"))]
            ) from None
        return v

    # ---- identity -------------------------------------------------------------------------
    def hashed_content(self) -> dict[str, Any]:
        """The fields that change results; the hash is taken over these."""
        content = self.model_dump(
            mode="json", exclude={"description": True, "data": {"root", "num_workers", "eval_batch_size"}}
        )
        _drop_unset_window(content)
        hashed_analyses(content)
        hashed_variants(content)
        return content

    def retraining_recipe(self, regime: str, epochs: int | None = None) -> tuple[str, TrainingSpec]:
        """(recipe name, recipe) that a retraining regime runs under this protocol; see `retraining_recipe`."""
        return retraining_recipe(regime, base=self.base, retrain=self.retrain, epochs=epochs)

    def variant_plan(self) -> VariantPlan:
        """The retraining variants of this protocol, expanded (prunebench.variants)."""
        from prunebench.variants import plan_of

        return plan_of(self)

    def for_variant(self, name: str | None) -> Protocol:
        """This protocol with a retraining variant's recipe as its `retrain` (and budgets stated in epochs moved
        by the variant's extra epochs): what a variant's jobs run and are audited under. None: itself."""
        from prunebench.variants import variant_protocol

        return self if name is None else variant_protocol(self, name)

    @property
    def hash(self) -> str:
        return content_hash(self.hashed_content())

    @property
    def run_name(self) -> str:
        return f"{self.name}-{self.hash[:10]}"

    def base_key(self, seed: int) -> dict[str, Any]:
        """What determines the dense checkpoint of a seed: shared by every method and sparsity."""
        content = self.hashed_content()
        return {
            "data": content["data"],
            "model": content["model"],
            "base": content["base"],
            "rewind_epoch": self.pruning.rewind_epoch,
            "seed": seed,
        }

    # ---- locating errors ------------------------------------------------------------------
    @property
    def source(self) -> Path | None:
        return self._source

    def locate(self, error: FieldError) -> ProtocolError:
        """Turn an error about a field into one that names the file and line of that field."""
        line, col = _nearest_mark(self._marks, error.loc)
        return ProtocolError(error.message, file=self._source, line=line, column=col, field=_dotted(error.loc))


def _drop_unset_window(node: Any) -> None:
    """Remove the schedule-window fields (span_epochs, start_epoch) where they hold their defaults, in every
    schedule of a protocol dump: fields added later are hashed only when set, so existing protocols keep
    their identity."""
    if isinstance(node, dict):
        if {"name", "milestones", "gamma"} <= node.keys():  # a ScheduleSpec
            if node.get("span_epochs", 0) is None:
                del node["span_epochs"]
            if node.get("start_epoch") == 0:
                del node["start_epoch"]
        for value in node.values():
            _drop_unset_window(value)
    elif isinstance(node, list):
        for value in node:
            _drop_unset_window(value)


def content_hash(content: Any) -> str:
    blob = json.dumps(content, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(blob.encode()).hexdigest()


# ---- loading ----------------------------------------------------------------------------------
def _dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _marks_of(node: yaml.Node, path: Loc, marks: dict[Loc, tuple[int, int]]) -> None:
    marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            marks[(*path, key)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            _marks_of(value_node, (*path, key), marks)
            marks[(*path, key)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _marks_of(item, (*path, i), marks)


def _nearest_mark(marks: dict[Loc, tuple[int, int]], loc: Loc) -> tuple[int | None, int | None]:
    for n in range(len(loc), -1, -1):
        if tuple(loc[:n]) in marks:
            return marks[tuple(loc[:n])]
    return None, None


def _model_at(model: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The pydantic model that holds the field at `loc` (to suggest a spelling for an unknown key)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)) or part not in current.model_fields:
            return None
        current = _unwrap(current.model_fields[part].annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType, list, Annotated):
        for arg in typing.get_args(annotation):
            inner = _unwrap(arg)
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                return inner
    return annotation


def _explain(error: Any) -> str:
    loc: Loc = tuple(error["loc"])
    if error["type"] == "extra_forbidden":
        key = str(loc[-1])
        holder = _model_at(Protocol, loc[:-1])
        hint = ""
        if holder is not None:
            close = difflib.get_close_matches(key, list(holder.model_fields), n=1)
            known = ", ".join(holder.model_fields)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {known})"
        return f"unknown field {key!r}{hint}"
    if error["type"] == "missing":
        return "required field is missing"
    msg = str(error["msg"])
    msg = msg.removeprefix("Value error, ")
    if error["type"] not in ("value_error", "assertion_error") and "input" in error:
        msg += f" (got {error['input']!r})"
    return msg


def parse_protocol(text: str, source: str | Path | None = None) -> Protocol:
    """Parse and validate protocol YAML text; every error is a ProtocolError with a location."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ProtocolError(
            f"YAML syntax error: {problem}",
            file=source,
            line=mark.line + 1 if mark else None,
            column=mark.column + 1 if mark else None,
        ) from None
    if not isinstance(raw, dict) or node is None:
        raise ProtocolError("a protocol is a YAML mapping (name:, data:, model:, ...)", file=source, line=1)
    marks: dict[Loc, tuple[int, int]] = {}
    _marks_of(node, (), marks)
    try:
        protocol = Protocol.model_validate(raw)
    except ValidationError as exc:
        # An unknown key usually explains a "missing" one (a misspelling): report it first.
        errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
        first = errors[0]
        loc: Loc = tuple(first["loc"])
        line, col = _nearest_mark(marks, loc)
        more = f" (and {len(errors) - 1} more error{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
        raise ProtocolError(
            _explain(first) + more, file=source, line=line, column=col, field=_dotted(loc) or None
        ) from None
    protocol._source = Path(source) if source is not None else None
    protocol._marks = marks
    return protocol


def load_protocol(path: str | Path) -> Protocol:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProtocolError("no such protocol file", file=path) from None
    except (IsADirectoryError, UnicodeDecodeError, PermissionError) as exc:
        raise ProtocolError(f"cannot read the protocol: {exc.__class__.__name__}", file=path) from None
    return parse_protocol(text, path)


def resolved_yaml(protocol: Protocol) -> str:
    """The protocol with every default filled in, as YAML."""
    return yaml.safe_dump(protocol.model_dump(mode="json"), sort_keys=False)
