"""The protocol: everything a comparison fixes that is not the pruning method.

The pydantic models are the documentation of the format: every field says what it means and how it takes
part in the protocol's identity (prunebench.protocol.identity). A protocol is identified by a content hash
over the fields that change results; paths and worker counts, which differ between machines, are left out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from prunebench.errors import FieldError, ProtocolError
from prunebench.fairness import ComparisonSetup
from prunebench.protocol.base import MAX_ITEMS, MAX_METHODS, MAX_NAME, MAX_SEED, Loc, StrictModel, dotted, nearest_mark
from prunebench.protocol.efficiency import EfficiencySpec
from prunebench.protocol.expansion import VariantError, VariantPlan, expand_variants, stretch_budget
from prunebench.protocol.identity import (
    HASHED_WHEN_SET,
    NOT_HASHED,
    OUTSIDE_SETUP,
    content_hash,
    hashed_content,
    outside_setup,
)
from prunebench.protocol.overrides import SOURCE as OVERRIDES
from prunebench.protocol.overrides import override_at
from prunebench.protocol.recipes import BaseSpec, RetrainingRecipe, TrainingSpec, retraining_recipe
from prunebench.protocol.sections import (
    AnalysesSpec,
    BudgetSpec,
    DataSpec,
    EvaluationSpec,
    MethodSpec,
    ModelSpec,
    PruningSpec,
    RuntimeSpec,
)
from prunebench.protocol.variants import VariantsSpec
from prunebench.results.taxonomy import Regime


def located_error(loc: Loc, message: str, value: Any) -> ValidationError:
    """A validation error of the field at `loc`, for validators that look at several fields at once."""
    error = PydanticCustomError("value_error", "{message}", {"message": message})
    return ValidationError.from_exception_data("Protocol", [InitErrorDetails(type=error, loc=loc, input=value)])


# The tasks of prunebench.tasks (a layer above this one), by name; a test keeps the two alike.
TaskName = Literal["classification", "causal_lm"]


class Protocol(StrictModel):
    name: str = Field(
        pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$",
        max_length=MAX_NAME,
        description="Short name; names the results directory.",
    )
    description: str = Field(
        "", max_length=100_000, description="What this protocol compares (not hashed).", json_schema_extra=NOT_HASHED
    )
    task: TaskName = Field(
        "classification",
        description="What the model is trained and ranked on (prunebench.tasks): classification (test top-1, higher "
        "is better) or causal_lm (a causal language model: test perplexity, lower is better; data.text says how "
        "text becomes token windows).",
        json_schema_extra=HASHED_WHEN_SET,
    )
    data: DataSpec = Field(description="Data set, splits and augmentation.")
    model: ModelSpec = Field(description="Architecture.")
    base: BaseSpec = Field(
        description="Dense training of the base model, once per seed, shared by all methods (or a dense checkpoint "
        "the user has: base.checkpoint)."
    )
    pruning: PruningSpec = Field(description="Sparsity targets and what counts as a prunable weight.")
    retrain: TrainingSpec = Field(description="Retraining after pruning: the same for every method.")
    budget: BudgetSpec = Field(default_factory=BudgetSpec, description="What a method may spend beyond retraining.")
    comparison: ComparisonSetup = Field(
        "S3.2", description="Comparison setup of Wang et al. 2023, Table 2, checked for every job."
    )
    seeds: list[Annotated[int, Field(ge=0, le=MAX_SEED)]] = Field(
        default_factory=lambda: [0, 1, 2], max_length=MAX_ITEMS, description="Seeds; every stage is seeded."
    )
    methods: list[MethodSpec] = Field(
        min_length=1, max_length=MAX_METHODS, description="The methods compared.", json_schema_extra=OUTSIDE_SETUP
    )
    evaluation: EvaluationSpec = Field(default_factory=EvaluationSpec, description="What is measured at the end.")
    analyses: AnalysesSpec = Field(
        default_factory=AnalysesSpec,
        description="Analyses recorded per epoch and per job (docs/analyses.md). They never change what is "
        "trained: hashed only when one is enabled, and not part of the setup.",
        json_schema_extra={**HASHED_WHEN_SET, **OUTSIDE_SETUP},
    )
    variants: VariantsSpec = Field(
        default_factory=VariantsSpec,
        description="Retraining variants run beside the protocol's own recipe: an LR sweep, an epoch extension, "
        "the swap test, the sanity ablations (docs/analyses.md). They add jobs beside the protocol's own: not part "
        "of the setup.",
        json_schema_extra={**HASHED_WHEN_SET, **OUTSIDE_SETUP},
    )
    efficiency: EfficiencySpec | None = Field(
        None,
        description="Measured speed and memory of every job's pruned model beside its dense base model "
        "(docs/efficiency.md); none: not measured. Changes what records hold, not what is trained: hashed when "
        "set, not part of the setup.",
        json_schema_extra={**HASHED_WHEN_SET, **OUTSIDE_SETUP},
    )
    runtime: RuntimeSpec = Field(
        default_factory=RuntimeSpec,
        description="How jobs run on this machine (limits of a job's process); not hashed.",
        json_schema_extra=NOT_HASHED,
    )

    # Where each field stands in the file, for error messages; not part of the protocol.
    _source: Path | None = None
    _marks: dict[Loc, tuple[int, int]] = {}
    _overrides: dict[Loc, str] = {}  # command-line overrides by the field they set (prunebench.protocol.overrides)

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
    def _targets_stated_once(self) -> Protocol:
        p = self.pruning
        if (p.sparsities is None) == (p.targets is None):
            where = ("pruning", "targets") if p.targets is not None else ("pruning",)
            raise located_error(where, "state the targets once: sparsities, or targets (a cost reduction)", None)
        if p.targets is not None and p.granularity != "filter":
            raise located_error(
                ("pruning", "targets"),
                "cost targets are counted from the physically compacted model, which only whole filters make: set "
                "pruning.granularity: filter",
                None,
            )
        return self

    @model_validator(mode="after")
    def _method_sparsities_within(self) -> Protocol:
        for i, method in enumerate(self.methods):
            if method.sparsities is None:
                continue
            outside = [s for s in method.sparsities if s not in (self.pruning.sparsities or [])]
            if outside or not method.sparsities:
                raise located_error(
                    ("methods", i, "sparsities"),
                    f"{outside[0] if outside else 'none'}: a method's sparsities are some of pruning.sparsities "
                    f"({', '.join(f'{s:g}' for s in self.pruning.sparsities or []) or 'none: its targets are costs'})",
                    method.sparsities,
                )
        return self

    @model_validator(mode="after")
    def _task_fields(self) -> Protocol:
        language = self.task == "causal_lm"
        if language and self.data.text is None:
            raise located_error(("data",), "a causal_lm protocol needs data.text (at least its seqlen)", None)
        if language:
            extras = self.evaluation.extras  # what an image classifier's outputs give, a token's do not
            if extras:
                why = f"only a classification protocol has it (this protocol's task: {self.task})"
                raise located_error(("evaluation", extras[0]), why, None)
            return self
        for loc, value in (
            (("data", "text"), self.data.text),
            (("pruning", "calibration"), self.pruning.calibration),
            (("base", "expect"), self.base.expect),
        ):
            if value is not None:
                raise located_error(loc, f"only a causal_lm protocol has it (this protocol's task: {self.task})", None)
        return self

    @model_validator(mode="after")
    def _rewind_within_base(self) -> Protocol:
        if self.base.checkpoint is not None and self.pruning.rewind_epoch > 0:
            raise located_error(
                ("pruning", "rewind_epoch"),
                f"{self.pruning.rewind_epoch:g}: the dense model comes from base.checkpoint, which has no early "
                "iterate of its training to rewind to",
                self.pruning.rewind_epoch,
            )
        if self.pruning.rewind_epoch > self.base.epochs:
            raise located_error(
                ("pruning", "rewind_epoch"),
                f"{self.pruning.rewind_epoch:g} is beyond the {self.base.epochs} epochs of base training: there is no "
                "such iterate to rewind to",
                self.pruning.rewind_epoch,
            )
        return self

    @model_validator(mode="after")
    def _analyses_fit(self) -> Protocol:
        n = self.analyses.trainability.epochs
        if n is not None and n > self.retrain.epochs:
            raise located_error(
                ("analyses", "trainability", "epochs"), f"{n} exceeds the {self.retrain.epochs} retraining epochs", n
            )
        return self

    @field_validator("variants")
    @classmethod
    def _variants_expand(cls, v: VariantsSpec, info: ValidationInfo) -> VariantsSpec:
        # Expanded here (not only when run) so that a recipe that does not fit, or an unknown method label,
        # is an error naming its own field.
        if v == VariantsSpec() or any(k not in info.data for k in ("retrain", "methods", "analyses")):
            return v
        try:
            expand_variants(
                v,
                retrain=info.data["retrain"],
                labels=[m.key for m in info.data["methods"]],
                trainability_epochs=info.data["analyses"].trainability.epochs,
                task=info.data.get("task", "classification"),
            )
        except VariantError as exc:
            raise located_error(exc.loc, exc.message, v.model_dump(mode="json")) from None
        return v

    # ---- identity -------------------------------------------------------------------------
    def hashed_content(self) -> dict[str, Any]:
        """The fields that change results, by their identity marks; the hash is taken over these."""
        return hashed_content(self)

    @property
    def hash(self) -> str:
        return content_hash(self.hashed_content())

    @property
    def run_name(self) -> str:
        return f"{self.name}-{self.hash[:10]}"

    def base_key(self, seed: int) -> dict[str, Any]:
        """What determines the dense checkpoint of a seed, shared by every method and sparsity: data, model,
        base training, the rewind point it saves, the seed."""
        content = self.hashed_content()
        return {
            "data": content["data"],
            "model": content["model"],
            "base": content["base"],
            "rewind_epoch": self.pruning.rewind_epoch,
            "seed": seed,
        }

    # ---- recipes and variants ---------------------------------------------------------------
    def retraining_recipe(self, regime: Regime | str, epochs: int | None = None) -> RetrainingRecipe:
        """(recipe name, recipe) that a retraining regime runs under this protocol over `epochs` epochs (default:
        retrain.epochs); see `retraining_recipe`. Raises RecipeError, and only that, when there is none."""
        return retraining_recipe(regime, base=self.base, retrain=self.retrain, epochs=epochs)

    def variant_plan(self) -> VariantPlan:
        """The retraining variants of this protocol, expanded (prunebench.protocol.expansion)."""
        if self.variants == VariantsSpec():
            return VariantPlan()
        return expand_variants(
            self.variants,
            retrain=self.retrain,
            labels=[m.key for m in self.methods],
            trainability_epochs=self.analyses.trainability.epochs,
            task=self.task,
        )

    def for_variant(self, name: str | None) -> Protocol:
        """This protocol with a retraining variant's recipe as its `retrain` (and budgets stated in epochs moved
        by the variant's extra epochs): what a variant's jobs run and are audited under. None: itself. Its
        hash is not the protocol's: results carry the protocol's own hash and the variant's record. A sanity
        ablation runs under the protocol itself: its method sees the very job its own job is."""
        if name is None:
            return self
        variant = self.variant_plan().get(name)
        if variant.kind == "sanity":
            return self
        n, m = self.retrain.epochs, variant.retrain.epochs
        methods = [
            spec if spec.budget is None else spec.model_copy(update={"budget": stretch_budget(spec.budget, n, m)})
            for spec in self.methods
        ]
        return self.model_copy(
            update={"retrain": variant.retrain, "budget": stretch_budget(self.budget, n, m), "methods": methods}
        )

    # ---- locating errors ------------------------------------------------------------------
    @property
    def source(self) -> Path | None:
        return self._source

    @property
    def marks(self) -> dict[Loc, tuple[int, int]]:
        """(line, column) of each field in the protocol's file."""
        return self._marks

    @property
    def overrides(self) -> list[str]:
        """The command-line overrides this protocol was loaded with, in order (part of its content and hash)."""
        return list(self._overrides.values())

    @property
    def override_locs(self) -> dict[Loc, str]:
        return dict(self._overrides)

    def located(
        self, source: Path | None, marks: dict[Loc, tuple[int, int]], overrides: dict[Loc, str] | None = None
    ) -> Protocol:
        """This protocol, knowing the file and the line and column of each of its fields, and the command-line
        overrides that set some of them."""
        self._source, self._marks, self._overrides = source, marks, dict(overrides or {})
        return self

    def locate(self, error: FieldError) -> ProtocolError:
        """Turn an error about a field into one that names the file and line of that field (or the command-line
        override that set it)."""
        item = override_at(self._overrides, error.loc)
        if item is not None:
            return ProtocolError(error.message, file=OVERRIDES, field=item)
        line, col = nearest_mark(self._marks, error.loc)
        return ProtocolError(error.message, file=self._source, line=line, column=col, field=dotted(error.loc))


