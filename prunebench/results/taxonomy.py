"""The taxonomy of pruning methods, declared once: its vocabulary and the `Taxonomy` a method states and its
result record keeps.

Where a method stands among pruning methods, on the axes of Blalock et al. 2020 ("What is the state of neural
network pruning?", MLSys) and Wang et al. 2023 ("Why is the state of neural network pruning so confusing?",
arXiv:2301.05219):

- `When`: before training (pruning at initialization), during training (gradual pruning), after training.
- `Granularity`: what one pruning decision removes: a weight, n of every m weights, a whole filter.
- `Scope`: whether weights are ranked across layers (`global`) or within each layer (`layerwise`).
- `Schedule`: pruned at once (`one_shot`), in rounds with training between them, gradually while training, or
  `dynamic`: a sparse network whose connections move while it trains, their count fixed (dynamic sparse training:
  SET, Mocanu et al. 2018; RigL, Evci et al. 2020). From the initialization (`before_training`) it is sparse
  training from scratch, which uses no dense model: prunebench.fairness.trains_from_scratch.
- `Regime`: how the pruned model is retrained (Renda et al. 2020; Liu et al. 2019 for `scratch`).

It sits at the bottom of the layers, with the records, because the result record is the lowest layer that keeps
a taxonomy; the method API (prunebench.methods), the protocol (pruning.granularity, the regimes' recipes) and the
masks (a ranking's scope) take their words from here. The words are `Literal` types, so that JSON schemas and
records spell them as plain strings, as they always have.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from pydantic import BaseModel, ConfigDict

When = Literal["before_training", "during_training", "after_training"]
Granularity = Literal["unstructured", "filter", "n:m"]
Scope = Literal["global", "layerwise"]
Schedule = Literal["one_shot", "iterative", "gradual", "dynamic"]
Regime = Literal["fine_tune", "weight_rewinding", "lr_rewinding", "scratch"]
# Finer to coarser: a protocol's pruning.granularity refuses every method finer than itself.
GRANULARITY_ORDER: dict[Granularity, int] = {"unstructured": 0, "n:m": 1, "filter": 2}


class Taxonomy(BaseModel):
    """Where a method stands among pruning methods (Blalock et al. 2020; Wang et al. 2023). `retraining` is
    the method's retraining regime: the one place it is stated.

    The result record keeps it as it is (`MethodRecord.taxonomy`); its JSON is the object of these five fields
    in this order, which is what records held when the taxonomy was a plain dict. For readers written against
    that dict, it also reads like one (`taxonomy["scope"]`, `.get`, `.keys`, `.items`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    when: When
    granularity: Granularity
    scope: Scope
    schedule: Schedule
    retraining: Regime

    # ---- read like the dict that records kept before ----------------------------------------------------------
    def __getitem__(self, key: str) -> str:
        if key not in type(self).model_fields:
            raise KeyError(key)
        return str(getattr(self, key))

    def get(self, key: str, default: str | None = None) -> str | None:
        """The value of the field `key`, or `default` when the taxonomy has no such field."""
        return self[key] if key in type(self).model_fields else default

    def keys(self) -> Iterator[str]:
        return iter(type(self).model_fields)

    def items(self) -> Iterator[tuple[str, str]]:
        return ((key, self[key]) for key in type(self).model_fields)
