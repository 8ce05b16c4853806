"""Declared regularizers: what a method asks the engine to add to its training, as data instead of code.

A method that trains while it prunes (`PruningContext.train(epochs, regularizers=[...])`) may declare terms of the
objective and soft masks; the engine applies them inside its own training step (prunebench.engine.regularizers),
so no method code runs there. A declaration is plain data: it travels as JSON (`model_dump()`) and is validated
again on the engine's side (`validate_regularizers`), so a misspelled field is an error naming it.

- `SoftMasks`: Continuous Sparsification's soft, annealed mask on every prunable weight, with its L1 penalty and
  the scores' own optimizer (Savarese, Silva & Maire 2020).
- `BatchNormL1`: L1 on BatchNorm scales (Liu et al. 2017, network slimming).
- `GroupLasso`: the sum of the L2 norms of the convolution filters (Wen et al. 2016).
- `GroupSparsity`: DepGraph's group-level sparsity on coupled channel groups, every coupled slice of a channel
  decayed together, the less important channels harder (Fang et al. 2023).

The terms are added to the batch's mean cross-entropy, in the order declared (a method's `loss_term` last).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveFloat, TypeAdapter, model_validator


class _Declaration(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SoftMasks(_Declaration):
    """Continuous Sparsification's soft masks (Savarese, Silva & Maire 2020, "Winning the lottery with continuous
    sparsification", NeurIPS; the authors' code, lolemacs/continuous-sparsification).

    Every prunable weight w gets a score s of its shape, first `initial` (s0), and the model computes with
    w * sigmoid(beta * s) / sigmoid(s0): the gate is 1 where s = s0 at beta = 1 and tends to a hard 0/1 mask as the
    temperature beta grows. The objective gains `penalty` * the L1 norm of the gates, sum over the weights (in
    execution order) of sum(sigmoid(beta * s) / sigmoid(s0)). The engine's optimizer, weight decay and gradient
    clipping leave the scores out: after every step of the weights (and after the masks are applied again) the
    scores take one step of their own SGD (`lr`, `momentum`, Nesterov when momentum > 0, no weight decay).

    beta follows `temperatures`, one per epoch of the train call: epoch e trains at temperatures[e]; at the end of
    each epoch, before that epoch is evaluated, beta moves on to the next epoch's (the last epoch's evaluation
    stays at the last temperature). Scores and their optimizer's state belong to the job: a later train call that
    declares soft masks again continues them, after the reset `reset` says. The parametrization is on the model
    only during the calls that declare it; `PruningContext.soft_mask_scores()` reads the scores.
    """

    kind: Literal["soft_masks"] = "soft_masks"
    temperatures: tuple[PositiveFloat, ...] = Field(
        min_length=1, description="beta of each epoch of the train call, one per epoch."
    )
    initial: float = Field(0.0, description="s0: the scores' initial value; the gate is divided by sigmoid(s0).")
    penalty: float = Field(1e-8, ge=0, description="lambda: weight of the L1 norm of the gates (0: no term).")
    lr: PositiveFloat | None = Field(
        None, description="The scores' learning rate; None: the engine's learning rate at each step."
    )
    momentum: float = Field(0.9, ge=0, lt=1, description="The scores' SGD momentum (Nesterov when above 0).")
    reset: Literal["one", "last", "keep"] = Field(
        "one",
        description="Scores an earlier train call left, at the start of this one: `one`, s <- min(s, s0) (the "
        "authors' reset between rounds, at temperature 1); `last`, s <- min(t * s, s0) with t the temperature "
        "they ended at; `keep`, as they are.",
    )


class BatchNormL1(_Declaration):
    """`coefficient` * sum of |gamma| over the scales of every BatchNorm layer of the model (Liu et al. 2017,
    "Learning efficient convolutional networks through network slimming", ICCV): drives channels' scales to zero,
    so that the channels can be pruned. Liu et al. use 1e-4 on CIFAR (1e-5 for VGG on ImageNet)."""

    kind: Literal["batch_norm_l1"] = "batch_norm_l1"
    coefficient: float = Field(ge=0, description="Weight of the sum of |gamma| (0: no term).")


class GroupLasso(_Declaration):
    """`coefficient` * sum over the prunable convolution weights of the L2 norms of their filters (output
    channels), sum_l sum_f ||W_l[f]||_2 (Wen et al. 2016, "Learning structured sparsity in deep neural networks",
    NeurIPS: the filter-wise group Lasso): drives whole filters to zero. Prunable linear weights are left out."""

    kind: Literal["group_lasso"] = "group_lasso"
    coefficient: float = Field(ge=0, description="Weight of the sum of the filters' L2 norms (0: no term).")


class GroupSlice(_Declaration):
    """One parameter's part in a coupled channel group (prunebench.methods.Slice as data): `positions[c]`, the
    indices along dim `dim` of parameter `param` (a name of the model's, e.g. `layer1.0.conv1.weight`) that belong
    to the group's channel c: 0 for a writer's filters or a BatchNorm's scales, 1 for a reader's input columns."""

    param: str = Field(min_length=1)
    dim: Literal[0, 1]
    positions: tuple[tuple[NonNegativeInt, ...], ...] = Field(min_length=1)


class GroupSparsity(_Declaration):
    """DepGraph's group-level sparsity (Fang et al. 2023, "DepGraph: Towards Any Structural Pruning", CVPR, its
    sparse training before group-level pruning; Torch-Pruning's `GroupNormPruner.regularize`) over coupled channel
    groups. For each group (its slices all with the same channels) and channel c, with n_c the L2 norm of all the
    channel's slices together and gamma_c = 2 ** (alpha * (max n - n_c) / (max n - min n)) (1 where all norms are
    equal), taken as constants: `coefficient` / 2 * sum_c gamma_c * n_c ** 2, whose gradient
    `coefficient` * gamma_c * w is what Torch-Pruning adds to every coupled weight's gradient. The least important
    channel of a group is decayed 2 ** alpha times as hard as the most important."""

    kind: Literal["group_sparsity"] = "group_sparsity"
    coefficient: float = Field(ge=0, description="Torch-Pruning's reg (0: no term).")
    alpha: float = Field(4.0, ge=0, description="The decay ranges from 1 to 2 ** alpha times the coefficient.")
    groups: tuple[tuple[GroupSlice, ...], ...] = Field(min_length=1, description="Each group's slices.")

    @model_validator(mode="after")
    def _one_size_per_group(self) -> GroupSparsity:
        for i, group in enumerate(self.groups):
            if not group or len({len(s.positions) for s in group}) != 1:
                raise ValueError(f"group {i} must have slices, all with the same number of channels")
        return self


Regularizer = Annotated[SoftMasks | BatchNormL1 | GroupLasso | GroupSparsity, Field(discriminator="kind")]
REGULARIZERS: TypeAdapter[tuple[Regularizer, ...]] = TypeAdapter(tuple[Regularizer, ...])


def validate_regularizers(declared: Iterable[Any]) -> tuple[Regularizer, ...]:
    """The declarations, validated (again): each a declaration or its `model_dump()`; at most one of each kind.
    A wrong field raises pydantic's ValidationError, located (e.g. `0.soft_masks.temperatures`)."""
    items = [d.model_dump() if isinstance(d, BaseModel) else d for d in declared]
    out = REGULARIZERS.validate_python(items)
    kinds = [r.kind for r in out]
    if len(set(kinds)) != len(kinds):
        raise ValueError(f"at most one regularizer of each kind in a train call (declared: {', '.join(kinds)})")
    return out


__all__ = [
    "REGULARIZERS",
    "BatchNormL1",
    "GroupLasso",
    "GroupSlice",
    "GroupSparsity",
    "Regularizer",
    "SoftMasks",
    "validate_regularizers",
]
