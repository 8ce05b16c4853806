"""The protocol file: everything a comparison fixes that is not the pruning method.

- `recipes`: optimizer, LR schedule, a stage's `TrainingSpec`, and the recipe each retraining regime runs.
- `sections`: data, model, pruning rules, budget, methods, evaluation, analyses.
- `variants` and `expansion`: retraining variants as declared, and expanded into named variants.
- `spec`: the `Protocol` itself, its identity (hash, setup hash, dense-checkpoint key) and error locations.
- `identity`: how each field takes part in the identity, declared as field metadata.
- `loading`: YAML to a validated protocol, every error naming file, line, column and field.
"""

from prunebench.protocol.base import Loc, StrictModel
from prunebench.protocol.efficiency import EfficiencySpec
from prunebench.protocol.expansion import (
    PROTOCOL,
    RESERVED,
    RetrainVariant,
    VariantError,
    VariantPlan,
    apply_change,
    expand_variants,
    recipe_summary,
    stretch_budget,
)
from prunebench.protocol.identity import content_hash
from prunebench.protocol.language import CalibrationSpec, ExpectSpec, TextSpec
from prunebench.protocol.loading import load_protocol, parse_protocol, resolved_yaml, with_methods
from prunebench.protocol.recipes import (
    RETRAINING_RECIPES,
    BaseSpec,
    OptimizerSpec,
    RecipeError,
    RecipeName,
    RetrainingRecipe,
    ScheduleSpec,
    TrainingSpec,
    retraining_recipe,
)
from prunebench.protocol.sections import (
    LABEL_PATTERN,
    AnalysesSpec,
    BudgetSpec,
    CorrelationSpec,
    DataSpec,
    EvaluationSpec,
    MethodSpec,
    ModelSpec,
    PrunableSpec,
    PruningSpec,
    RuntimeSpec,
    SheddingSpec,
    TrainabilitySpec,
)
from prunebench.protocol.spec import Protocol, TaskName, hashed_content_of, plan_from_content, setup_content, setup_hash
from prunebench.protocol.variants import (
    OptimizerChange,
    RecipeChange,
    RetrainExtensionSpec,
    RetrainSweepSpec,
    SwapSpec,
    VariantsSpec,
)

__all__ = [
    "LABEL_PATTERN",
    "PROTOCOL",
    "RESERVED",
    "RETRAINING_RECIPES",
    "AnalysesSpec",
    "BaseSpec",
    "BudgetSpec",
    "CalibrationSpec",
    "CorrelationSpec",
    "DataSpec",
    "EfficiencySpec",
    "EvaluationSpec",
    "ExpectSpec",
    "Loc",
    "MethodSpec",
    "ModelSpec",
    "OptimizerChange",
    "OptimizerSpec",
    "Protocol",
    "PrunableSpec",
    "PruningSpec",
    "RecipeChange",
    "RecipeError",
    "RecipeName",
    "RetrainExtensionSpec",
    "RetrainSweepSpec",
    "RetrainVariant",
    "RetrainingRecipe",
    "RuntimeSpec",
    "ScheduleSpec",
    "SheddingSpec",
    "StrictModel",
    "SwapSpec",
    "TaskName",
    "TextSpec",
    "TrainabilitySpec",
    "TrainingSpec",
    "VariantError",
    "VariantPlan",
    "VariantsSpec",
    "apply_change",
    "content_hash",
    "expand_variants",
    "hashed_content_of",
    "load_protocol",
    "parse_protocol",
    "plan_from_content",
    "recipe_summary",
    "resolved_yaml",
    "retraining_recipe",
    "setup_content",
    "setup_hash",
    "stretch_budget",
    "with_methods",
]