SETUP_EXCLUDED = outside_setup(Protocol)  # methods, analyses, variants, efficiency
EVALUATION_EXCLUDED = outside_setup(EvaluationSpec)  # robustness, calibration, forgetting


def setup_content(content: dict[str, Any]) -> dict[str, Any]:
    """The part of a protocol's hashed content that its comparison setup is: everything a protocol fixes but
    the fields marked OUTSIDE_SETUP (at the top, and in `evaluation`). Results of protocols with one setup are
    ranked together."""
    out = {k: v for k, v in content.items() if k not in SETUP_EXCLUDED}
    evaluation = out.get("evaluation")
    if isinstance(evaluation, dict):
        out["evaluation"] = {k: v for k, v in evaluation.items() if k not in EVALUATION_EXCLUDED}
    return out


def setup_hash(content: dict[str, Any]) -> str:
    """The hash of a protocol's setup (of its hashed content, e.g. a run directory's protocol.json's)."""
    return content_hash(setup_content(content))


def plan_from_content(content: dict[str, Any] | None) -> VariantPlan | None:
    """The variants of a protocol dump (the hashed content a run directory's protocol.json holds);
    None when there is no content to expand."""
    if content is None:
        return None
    if "variants" not in content:
        return VariantPlan()
    try:
        return Protocol.model_validate(dict(content)).variant_plan()
    except (ValidationError, ValueError, TypeError):
        return None


def hashed_content_of(dump: dict[str, Any]) -> dict[str, Any] | None:
    """The part of a protocol dump (e.g. a run directory's protocol.json) that its hash covers, by this
    version's rules; None when the dump is not a valid protocol of this version."""
    try:
        return Protocol.model_validate(dump).hashed_content()
    except (ValidationError, ValueError, TypeError):
        return None
