"""The method contract's access, in a method process of its own: every operation is a call to the engine's process.

`RemoteAccess` implements prunebench.methods.access's `PruningAccess` (and so `StepAccess`) over a
prunebench.run.sandbox.bridge `Bridge`. The model a method sees (`ctx.model`, `ctx.weights()`) is a copy in its
own process, brought up to date from the engine's when it is read after the engine may have changed it: what the
method does to the copy stays in its process. Everything it spends is counted where it is served, in the engine's.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from prunebench.fairness import Allowance
from prunebench.protocol import TrainingSpec
from prunebench.run.sandbox.bridge import Bridge, Handler, RemoteError, pack

if TYPE_CHECKING:
    from prunebench.masks import Masks
    from prunebench.methods.access import PruningAccess, SavedState
    from prunebench.methods.layerwise import LayerScore, Layerwise
    from prunebench.methods.regularizers import Regularizer
    from prunebench.results.taxonomy import Regime


class EngineRefused(RuntimeError):
    """The engine refused an operation (or failed the job while serving it); the reason is the engine's."""


class RemoteAccess:
    """`PruningAccess` over the bridge. `serve` answers the engine's calls that arrive while an operation waits
    (the training hooks, while the engine trains for the method)."""

    def __init__(
        self,
        bridge: Bridge,
        serve: Handler,
        model: nn.Module,
        *,
        prunable: list[str],
        device: torch.device,
        num_classes: int,
        input_shape: tuple[int, int, int],
    ) -> None:
        self._bridge, self._serve = bridge, serve
        self._model, self._prunable = model, prunable
        self._device, self._num_classes, self._input_shape = device, num_classes, input_shape
        self.stale = True  # the engine may have changed its model since the copy was made: read it again
        self._score: LayerScore | None = None  # the scores of a layer-by-layer pass under way
        self._synced: list[tuple[int, int]] = []  # (identity, version) of every tensor of the copy, as synced

    def _call(
        self, op: str, header: dict[str, Any] | None = None, tensors: dict[str, Tensor] | None = None
    ) -> tuple[dict[str, Any], dict[str, Tensor]]:
        try:
            return self._bridge.call(op, self._serve, header, tensors)
        except RemoteError as exc:
            raise EngineRefused(exc.reason) from None

    def _on_device(self, tensors: dict[str, Tensor]) -> dict[str, Tensor]:
        return {k: v.to(self._device) for k, v in tensors.items()}

    # ---- StepAccess -------------------------------------------------------------------------------------------
    @property
    def model(self) -> nn.Module:
        """The copy, as the engine's model is: read again when the engine may have changed its model, or the method
        changed the copy in place (a tensor's version counter moved) or replaced a tensor of it. What a method did
        to the copy never outlives the next read: weights it trained itself cannot choose its masks."""
        if self.stale or self._tensors() != self._synced:
            _, state = self._call("state")
            with torch.no_grad():  # what the method added to its copy (a module, a buffer) keeps its own values
                self._model.load_state_dict(state, strict=False)
            self.stale = False
            self._synced = self._tensors()
        return self._model

    def _tensors(self) -> list[tuple[int, int]]:
        return [(id(t), t._version) for t in self._model.state_dict(keep_vars=True).values()]

    def masks(self) -> Masks:
        return self._on_device(self._call("masks")[1])

    def weights(self) -> dict[str, Tensor]:
        params = dict(self.model.named_parameters())
        return {name: params[name] for name in self._prunable}

    def set_masks(self, masks: Masks) -> None:
        self.stale = True
        self._call("set_masks", tensors=_tensors(masks, "masks"))

    def next_call_at(self, step: int | None) -> None:
        self._call("next_call_at", {"step": step})

    def dense_gradients(self) -> dict[str, Tensor]:
        return self._on_device(self._call("dense_gradients")[1])

    # ---- PruningAccess ----------------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def num_classes(self) -> int:
        return self._num_classes

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self._input_shape

    def layer_macs(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in self._call("layer_macs")[0]["macs"].items()}

    def forward_flops(self, *, dense: bool) -> float:
        return float(self._call("forward_flops", {"dense": bool(dense)})[0]["flops"])

    def retrain_epochs(self) -> int:
        return int(self._call("retrain_epochs")[0]["epochs"])

    def allowance(self) -> Allowance:
        header, _ = self._call("allowance")
        epochs, flops = header.get("epochs"), header.get("train_flops")
        return Allowance(
            epochs=None if epochs is None else float(epochs),
            train_flops=None if flops is None else float(flops),
            train_examples=int(header.get("train_examples", 0)),
        )

    def recipe(self, regime: Regime, epochs: int) -> TrainingSpec:
        header, _ = self._call("recipe", {"regime": str(regime), "epochs": int(epochs)})
        return TrainingSpec.model_validate(header["spec"])

    def scoring_batches(self, num_examples: int, *, backward: bool) -> Iterator[tuple[Tensor, Tensor]]:
        header, _ = self._call("batches", {"examples": int(num_examples), "backward": bool(backward)})
        stream = header["stream"]
        while True:
            header, batch = self._call("next_batch", {"stream": stream})
            if header.get("end"):
                return
            yield batch["x"].to(self._device), batch["y"].to(self._device)

    def saved_state(self, which: SavedState) -> dict[str, Tensor]:
        return self._on_device(self._call("saved_state", {"which": str(which)})[1])

    def load_weights(self, state: dict[str, Tensor]) -> None:
        self.stale = True
        self._call("load_weights", tensors=_tensors(state, "the weights to load"))

    def train(self, epochs: int, spec: TrainingSpec | None, regularizers: tuple[Regularizer, ...]) -> None:
        self.stale = True
        declared = [r.model_dump(mode="json") for r in regularizers]  # validated again by the engine's side
        header = {"epochs": int(epochs), "spec": spec.model_dump(mode="json") if spec else None}
        self._call("train", {**header, "regularizers": declared})

    def soft_mask_scores(self) -> dict[str, Tensor]:
        return self._on_device(self._call("soft_mask_scores")[1])

    def prune_layerwise(self, spec: Layerwise, score: LayerScore | None, sparsity: float) -> Masks:
        """The engine's pass; while it runs, it asks this process for each layer's scores (`layer_scores`)."""
        self.stale = True
        self._score = score
        header = {"spec": spec.model_dump(mode="json"), "score": score is not None, "sparsity": float(sparsity)}
        try:
            return self._on_device(self._call("prune_layerwise", header)[1])
        finally:
            self._score = None

    def layer_scores(self, header: dict[str, Any], args: dict[str, Tensor]) -> tuple[dict[str, Any], dict[str, Tensor]]:
        """The method's scores of one layer, asked by the engine's pass (its weight, the statistic of its inputs)."""
        if self._score is None:
            raise RemoteError("no layer-by-layer pass of this method is asking for scores")
        statistic = args.get("statistic")
        scores = self._score(
            str(header["name"]),
            args["weight"].to(self._device),
            None if statistic is None else statistic.to(self._device),
        )
        if not isinstance(scores, Tensor):
            return {"not_scores": type(scores).__name__}, {}
        return {}, {"scores": scores.detach()}

    def note(self, key: str, value: Any) -> None:
        try:
            packed, tensors = pack(value)
        except TypeError:
            packed, tensors = str(value), {}
        self._call("note", {"key": str(key), "value": packed}, tensors)


def _tensors(values: Any, what: str) -> dict[str, Tensor]:
    if not isinstance(values, dict) or not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in values.items()):
        raise TypeError(f"{what} must be a dict of tensors by name, not {type(values).__name__}")
    return {k: v.detach() for k, v in values.items()}


if TYPE_CHECKING:  # the remote access implements the protocol (checked by a type checker, not at run time)
    _pruning: type[PruningAccess] = RemoteAccess
