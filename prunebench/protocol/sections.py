"""The sections of a protocol other than its training recipes and retraining variants: data, model,
pruning rules, budgets, methods, evaluation and analyses."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from prunebench.errors import FieldError
from prunebench.protocol.base import (
    MAX_BATCH,
    MAX_EPOCHS,
    MAX_EXAMPLES,
    MAX_ITEMS,
    MAX_NAME,
    MAX_SEED,
    StrictModel,
)
from prunebench.protocol.evaluations import RobustnessSpec
from prunebench.protocol.identity import HASHED_WHEN_ENABLED, HASHED_WHEN_SET, NOT_HASHED, OUTSIDE_SETUP
from prunebench.protocol.language import CalibrationSpec, TextSpec
from prunebench.results.targets import Target, TargetKind
from prunebench.results.taxonomy import Granularity

# A label names a results folder: no path separators, no `.` or `..`, no control characters.
LABEL_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$"


class DataSpec(StrictModel):
    name: str = Field(
        max_length=MAX_NAME, description="Dataset name in the registry (`prunebench datasets` lists them)."
    )
    root: str | None = Field(
        None,
        max_length=4096,
        description="Directory of the data; `${VAR}` and `${VAR:-default}` read environment variables. "
        "Not part of the protocol hash: the same data may live anywhere.",
        json_schema_extra=NOT_HASHED,
    )
    val_fraction: float = Field(
        0.1, gt=0, lt=0.5, description="Fraction of the training data held out as the validation split."
    )
    split_seed: int = Field(
        0, ge=0, le=MAX_SEED, description="Seed of the train/validation split (and of subsets); fixed per protocol."
    )
    train_subset: int | None = Field(
        None,
        gt=0,
        le=MAX_EXAMPLES,
        description="Use this many training examples, the validation split included (class-balanced, "
        "seeded by split_seed).",
    )
    test_subset: int | None = Field(
        None, gt=0, le=MAX_EXAMPLES, description="Use this many test examples (class-balanced)."
    )
    augmentation: str = Field(
        "none", max_length=MAX_NAME, description="Training augmentation by name: none, flip_crop, imagenet."
    )
    eval_batch_size: int = Field(
        512,
        gt=0,
        le=MAX_BATCH,
        description="Batch size of evaluation passes (not hashed).",
        json_schema_extra=NOT_HASHED,
    )
    num_workers: int = Field(
        0,
        ge=0,
        le=256,
        description="Data-loading worker processes for on-disk data (not hashed).",
        json_schema_extra=NOT_HASHED,
    )
    text: TextSpec | None = Field(
        None,
        description="A text data set's tokenizer and windows (task causal_lm; prunebench.protocol.language).",
        json_schema_extra=HASHED_WHEN_SET,
    )

    def resolved_root(self) -> Path | None:
        """The root with environment variables expanded; a FieldError when one is unset."""
        return None if self.root is None else expand_path(self.root, ("data", "root"), "the data directory")


def expand_path(value: str, loc: tuple[str, ...], what: str) -> Path:
    """A path of a protocol with `${VAR}` and `${VAR:-default}` read from the environment; a FieldError at `loc`
    when a variable is unset."""

    def expand(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(3)
        env = os.environ.get(name)
        if env:
            return env
        if default is not None:
            return default
        raise FieldError(loc, f"environment variable {name} is not set (it names {what})")

    return Path(re.sub(r"\$\{(\w+)(:-([^}]*))?\}", expand, value)).expanduser()


class ModelSpec(StrictModel):
    name: str = Field(max_length=MAX_NAME, description="Model name in the registry (`prunebench models` lists them).")
    args: dict[str, Any] = Field(
        default_factory=dict, max_length=64, description="Keyword arguments of the model constructor."
    )


class PrunableSpec(StrictModel):
    layer_types: list[Literal["conv", "linear"]] = Field(
        default_factory=lambda: ["conv", "linear"],
        description="Weights of these layer types are prunable; biases and normalization layers never are.",
    )
    include_first: bool = Field(True, description="Whether the first layer (in execution order) is prunable.")
    include_last: bool = Field(True, description="Whether the last layer (the classifier) is prunable.")
    exclude: list[str] = Field(
        default_factory=list,
        max_length=1000,
        description="Parameter names (glob patterns, e.g. `*.downsample.*`) never pruned.",
    )


class CostTargets(StrictModel):
    """Targets stated as a reduction of the physically compacted model's cost, dense over pruned (2.0: half the
    FLOPs), as structured-pruning papers compare: of its FLOPs or of its parameters, one kind a protocol."""

    flops_reduction: list[float] | None = Field(
        None,
        max_length=MAX_ITEMS,
        description="FLOPs reductions to reach: the dense model's conv and linear FLOPs over the compacted model's.",
        json_schema_extra={"items": {"type": "number", "exclusiveMinimum": 1}, "minItems": 1},
    )
    params_reduction: list[float] | None = Field(
        None,
        max_length=MAX_ITEMS,
        description="Parameter reductions to reach: the dense model's parameters over the compacted model's.",
        json_schema_extra={"items": {"type": "number", "exclusiveMinimum": 1}, "minItems": 1},
    )
    tolerance: float = Field(
        0.05,
        gt=0,
        lt=1,
        description="The reduction counted from the compacted model may differ from the target by this fraction "
        "of the target (0.05: 2x is met from 1.9x to 2.1x).",
    )

    @field_validator("flops_reduction", "params_reduction")
    @classmethod
    def _reductions(cls, v: list[float] | None) -> list[float] | None:
        if v is None:
            return v
        if not v:
            raise ValueError("at least one target is needed")
        for r in v:
            if not r > 1:
                raise ValueError(f"a reduction of {r:g} is not a reduction: targets are dense over pruned, above 1")
        if len(set(v)) != len(v):
            raise ValueError("targets repeat")
        return sorted(v)

    @model_validator(mode="after")
    def _one_kind(self) -> CostTargets:
        if (self.flops_reduction is None) == (self.params_reduction is None):
            raise ValueError("state one kind of target: flops_reduction or params_reduction")
        return self

    @property
    def kind(self) -> TargetKind:
        return "flops_reduction" if self.flops_reduction is not None else "params_reduction"

    @property
    def values(self) -> list[float]:
        return self.flops_reduction if self.flops_reduction is not None else self.params_reduction or []


class PruningSpec(StrictModel):
    sparsities: list[float] | None = Field(
        None,
        max_length=MAX_ITEMS,
        description="Target sparsities: fraction of prunable weights that are zero after pruning (or `targets`).",
        # the validator below says what is wrong in words; the schema says it to editors
        json_schema_extra={"items": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1}, "minItems": 1},
    )
    targets: CostTargets | None = Field(
        None,
        description="Targets as a reduction of the compacted model's FLOPs or parameters, instead of `sparsities` "
        "(e.g. `{flops_reduction: [2.0, 3.0]}`); needs `granularity: filter`, as only whole filters compact.",
        json_schema_extra=HASHED_WHEN_SET,
    )
    tolerance: float = Field(
        0.005, ge=0, lt=1, description="Achieved sparsity may differ from the target by this much."
    )
    effective_margin: float | None = Field(
        None,
        ge=0,
        lt=1,
        description="The audit flags a result whose effective sparsity (zeros plus kept weights on no path from "
        "the input to the output; Vysogorets & Kempe 2023) exceeds its target by more than this (e.g. 0.01); the "
        "result stays ranked. None: effective sparsity is recorded and shown, not judged.",
        json_schema_extra=HASHED_WHEN_SET,
    )
    granularity: Granularity = Field(
        "unstructured",
        description="The finest structure a method may remove. Sparsity is always counted in weights; a "
        "method whose granularity is finer than this is refused (no unstructured method in a filter protocol).",
    )
    prunable: PrunableSpec = Field(default_factory=PrunableSpec, description="Which tensors count and may be pruned.")
    rewind_epoch: float = Field(
        0.0,
        ge=0,
        le=MAX_EPOCHS,
        description="Base training saves the weights at this epoch for rewinding (0: the initialization).",
    )
    scoring_examples: int = Field(
        1024,
        ge=0,
        le=MAX_EXAMPLES,
        description="Examples a data-dependent criterion may look at when it scores weights.",
    )
    scoring_batch_size: int = Field(
        512,
        gt=0,
        le=MAX_BATCH,
        description="Batch size of the examples a criterion scores on: criteria that score under batch statistics "
        "(GraSP's, SNIP's train mode) depend on it, so it is part of the protocol (hashed when not 512).",
        json_schema_extra=HASHED_WHEN_SET,
    )
    calibration: CalibrationSpec | None = Field(
        None,
        description="The calibration windows of one-shot causal-LM pruning (task causal_lm; the references' "
        "defaults: 128 windows of C4; prunebench.protocol.language).",
        json_schema_extra=HASHED_WHEN_SET,
    )

    @field_validator("sparsities")
    @classmethod
    def _valid(cls, v: list[float] | None) -> list[float] | None:
        if v is None:
            return v
        if not v:
            raise ValueError("at least one target sparsity is needed")
        for s in v:
            if not 0 < s < 1:
                raise ValueError(f"sparsity {s} is not between 0 and 1 (exclusive)")
        if len(set(v)) != len(v):
            raise ValueError("sparsities repeat")
        return sorted(v)

    @property
    def target_kind(self) -> TargetKind:
        """What the targets are (prunebench.results.targets): sparsity, flops_reduction or params_reduction."""
        return self.targets.kind if self.targets is not None else "sparsity"

    @property
    def target_values(self) -> list[float]:
        """The targets' values, in order: sparsities, or reduction factors."""
        return self.targets.values if self.targets is not None else self.sparsities or []

    @property
    def target_tolerance(self) -> float:
        """How far a job may land from its target: absolute for a sparsity, a fraction of it for a cost."""
        return self.targets.tolerance if self.targets is not None else self.tolerance

    def target(self, value: float) -> Target:
        return Target(self.target_kind, value)


