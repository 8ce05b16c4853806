"""The public method API, the one a user's method and every built-in baseline are written against.

- `api`: `Method` (generic in its `MethodConfig`), the hooks the engine calls, and `Reach` (what a method
  states, before any training, that it will prune to).
- `context`: `PruningContext` (what `prune` gets) and `StepContext` (what training hooks get).
- `access`: `PruningAccess` and `StepAccess`, what those contexts may ask of the engine (typing.Protocols that
  the engine's adapters, prunebench.engine.access, implement).
- `regularizers`: what a method may ask the engine to add to its training, declared as data (`SoftMasks`,
  `BatchNormL1`, `GroupLasso`, `GroupSparsity`: the `Regularizer` union), for
  `PruningContext.train(..., regularizers=...)`.
- `registry`: finding a method by registered name, `package.module:Class` or `path/to/file.py:Class`.
- `coupling`, `channels`, `channel_scores`, `channel_cost`, `channel_allocation`, `channel_prune`: coupled
  channel groups for structured methods (Torch-Pruning's dependency graph on the method's model), their magnitude
  and random scores and any elementwise score summed per channel (`coupling_sums`: gradients, Hessian diagonals),
  exact counts of the compacted model, the removal order and how far the target takes it, the masks
  (`prune_channels`: a channel-scoring method's whole `prune`).

`Masks`, `masks_from_scores` and `shuffle_within_layers` (prunebench.masks), the one-shot kernels of language
models (`magnitude_mask`, `wanda_mask`, `sparsegpt_prune` and the input statistics they take, `InputStats` and
`Hessian`: prunebench.language), and `Taxonomy` with its vocabulary (prunebench.results.taxonomy, where it is
declared because the result record keeps it), are part of this API: a method imports everything it needs from here.
"""

from prunebench.fairness import Allowance
from prunebench.language import Hessian, InputStats, SparseGPTResult, magnitude_mask, sparsegpt_prune, wanda_mask
from prunebench.masks import Masks, masks_from_scores, shuffle_within_layers
from prunebench.methods.access import PruningAccess, SavedState, StepAccess
from prunebench.methods.api import HookStage, Method, MethodConfig, Reach
from prunebench.methods.channel_allocation import Allocation, reach_target, removal_limits, removal_order, replay
from prunebench.methods.channel_cost import Counts, Tally
from prunebench.methods.channel_prune import channel_masks, prune_channels
from prunebench.methods.channel_scores import (
    Members,
    Normalizer,
    Reduction,
    coupling_magnitudes,
    coupling_sums,
    index_sums,
    magnitude_scores,
    normalize,
    per_channel,
    random_scores,
    reduce_members,
    slice_magnitudes,
    slice_sums,
)
from prunebench.methods.channels import channel_groups, find_channel_groups
from prunebench.methods.context import PruningContext, StepContext
from prunebench.methods.coupling import ChannelGroups, Coupling, Slice
from prunebench.methods.densities import erk_sparsities, random_masks, uniform_sparsities
from prunebench.methods.layerwise import SPARSEGPT_LLAMA_SEQUENTIAL, LayerScore, Layerwise, SparseGPTSolver, Statistic
from prunebench.methods.layout import Layout
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
    GroupSlice,
    GroupSparsity,
    Regularizer,
    SoftMasks,
    validate_regularizers,
)
from prunebench.results.targets import Target, TargetKind
from prunebench.results.taxonomy import GRANULARITY_ORDER, Granularity, Regime, Schedule, Scope, Taxonomy, When

__all__ = [
    "ENTRY_POINT_GROUP",
    "GRANULARITY_ORDER",
    "SPARSEGPT_LLAMA_SEQUENTIAL",
    "Allocation",
    "Allowance",
    "BatchNormL1",
    "ChannelGroups",
    "Counts",
    "Coupling",
    "Granularity",
    "GroupLasso",
    "GroupSlice",
    "GroupSparsity",
    "Hessian",
    "HookStage",
    "InputStats",
    "LayerScore",
    "Layerwise",
    "Layout",
    "LoadedMethod",
    "Masks",
    "Members",
    "Method",
    "MethodConfig",
    "Normalizer",
    "PluginWarning",
    "PruningAccess",
    "PruningContext",
    "Reach",
    "Reduction",
    "Regime",
    "Regularizer",
    "SavedState",
    "Schedule",
    "Scope",
    "Slice",
    "SoftMasks",
    "SparseGPTResult",
    "SparseGPTSolver",
    "Statistic",
    "StepAccess",
    "StepContext",
    "Tally",
    "Target",
    "TargetKind",
    "Taxonomy",
    "When",
    "channel_groups",
    "channel_masks",
    "config_table",
    "coupling_magnitudes",
    "coupling_sums",
    "erk_sparsities",
    "find_channel_groups",
    "index_sums",
    "instantiate",
    "label_methods",
    "load_method",
    "magnitude_mask",
    "magnitude_scores",
    "masks_from_scores",
    "needs_labels",
    "normalize",
    "per_channel",
    "prune_channels",
    "random_masks",
    "random_scores",
    "reach_target",
    "reduce_members",
    "registered_methods",
    "removal_limits",
    "removal_order",
    "replay",
    "shuffle_within_layers",
    "slice_magnitudes",
    "slice_sums",
    "sparsegpt_prune",
    "uniform_sparsities",
    "validate_regularizers",
    "validated_config",
    "wanda_mask",
]
