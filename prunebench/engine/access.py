"""The engine's side of the method contract: adapters that implement prunebench.methods.access over one `Engine`.

A method's contexts hold one of these, never the engine: `EngineStepAccess` (a training hook's `StepContext`)
exposes `StepAccess` and `EnginePruningAccess` (`prune`'s `PruningContext`) exposes `PruningAccess`, each
exactly the protocol's operations. The engine they serve is a private slot: the contract offers no way to it.
Each operation is the engine's own (e.g. `set_masks` checks the seal and validates the masks), so what a method
does through an adapter is what it did before through the engine.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

from torch import Tensor

if TYPE_CHECKING:
    import torch
    from torch import nn

    from prunebench.data import DataBundle
    from prunebench.fairness import Allowance
    from prunebench.masks import Masks, MaskSet
    from prunebench.methods.access import PruningAccess, SavedState, StepAccess
    from prunebench.methods.layerwise import LayerScore, Layerwise
    from prunebench.methods.regularizers import Regularizer
    from prunebench.protocol import TrainingSpec
    from prunebench.results.taxonomy import Regime


class EngineSide(Protocol):
    """What the adapters read of an engine (prunebench.engine.loop.Engine, which builds them: it is not imported
    here, so that the loop can import the adapters)."""

    model: nn.Module
    device: torch.device
    data: DataBundle
    masks: MaskSet
    all_macs: dict[str, int]
    notes: dict[str, Any]
    retrain_spec: TrainingSpec | None
    allowance: Allowance

    @property
    def forward_flops(self) -> float: ...

    @property
    def dense_forward_flops(self) -> float: ...

    def set_masks(self, masks: Masks) -> None: ...

    def next_step_hook_at(self, step: int | None) -> None: ...

    def dense_gradients(self) -> dict[str, Tensor]: ...

    def recipe(self, regime: Regime, epochs: int) -> tuple[str, TrainingSpec]: ...

    def scoring_batches(self, num_examples: int, *, backward: bool) -> Iterator[tuple[Tensor, Tensor]]: ...

    def saved_state(self, which: SavedState) -> dict[str, Tensor]: ...

    def load_weights_for_method(self, state: dict[str, Tensor]) -> None: ...

    def train_while_pruning(
        self, epochs: int, spec: TrainingSpec | None, regularizers: tuple[Regularizer, ...]
    ) -> None: ...

    def soft_mask_scores(self) -> dict[str, Tensor]: ...

    def prune_layerwise(self, spec: Layerwise, score: LayerScore | None, sparsity: float) -> Masks: ...


class EngineStepAccess:
    """`StepAccess` over an engine: the masks, for a training hook."""

    __slots__ = ("_engine",)  # nothing else can be put on it

    def __init__(self, engine: EngineSide) -> None:
        self._engine = engine

    @property
    def model(self) -> nn.Module:
        return self._engine.model

    def masks(self) -> Masks:
        return {k: m.clone() for k, m in self._engine.masks.masks.items()}

    def weights(self) -> dict[str, Tensor]:
        return dict(self._engine.masks.params)

    def set_masks(self, masks: Masks) -> None:
        self._engine.set_masks(masks)

    def next_call_at(self, step: int | None) -> None:
        self._engine.next_step_hook_at(step)

    def dense_gradients(self) -> dict[str, Tensor]:
        return self._engine.dense_gradients()


class EnginePruningAccess(EngineStepAccess):
    """`PruningAccess` over an engine: the masks, the model and its costs, the protocol's recipes and the engine's
    counted operations, for `prune`."""

    __slots__ = ()

    @property
    def device(self) -> torch.device:
        return self._engine.device

    @property
    def num_classes(self) -> int:
        return self._engine.data.num_classes

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self._engine.data.input_shape)  # type: ignore[return-value]

    def layer_macs(self) -> dict[str, int]:
        return dict(self._engine.masks.macs)

    def forward_flops(self, *, dense: bool) -> float:
        return float(self._engine.dense_forward_flops) if dense else float(self._engine.forward_flops)

    def retrain_epochs(self) -> int:
        spec = self._engine.retrain_spec
        return int(spec.epochs) if spec is not None else 0

    def allowance(self) -> Allowance:
        return self._engine.allowance

    def recipe(self, regime: Regime, epochs: int) -> TrainingSpec:
        return self._engine.recipe(regime, epochs)[1]

    def scoring_batches(self, num_examples: int, *, backward: bool) -> Iterator[tuple[Tensor, Tensor]]:
        return self._engine.scoring_batches(num_examples, backward=backward)

    def saved_state(self, which: SavedState) -> dict[str, Tensor]:
        return self._engine.saved_state(which)

    def load_weights(self, state: dict[str, Tensor]) -> None:
        self._engine.load_weights_for_method(state)

    def train(self, epochs: int, spec: TrainingSpec | None, regularizers: tuple[Regularizer, ...]) -> None:
        self._engine.train_while_pruning(epochs, spec, regularizers)

    def soft_mask_scores(self) -> dict[str, Tensor]:
        return self._engine.soft_mask_scores()

    def prune_layerwise(self, spec: Layerwise, score: LayerScore | None, sparsity: float) -> Masks:
        return self._engine.prune_layerwise(spec, score, sparsity)

    def note(self, key: str, value: Any) -> None:
        self._engine.notes[key] = value


if TYPE_CHECKING:  # the adapters implement the protocols (checked by a type checker, not at run time)
    _step: type[StepAccess] = EngineStepAccess
    _pruning: type[PruningAccess] = EnginePruningAccess
