"""Retraining variants, as a protocol declares them: the protocol run again with another retraining recipe
in place of `retrain` (a retraining-LR sweep, extended retraining, the swap test), or with the engine's sanity
ablations of every method's masks under the protocol's own recipe (prunebench.protocol.sanity). `expansion` turns
these sections into the named variants and the jobs they run; docs/analyses.md defines each."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from prunebench.protocol.base import MAX_BATCH, MAX_EPOCHS, MAX_ITEMS, StrictModel
from prunebench.protocol.identity import HASHED_WHEN_SET
from prunebench.protocol.recipes import ScheduleSpec
from prunebench.protocol.sanity import Ablation


class OptimizerChange(StrictModel):
    """Optimizer fields a retraining variant changes; an unset field keeps the protocol's value."""

    name: Literal["sgd", "adam", "adamw"] | None = Field(None, description="Optimizer.")
    lr: float | None = Field(None, gt=0, le=1000, description="Peak learning rate.")
    momentum: float | None = Field(None, ge=0, lt=1, description="SGD momentum.")
    nesterov: bool | None = Field(None, description="Nesterov momentum (SGD only).")
    weight_decay: float | None = Field(None, ge=0, le=1, description="Weight decay.")


class RecipeChange(StrictModel):
    """A retraining recipe written as changes to the protocol's `retrain`; `{}` is that recipe itself."""

    epochs: int | None = Field(
        None,
        gt=0,
        le=MAX_EPOCHS,
        description="Retraining epochs. Without `schedule`, the protocol's schedule is stretched to them "
        "(TrainingSpec.with_epochs); with it, the schedule is taken as written.",
    )
    batch_size: int | None = Field(None, gt=0, le=MAX_BATCH, description="Training batch size.")
    optimizer: OptimizerChange = Field(
        default_factory=OptimizerChange, description="Optimizer fields that change; the others stay the protocol's."
    )
    schedule: ScheduleSpec | None = Field(
        None, description="The LR schedule, replacing the protocol's whole one (its fields depend on one another)."
    )
    label_smoothing: float | None = Field(None, ge=0, lt=1, description="Label smoothing of the loss.")
    grad_clip: float | None = Field(
        None, gt=0, le=1e9, description="Global gradient-norm clip (unset: the protocol's)."
    )


class RetrainSweepSpec(StrictModel):
    """Retraining-LR sweep: each candidate recipe runs for every method; selection is on validation only."""

    lr: list[float] = Field(
        default_factory=list,
        max_length=MAX_ITEMS,
        description="Peak retraining learning rates tried, each with the protocol's optimizer otherwise. The "
        "protocol's own recipe is always a candidate; an entry equal to it is that candidate, not run twice.",
    )
    schedules: dict[str, ScheduleSpec] = Field(
        default_factory=dict,
        max_length=MAX_ITEMS,
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
        max_length=MAX_ITEMS,
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
        max_length=MAX_ITEMS,
        description="Each method's own retraining recipe, by method label, as changes to `retrain` ({} is the "
        "protocol's recipe). At least two methods.",
    )
    pairs: list[tuple[str, str]] | None = Field(
        None,
        max_length=MAX_ITEMS,
        strict=False,  # YAML and JSON have no tuples: a pair is a list of two labels
        description="The pairs (A, B) swapped; default every pair of the methods in `recipes`, in order.",
    )


class VariantsSpec(StrictModel):
    """Retraining variants: the protocol run again with another retraining recipe in place of `retrain`, or with
    a sanity ablation of each method's masks under its own recipe, from the same dense checkpoints; each variant's
    jobs and results stand beside the protocol's own, never mixed into its ranking. Hashed only when set, so
    protocols without variants keep their identity."""

    retrain_sweep: RetrainSweepSpec | None = Field(
        None,
        description="Retraining-LR sweep; the leaderboard adds each method at its validation-selected recipe.",
        json_schema_extra=HASHED_WHEN_SET,
    )
    retrain_extension: RetrainExtensionSpec | None = Field(
        None,
        description="Retraining extended by given epochs (of the protocol's recipe and each sweep candidate).",
        json_schema_extra=HASHED_WHEN_SET,
    )
    swap: SwapSpec | None = Field(
        None, description="The swap test of two methods' own retraining recipes.", json_schema_extra=HASHED_WHEN_SET
    )
    sanity: list[Ablation] | None = Field(
        None,
        min_length=1,
        description="Sanity ablations (Frankle et al. 2021; Su et al. 2020), each run for every method, seed and "
        "target where it applies, under the protocol's own retraining recipe: layer_shuffle (the method's masks "
        "shuffled within each layer), reinit (its masks on a fresh initialization), invert (its lowest scores "
        "kept). The engine ablates after the method prunes; docs/analyses.md says where each applies.",
        json_schema_extra=HASHED_WHEN_SET,
    )

    @field_validator("sanity")
    @classmethod
    def _distinct(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and len(set(v)) != len(v):
            raise ValueError("each sanity ablation once")
        return v
