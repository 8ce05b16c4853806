"""SynFlow: iterative, data-free pruning at initialization by conserved synaptic flow."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Sequence
from typing import Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from prunebench.methods import Masks, Method, MethodConfig, PruningContext, Taxonomy, masks_from_scores


class SynapticFlow:
    """The linearized network SynFlow scores on: a float64 copy in eval mode with every parameter and
    buffer replaced by its absolute value (so every path through it is a product of |weights|, and
    float64 keeps deep products from overflowing). The model it copies is never modified, so its
    signs, values, dtype and mode need no restoring."""

    def __init__(self, model: nn.Module, names: Sequence[str], input_shape: Sequence[int]) -> None:
        self.net = copy.deepcopy(model).double().eval()
        with torch.no_grad():
            for t in itertools.chain(self.net.parameters(), self.net.buffers()):
                if t.is_floating_point():
                    t.abs_()
        self.names = list(names)
        self.params = [self.net.get_parameter(name) for name in self.names]
        self.magnitudes = [p.detach().clone() for p in self.params]
        device = self.params[0].device
        self.input = torch.ones(1, *input_shape, dtype=torch.float64, device=device)

    def scores(self, masks: Masks) -> dict[str, Tensor]:
        """Synaptic saliency dR/dw * w of each masked |w|, R = 1^T (prod of |W|, masked) 1: the sum of
        the network's output on an all-ones input. In a bias-free chain the scores of every layer sum
        to R (the conservation law of Tanaka et al. 2020)."""
        with torch.no_grad():
            for p, magnitude, name in zip(self.params, self.magnitudes, self.names, strict=True):
                p.copy_(magnitude * masks[name].to(magnitude.dtype))
        flow = self.net(self.input).sum()
        grads = torch.autograd.grad(flow, self.params, allow_unused=True)
        return {
            name: (torch.zeros_like(p) if g is None else g * p).detach().abs()
            for name, p, g in zip(self.names, self.params, grads, strict=True)
        }


def schedule_sparsities(target: float, iterations: int, schedule: Literal["exponential", "linear"]) -> list[float]:
    """Sparsity after each iteration: the kept fraction (1 - target)^(k/n) (exponential, the paper's)
    or 1 - (k/n) target (linear), ending at exactly the target."""
    density = 1.0 - target
    if schedule == "exponential":
        steps = [1.0 - density ** (k / iterations) for k in range(1, iterations)]
    else:
        steps = [target * k / iterations for k in range(1, iterations)]
    return [*steps, target]


class SynFlowConfig(MethodConfig):
    iterations: int = Field(100, gt=0, description="Pruning steps, each re-scoring the remaining weights.")
    schedule: Literal["exponential", "linear"] = Field(
        "exponential", description="Sparsity after step k: 1 - (1 - s)^(k/n) (exponential) or k/n * s (linear)."
    )


class SynFlow(Method[SynFlowConfig]):
    """SynFlow: prune at initialization without data, iteratively, by synaptic saliency
    dR/dw * w of the linearized network (|weights|, all-ones input, R the sum of its output),
    re-scoring after each of `iterations` pruning steps on an exponential schedule, ranked globally.
    Iterating is what avoids layer collapse: the scores of a layer grow as it thins.

    Tanaka et al. 2020, "Pruning neural networks without any data by iteratively conserving synaptic
    flow" (NeurIPS); defaults of the paper: 100 iterations, exponential schedule, global ranking.
    BatchNorm is in eval mode with |running statistics| and |affine|, as in the authors' code, on a
    float64 copy (the authors' code scores in float32: its `model.double()` is commented out;
    docs/methods.md measures the difference); the engine's model is never modified, and no data are
    drawn from the budget. The pruned network then trains from its initialization with the protocol's
    retraining recipe.
    """

    name = "synflow"
    version = "1.0"
    citation = (
        "Tanaka et al. 2020 (NeurIPS), Pruning neural networks without any data by iteratively conserving synaptic flow"
    )
    taxonomy = Taxonomy(
        when="before_training",
        granularity="unstructured",
        scope="global",
        schedule="iterative",
        retraining="fine_tune",
    )

    def prune(self, ctx: PruningContext) -> Masks:
        names = list(ctx.weights())
        flow = SynapticFlow(ctx.model, names, ctx.input_shape)
        masks = ctx.masks()
        for sparsity in schedule_sparsities(ctx.target_sparsity, self.config.iterations, self.config.schedule):
            masks = masks_from_scores(flow.scores(masks), sparsity, scope="global", current=masks)
        return masks