class BudgetSpec(StrictModel):
    pruning_epochs: float = Field(
        0.0,
        ge=0,
        le=MAX_EPOCHS,
        description="Training epochs a method may spend while pruning (iterative rounds, gradual "
        "schedules, soft masks); 0 means one-shot pruning of the base model.",
    )
    total_epochs: float | None = Field(
        None,
        gt=0,
        le=2 * MAX_EPOCHS,
        description="SX-A: pruning plus retraining epochs (default pruning_epochs + retrain.epochs).",
    )
    total_train_flops: float | None = Field(
        None,
        gt=0,
        le=1e30,
        description="SX-B: training FLOPs of pruning plus retraining (default: retraining the dense "
        "model for retrain.epochs).",
    )


class MethodSpec(StrictModel):
    name: str = Field(
        min_length=1,
        max_length=4096,
        description="A registered method name, `package.module:Class`, or `path/to/file.py:Class`.",
    )
    label: str | None = Field(
        None,
        max_length=100,
        description="Name in results and tables, and the folder of its results: letters, digits, `_`, `.` and `-`, "
        "starting with a letter, digit or `_` (default: the method's registered `name`).",
    )
    config: dict[str, Any] = Field(default_factory=dict, max_length=200, description="The method's hyperparameters.")
    budget: BudgetSpec | None = Field(
        None, description="A budget stated for this method alone; it is checked and shown in every table."
    )
    sparsities: list[float] | None = Field(
        None,
        max_length=MAX_ITEMS,
        description="Only these of pruning.sparsities, for a method that prunes to one sparsity by its structure "
        "(N:M 2:4 prunes 0.5); none: every target of the protocol.",
        json_schema_extra=HASHED_WHEN_SET,
    )

    @field_validator("label")
    @classmethod
    def _a_folder_name(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(LABEL_PATTERN, v):
            raise ValueError(
                f"label {v!r} names the folder of the method's results: use letters, digits, `_`, `.` and `-`, "
                "starting with a letter, a digit or `_`"
            )
        return v

    @property
    def key(self) -> str:
        return self.label or self.name


class EvaluationSpec(StrictModel):
    test_curves: bool = Field(
        False,
        description="Also record test accuracy after each epoch. Nothing selects on it; the reported "
        "number is always the last epoch's.",
    )
    top_k: list[Literal[1, 5]] = Field(
        default_factory=lambda: [1, 5],
        description="Top-k accuracies to report: 1 and 5 are measured (top-1 always; top-5 when the data set has "
        "more than 5 classes).",
    )
    chance_margin: float | None = Field(
        0.02,
        ge=0,
        lt=1,
        description="A test top-1 no higher than chance (1 / classes) plus this is marked degenerate (a collapsed "
        "model): kept in its method's mean, counted on the board. Classification only; None: not judged.",
        json_schema_extra=HASHED_WHEN_SET,
    )
    # What pruning takes away (prunebench.protocol.evaluations): measured on the test split beside the dense model.
    robustness: RobustnessSpec | None = Field(
        None,
        description="Accuracy on corrupted copies of the test split (Hendrycks & Dietterich 2019's corruptions, "
        "generated here from the test split: not CIFAR-10-C's files), of the pruned and the dense model; none: not "
        "measured. Images held in memory only; classification only.",
        json_schema_extra={**HASHED_WHEN_SET, **OUTSIDE_SETUP},
    )
    calibration: bool = Field(
        False,
        description="Expected calibration error (15 equal-width confidence bins) and negative log-likelihood on the "
        "test split, of the pruned and the dense model. Classification only.",
        json_schema_extra={**HASHED_WHEN_SET, **OUTSIDE_SETUP},
    )
    forgetting: bool = Field(
        False,
        description="Per-class test accuracy and every test example's prediction, of the pruned and the dense model "
        "(Hooker et al. 2019): the per-class change, the agreement with the dense model and the pruning-identified "
        "exemplars across seeds. Classification only.",
        json_schema_extra={**HASHED_WHEN_SET, **OUTSIDE_SETUP},
    )

    @property
    def extras(self) -> tuple[str, ...]:
        """The optional evaluations asked for: robustness, calibration, forgetting (in that order)."""
        asked = {"robustness": self.robustness is not None, "calibration": self.calibration}
        return tuple(k for k, on in (*asked.items(), ("forgetting", self.forgetting)) if on)


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
        1.0, gt=0, le=1e6, description="Multiplier of the threshold (default 1.0; 0.1 with threshold: layer_scale)."
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
        max_length=MAX_ITEMS,
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
        le=MAX_EPOCHS,
        description="Epochs averaged; default the first LR stage of retraining (first milestone, first step, "
        "every epoch of a constant schedule, the first half of a cosine decay).",
    )


