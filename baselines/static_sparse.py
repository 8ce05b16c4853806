"""Static sparse training: a random mask at initialization, kept fixed through training (the lower bound of dynamic
sparse training, Evci et al. 2020)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

from pydantic import Field

from prunebench.methods import (
    Layout,
    Masks,
    Method,
    MethodConfig,
    PruningContext,
    Reach,
    Target,
    Taxonomy,
    erk_sparsities,
    random_masks,
    uniform_sparsities,
)


class StaticSparseConfig(MethodConfig):
    distribution: Literal["uniform", "erk"] = Field(
        "erk",
        description="How the layers share the target: uniform (every prunable layer at the target sparsity) or erk "
        "(Erdős-Rényi-Kernel: a layer's density proportional to the sum of its dimensions over their product).",
    )
    erk_power: float = Field(1.0, gt=0, le=1, description="ERK's power scale (rigl's erk_power_scale; 1: ERK).")


class StaticSparse(Method[StaticSparseConfig]):
    """A random mask of the job's sparsity drawn at initialization, each layer's count from `distribution`, the
    network then trained from its initialization under the mask with the protocol's retraining recipe; the mask
    never moves. Which layers are sparse is the protocol's prunable set (RigL's code keeps the first layer dense by
    default; here the protocol says).

    Evci et al. 2020, "Rigging the Lottery: Making All Tickets Winners" (ICML): the Static baseline, with uniform
    and ERK allocations (google-research/rigl, `sparse_utils`)."""

    name = "static_sparse"
    version = "1.1"  # 1.1: under SX-A / SX-B it trains as long as the setup allows
    citation = "Evci et al. 2020 (ICML), Rigging the Lottery: Making All Tickets Winners"
    taxonomy = Taxonomy(
        when="before_training",
        granularity="unstructured",
        scope="layerwise",
        schedule="one_shot",
        retraining="fine_tune",
    )

    def sparsities(self, shapes: Layout | dict[str, tuple[int, ...]], sparsity: float) -> dict[str, float]:
        """Each layer's sparsity at the global `sparsity` under the configured allocation (ValueError: ERK cannot
        reach it)."""
        c = self.config
        if c.distribution == "erk":
            return erk_sparsities(shapes, sparsity, power=c.erk_power)
        return uniform_sparsities(shapes, sparsity)

    def reach(self, shapes: Layout, target: Target) -> Reach | None:
        """The fraction of the prunable weights the allocation's whole counts prune (floor(s_l n_l) in each layer)."""
        sparsities = self.sparsities(shapes, target.value)
        total = sum(math.prod(shape) for shape in shapes.values())
        zeros = sum(math.floor(max(0.0, sparsities[name]) * math.prod(shape)) for name, shape in shapes.items())
        return Reach(zeros / total if total else 0.0)

    def retrain_epochs(self, ctx: PruningContext) -> int | None:
        """Training from scratch takes what the comparison setup allows (SX-A: its epochs; SX-B: the most epochs
        whose training FLOPs, `training_flops`, fit it); under another setup, the protocol's retraining epochs."""
        allowance = ctx.allowance()
        if allowance.epochs is not None:
            epochs = math.floor(allowance.epochs + 1e-9)
        elif allowance.train_flops is not None:
            cost, budget = self.training_flops(ctx), allowance.train_flops * (1 + 1e-9)
            low, high = 0, math.floor(budget / cost(1)) + 1 if cost(1) > 0 else 0
            while low < high:  # the most epochs within the budget (the cost grows with them)
                middle = (low + high + 1) // 2
                low, high = (middle, high) if cost(middle) <= budget else (low, middle - 1)
            epochs = low
        else:
            return None
        ctx.note("training_epochs", epochs)
        return epochs

    def training_flops(self, ctx: PruningContext) -> Callable[[int], float]:
        """The FLOPs of training under the mask for a number of epochs: forward and backward, three sparse forward
        passes an example (the ledger's count)."""
        per_epoch = 3.0 * ctx.forward_flops() * ctx.allowance().train_examples
        return lambda epochs: per_epoch * epochs

    def prune(self, ctx: PruningContext) -> Masks:
        assert ctx.target_sparsity is not None
        shapes = {name: tuple(w.shape) for name, w in ctx.weights().items()}
        sparsities = self.sparsities(shapes, ctx.target_sparsity)
        ctx.note("layer_sparsities", {name: round(s, 6) for name, s in sparsities.items()})
        return random_masks(shapes, sparsities, ctx.generator)
