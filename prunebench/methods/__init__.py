"""The public method API, the one a user's method and every built-in baseline are written against.

- `api`: `Method` (generic in its `MethodConfig`), the hooks the engine calls, and `Reach` (what a method
  states, before any training, that it will prune to).
- `context`: `PruningContext` (what `prune` gets) and `StepContext` (what training hooks get).
- `access`: `PruningAccess` and `StepAccess`, what those contexts may ask of the engine (typing.Protocols that
  the engine's adapters, prunebench.engine.access, implement).
- `regularizers`: what a method may ask the engine to add to its training, declared as data (`SoftMasks`,
  `BatchNormL1`, `GroupLasso`: the `Regularizer` union), for `PruningContext.train(..., regularizers=...)`.
- `registry`: finding a method by registered name, `package.module:Class` or `path/to/file.py:Class`.

`Masks` and `masks_from_scores` (prunebench.masks), and `Taxonomy` with its vocabulary (prunebench.results.taxonomy,
where it is declared because the result record keeps it), are part of this API: a method imports everything it
needs from here.
"""

from prunebench.masks import Masks, masks_from_scores
from prunebench.methods.access import PruningAccess, SavedState, StepAccess
from prunebench.methods.api import HookStage, Method, MethodConfig, Reach
from prunebench.methods.context import PruningContext, StepContext
from prunebench.methods.registry import (
    ENTRY_POINT_GROUP,
    LoadedMethod,
    PluginWarning,
    config_table,
    instantiate,
    label_methods,
    load_method,
    needs_labels,
    registered_methods,
    validated_config,
)
from prunebench.methods.regularizers import (
    BatchNormL1,
    GroupLasso,
    Regularizer,
    SoftMasks,
    validate_regularizers,
)
from prunebench.results.targets import Target, TargetKind
from prunebench.results.taxonomy import GRANULARITY_ORDER, Granularity, Regime, Schedule, Scope, Taxonomy, When

__all__ = [
    "ENTRY_POINT_GROUP",
    "GRANULARITY_ORDER",
    "BatchNormL1",
    "Granularity",
    "GroupLasso",
    "HookStage",
    "LoadedMethod",
    "Masks",
    "Method",
    "MethodConfig",
    "PluginWarning",
    "PruningAccess",
    "PruningContext",
    "Reach",
    "Regime",
    "Regularizer",
    "SavedState",
    "Schedule",
    "Scope",
    "SoftMasks",
    "StepAccess",
    "StepContext",
    "Target",
    "TargetKind",
    "Taxonomy",
    "When",
    "config_table",
    "instantiate",
    "label_methods",
    "load_method",
    "masks_from_scores",
    "needs_labels",
    "registered_methods",
    "validate_regularizers",
    "validated_config",
]