class AnalysesSpec(StrictModel):
    """Measurements recorded alongside the curves; they never influence training or selection.
    Hashed only when set, so protocols without them keep their identity."""

    shedding: SheddingSpec = Field(
        default_factory=SheddingSpec,
        description="Cascade weight shedding, per epoch.",
        json_schema_extra=HASHED_WHEN_ENABLED,
    )
    correlation: CorrelationSpec = Field(
        default_factory=CorrelationSpec,
        description="Weight correlation R_p with reference weights, per epoch.",
        json_schema_extra=HASHED_WHEN_ENABLED,
    )
    trainability: TrainabilitySpec = Field(
        default_factory=TrainabilitySpec,
        description="Trainability accuracy, once per job.",
        json_schema_extra=HASHED_WHEN_ENABLED,
    )


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|d)?\s*$")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB|TiB|KB|MB|GB|TB|K|M|G|T)?\s*$")
_SECONDS = {None: 1, "s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}
_BINARY = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
_BYTES: dict[str | None, int] = {None: 1, "B": 1, **_BINARY, **{f"{k}iB": v for k, v in _BINARY.items()}}
_BYTES |= {"KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}
MAX_JOB_SECONDS = 366 * 86400
MAX_JOB_BYTES = 2**50
# Floors: limits that would kill every job are refused. A job's process, forked from the fork server with torch
# and prunebench imported, was measured at 380-515 MiB resident (tree_rss) for the smallest job there is (the
# tests' tiny protocol: small_cnn at width 0.25 on digits, on the CPU; a fresh `import torch` alone: 660 MiB), so
# no job fits in 256 MiB, and every real one needs more.
MIN_JOB_BYTES = 256 * 2**20
# The same job's process lived 0.1-0.2 s on an idle CPU, but its clock starts with the fork: on a busy node, or
# with CUDA to initialise (seconds of its own), a limit under 5 s kills jobs for the machine, not the method.
MIN_JOB_SECONDS = 5.0


def _number(v: Any) -> bool:
    """An int or float (a bool is neither here): what the floors are checked on; the rest is pydantic's to refuse."""
    return isinstance(v, int | float) and not isinstance(v, bool)


def _size_text(n: float) -> str:
    """A size as a reader wants it in a message: 1 byte, 12 KiB, 100 MiB."""
    for unit, factor in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= factor:
            return f"{n / factor:.3g} {unit}"
    return f"{n:g} byte" + ("" if n == 1 else "s")


def _seconds(v: Any) -> Any:
    """A duration as seconds: a number, or a number with s, m, h or d (90s, 5m, 12h)."""
    if isinstance(v, str):
        match = _DURATION.match(v)
        if match is None:
            raise ValueError(f"{v!r} is not a duration: seconds, or a number with s, m, h or d (e.g. 12h)")
        return float(match[1]) * _SECONDS[match[2]]
    return v


class RuntimeSpec(StrictModel):
    """How jobs run on this machine. Never part of the protocol's identity: the same protocol keeps one hash
    whatever the limits of the machine that runs it."""

    threads: int | None = Field(
        None,
        ge=1,
        le=4096,
        description="torch's CPU threads in the runner and in each job's process (`run --threads` overrides it). "
        "None: one on the CPU (two processes with torch's default threads each slow a small machine down many "
        "times, and the thread count changes the last bits of the numbers), torch's default on CUDA.",
    )
    job_timeout: float | None = Field(
        None,
        ge=MIN_JOB_SECONDS,
        le=MAX_JOB_SECONDS,
        description="Wall-clock limit of one job's process (pruning, retraining, measuring aside): seconds, or "
        "a number with a unit: 90s, 30m, 12h, 2d; at least 5 s. A job that exceeds it is killed and recorded as "
        "failed; the grid goes on. None: no limit.",
    )
    checkpoint_every: float = Field(
        30.0,
        ge=0,
        le=MAX_JOB_SECONDS,
        description="How often a stage that trains (base training, retraining) saves the checkpoint a killed run "
        "resumes from: after the first epoch that ends this many seconds (or a number with a unit: 90s, 5m) after "
        "the last checkpoint; 0: after every epoch. Saving costs a copy of the model and optimizer and a file write: "
        "epochs much shorter than this (a CPU-scale protocol) skip it. The records are the same either way.",
    )
    job_memory: int | None = Field(
        None,
        ge=MIN_JOB_BYTES,
        le=MAX_JOB_BYTES,
        description="Resident memory limit of one job's process: bytes, or a number with a unit (512MiB, 16GiB, "
        "8GB); at least 256 MiB (a job's process with torch imported needs more). A job whose process exceeds it is "
        "killed and recorded as failed. None: no limit.",
    )

    @field_validator("checkpoint_every", mode="before")
    @classmethod
    def _interval(cls, v: Any) -> Any:
        return _seconds(v)

    @field_validator("job_timeout", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> Any:
        v = _seconds(v)
        if _number(v) and v < MIN_JOB_SECONDS:
            raise ValueError(
                f"{v:g} s would kill every job: starting a job's process (the fork, CUDA on a GPU) can take "
                f"seconds alone; at least {MIN_JOB_SECONDS:g} s, or leave it out for no limit"
            )
        return v

    @field_validator("job_memory", mode="before")
    @classmethod
    def _size(cls, v: Any) -> Any:
        if isinstance(v, str):
            match = _SIZE.match(v)
            if match is None:
                raise ValueError(f"{v!r} is not a size: bytes, or a number with a unit such as MiB or GiB (16GiB)")
            v = int(float(match[1]) * _BYTES[match[2]])
        if _number(v) and v < MIN_JOB_BYTES:
            raise ValueError(
                f"{_size_text(v)} would kill every job: a job's process with torch imported is larger "
                f"(400-500 MiB resident); at least {MIN_JOB_BYTES // 2**20} MiB, or leave it out for no limit"
            )
        return v
