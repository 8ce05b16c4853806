"""Static sparse training: a random mask at initialization, kept fixed through training (the lower bound of dynamic
sparse training, Evci et al. 2020)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from prunebench.methods import (
    Masks,
    Method,
    MethodConfig,
    PruningContext,
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
    version = "1.0"
    citation = "Evci et al. 2020 (ICML), Rigging the Lottery: Making All Tickets Winners"
    taxonomy = Taxonomy(
        when="before_training",
        granularity="unstructured",
        scope="layerwise",
        schedule="one_shot",
        retraining="fine_tune",
    )

    def prune(self, ctx: PruningContext) -> Masks:
        assert ctx.target_sparsity is not None
        shapes = {name: tuple(w.shape) for name, w in ctx.weights().items()}
        c = self.config
        if c.distribution == "erk":
            sparsities = erk_sparsities(shapes, ctx.target_sparsity, power=c.erk_power)
        else:
            sparsities = uniform_sparsities(shapes, ctx.target_sparsity)
        ctx.note("layer_sparsities", {name: round(s, 6) for name, s in sparsities.items()})
        return random_masks(shapes, sparsities, ctx.generator)
