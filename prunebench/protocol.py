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
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from prunebench.errors import FieldError, ProtocolError

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
        if s.milestones and s.milestones[-1] >= self.epochs:
            raise ValueError(
                f"schedule milestone {s.milestones[-1]} is not before the stage's last epoch ({self.epochs} epochs)"
            )
        if s.warmup_epochs > self.epochs:
            raise ValueError(f"warmup_epochs {s.warmup_epochs} exceeds the stage's {self.epochs} epochs")
        if s.step_size is not None and s.step_size > self.epochs:
            raise ValueError(f"step_size {s.step_size} exceeds the stage's {self.epochs} epochs")
        return self


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
        None, gt=0, description="Use this many training examples, the validation split included (class-balanced, seeded by "
        "split_seed)."
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

    # ---- identity -------------------------------------------------------------------------
    def hashed_content(self) -> dict[str, Any]:
        """The fields that change results; the hash is taken over these."""
        return self.model_dump(
            mode="json", exclude={"description": True, "data": {"root", "num_workers", "eval_batch_size"}}
        )

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
