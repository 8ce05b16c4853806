"""What a method's contexts may ask of the engine, and nothing more.

A context (prunebench.methods.context) never holds the engine. It holds an access object: `PruningAccess` for
the `PruningContext` that `prune` gets, `StepAccess` for the `StepContext` that training hooks get. These are
typing.Protocols: the operations listed here are the whole of the method contract's way into the engine, and
the engine's side (prunebench.engine.access) is a small adapter that implements exactly them, keeping the
engine private. So the engine's fields (its ledger, its data, its seal) are no part of the contract: a method
that reaches for them (`ctx._engine`) is reaching past it, which `prunebench lint-method` flags.

Everything a method spends goes through these operations, so the engine counts it: scoring batches
(`scoring_batches`, counted in the pruning ledger), training (`train`, a pruning-stage run of the engine's
loop, with the regularizers the method declares), and loading weights (`load_weights`, granted only for saved
states or changes at pruned positions). The operations take and return plain data (tensors, numbers, pydantic
declarations), so that they can cross a process boundary.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal, Protocol

from torch import Tensor

if TYPE_CHECKING:
    import torch
    from torch import nn

    from prunebench.fairness import Allowance
    from prunebench.masks import Masks
    from prunebench.methods.layerwise import LayerScore, Layerwise
    from prunebench.methods.regularizers import Regularizer
    from prunebench.protocol import TrainingSpec
    from prunebench.results.taxonomy import Regime

# The model states the engine keeps for methods: the initialization (the base model's seed) and the weights at
# the protocol's pruning.rewind_epoch of base training (Frankle et al. 2020, "Linear mode connectivity and the
# lottery ticket hypothesis").
SavedState = Literal["init", "rewind"]


class StepAccess(Protocol):
    """What a training hook may ask of the engine (through `StepContext`): the model, and read and set the masks."""

    @property
    def model(self) -> nn.Module:
        """The model being pruned (its weights change only through the engine)."""
        ...

    def masks(self) -> Masks:
        """A copy of the current keep-masks (True = kept), by weight name."""
        ...

    def weights(self) -> dict[str, Tensor]:
        """The prunable weight tensors (the parameters themselves, in execution order), by parameter name."""
        ...

    def set_masks(self, masks: Masks) -> None:
        """Apply masks; the engine validates and enforces them (an invalid mask fails the job)."""
        ...

    def next_call_at(self, step: int | None) -> None:
        """Call on_step_end next at this optimizer step of the stage (None: not again in this run of it)."""
        ...

    def dense_gradients(self) -> dict[str, Tensor]:
        """The step's gradient of every prunable weight, pruned positions included (a method that declares
        `dense_gradients`, in on_step_end)."""
        ...


class PruningAccess(StepAccess, Protocol):
    """What `prune` and `retrain_epochs` may ask of the engine (through `PruningContext`): the masks, as a hook
    may; what the model is and costs; the protocol's recipes; and the counted uses of the engine."""

    # ---- the model and what it costs ------------------------------------------------------------------------
    @property
    def device(self) -> torch.device: ...

    @property
    def num_classes(self) -> int: ...

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of one example."""
        ...

    def layer_macs(self) -> dict[str, int]:
        """Forward multiply-accumulates per example of each prunable weight's layer."""
        ...

    def forward_flops(self, *, dense: bool) -> float:
        """Forward FLOPs per example of the model under the current masks (or of the dense model)."""
        ...

    # ---- the protocol's recipes ---------------------------------------------------------------------------
    def retrain_epochs(self) -> int:
        """Epochs of the protocol's retraining stage (0 when there is none)."""
        ...

    def allowance(self) -> Allowance:
        """What the comparison setup lets the job spend from where it starts (prunebench.fairness.allowance)."""
        ...

    def recipe(self, regime: Regime, epochs: int) -> TrainingSpec:
        """The protocol's training recipe of a retraining regime over `epochs` epochs
        (prunebench.protocol.retraining_recipe)."""
        ...

    # ---- counted uses of the engine -----------------------------------------------------------------------
    def scoring_batches(self, num_examples: int, *, backward: bool) -> Iterator[tuple[Tensor, Tensor]]:
        """A fixed, seeded sample of training batches, counted in the pruning ledger (3x when `backward`)."""
        ...

    def saved_state(self, which: SavedState) -> dict[str, Tensor]:
        """A copy of a saved model state (see `SavedState`)."""
        ...

    def load_weights(self, state: dict[str, Tensor]) -> None:
        """Load a saved state, or the current weights changed only at pruned positions; anything else is refused
        and the job is a violation."""
        ...

    def train(self, epochs: int, spec: TrainingSpec | None, regularizers: tuple[Regularizer, ...]) -> None:
        """Train the masked model with the engine's loop in the pruning stage (default recipe: the protocol's
        retraining recipe cut to `epochs`), applying the declared `regularizers` (prunebench.methods.regularizers)
        for this call."""
        ...

    def soft_mask_scores(self) -> dict[str, Tensor]:
        """A copy of the soft masks' learned scores by weight name (empty when no train call declared them)."""
        ...

    def prune_layerwise(self, spec: Layerwise, score: LayerScore | None, sparsity: float) -> Masks:
        """The engine's layer-by-layer pass on the seed's calibration windows (prunebench.methods.layerwise), each
        prunable layer to `sparsity`: counted in the pruning ledger; the masks it chose (and the solver's weights)
        are in place afterwards."""
        ...

    def note(self, key: str, value: Any) -> None:
        """Record something about the job in its result (`method.notes`); informational only."""
        ...
