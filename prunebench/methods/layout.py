"""What `Method.reach` is handed before any training: the protocol's prunable weights as shapes, and on request the
protocol's model itself, freshly built (no trained value, no data), for a method whose reach follows the model's
structure rather than its weights' shapes alone (coupled channels, a cap per coupling); and a bound on the training's
steps, for a method whose schedule counts them."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
from torch import nn


class Layout(Mapping[str, tuple[int, ...]]):
    """The shapes of the protocol's prunable weights by parameter name, in execution order (a mapping, so that a
    method may read it as the shapes alone), the input shape of one example, and `model()`: the protocol's
    architecture freshly initialized, built on demand (the caller's random state untouched)."""

    def __init__(
        self,
        shapes: Mapping[str, tuple[int, ...]],
        input_shape: tuple[int, int, int] | None = None,
        build: Callable[[], nn.Module] | None = None,
        max_training_steps: int | None = None,
    ) -> None:
        self._shapes = dict(shapes)
        # At most this many optimizer steps in the training a method's hooks run in under the protocol (its
        # retraining, or under SX-A training from scratch for the whole total), counted before the validation split
        # and any length a method asks for under SX-B: None where not known before the data is read. A schedule
        # that needs more (a mask update interval) cannot run.
        self.max_training_steps = max_training_steps
        self.input_shape = input_shape
        self._build = build
        self._model: nn.Module | None = None
        # What methods derive from the model (their channel groups), kept for the next method checked on it.
        self.memo: dict[str, Any] = {}

    def __getitem__(self, name: str) -> tuple[int, ...]:
        return self._shapes[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._shapes)

    def __len__(self) -> int:
        return len(self._shapes)

    def model(self) -> nn.Module:
        """A fresh model of the protocol's architecture (built once; do not change it); ValueError where none can
        be built here."""
        if self._build is None or self.input_shape is None:
            raise ValueError("the protocol's model is not known here")
        if self._model is None:
            with torch.random.fork_rng(devices=[]):
                self._model = self._build()
        return self._model
