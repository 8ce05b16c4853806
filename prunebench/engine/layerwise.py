"""The engine's layer-by-layer pass of one-shot causal-LM pruning (`PruningContext.prune_layerwise`,
prunebench.methods.layerwise): the references' calibration loop (prunebench.language.layerwise) on the seed's
calibration windows, each prunable linear's keep-mask chosen by the engine from the method's scores, or by the
declared solver, and counted.

Cost: every window runs forward through each decoder layer twice (once gathering its inputs' statistic, once
passing the pruned layer's outputs on), so the ledger counts twice the dense model's forward FLOPs per window as
scoring (`forward_examples`: the windows); magnitude, gathering nothing, runs none and counts none.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import torch
from torch import Tensor, nn

from prunebench.language import Hessian, InputStats, layerwise, sparsegpt_prune
from prunebench.language.kernels import check_layer, n_m_pruned, row_pruned, threshold_pruned
from prunebench.language.layerwise import Accumulator, Statistic
from prunebench.masks import Masks
from prunebench.methods.layerwise import LayerScore, Layerwise

if TYPE_CHECKING:
    from prunebench.data import DataBundle
    from prunebench.engine.events import EngineObserver
    from prunebench.masks import MaskSet


class Host(Protocol):
    """What the pass needs of the engine (prunebench.engine.loop.Engine)."""

    model: nn.Module
    data: DataBundle
    masks: MaskSet
    seed: int
    device: torch.device
    observer: EngineObserver

    @property
    def dense_forward_flops(self) -> float: ...

    def count_scoring(self, examples: int, flops: float) -> None: ...


def statistic_of(accumulator: Accumulator | None) -> Tensor | None:
    """What a score sees of a layer's inputs: Wanda's squared column norms, or the Hessian."""
    if isinstance(accumulator, InputStats):
        return accumulator.sq_norm
    if isinstance(accumulator, Hessian):
        return accumulator.matrix
    return None


def kept(scores: Tensor, spec: Layerwise, sparsity: float) -> Tensor:
    """The keep-mask of a layer's scores (highest kept) under the declared selection."""
    if spec.n_m is not None:
        return ~n_m_pruned(scores, *spec.n_m)
    return ~(row_pruned(scores, sparsity) if spec.selection == "row" else threshold_pruned(scores, sparsity))


def prune_layerwise(engine: Host, spec: Layerwise, score: LayerScore | None, sparsity: float) -> Masks:
    """Run the pass on `engine`'s model; returns the keep-masks of every prunable weight (weights written)."""
    text = engine.data.text
    windows = text.calibration.get(engine.seed) if text is not None else None
    gather = spec.statistic is not Statistic.NONE
    if gather and windows is None:
        raise ValueError("the protocol draws no calibration windows (pruning.calibration) to gather statistics on")
    params = engine.masks.params

    def prune(name: str, weight: Tensor, accumulator: Accumulator | None) -> tuple[Tensor, Tensor]:
        check_layer(weight, sparsity, spec.n_m)
        if spec.solver is not None:
            assert isinstance(accumulator, Hessian)
            solved = sparsegpt_prune(
                weight, accumulator.matrix, sparsity, spec.n_m, spec.solver.blocksize, spec.solver.percdamp
            )
            return solved.weight, solved.keep
        assert score is not None
        scores = score(name, weight.detach().clone(), statistic_of(accumulator))
        if not isinstance(scores, Tensor) or scores.shape != weight.shape or not scores.is_floating_point():
            got = tuple(scores.shape) if isinstance(scores, Tensor) else type(scores).__name__
            raise ValueError(f"the scores of {name} must be a float tensor of shape {tuple(weight.shape)}, not {got}")
        scores = scores.detach().to(weight.device, torch.float64 if scores.dtype == torch.float64 else torch.float32)
        if not torch.isfinite(scores).all():
            raise ValueError(f"the scores of {name} are not all finite")
        keep = kept(scores, spec, sparsity)
        return weight * keep, keep

    empty = torch.empty(0, 0, dtype=torch.long)
    done = layerwise(
        engine.model,
        windows if windows is not None else empty,
        prune,
        spec.statistic,
        prunable=lambda name: name in params,
        sequential=spec.sequential,
        device=engine.device,
    )
    missing = sorted(set(params) - set(done.masks))
    if missing:
        raise ValueError(f"{len(missing)} prunable weight(s) lie outside the decoder layers ({missing[0]} first)")
    if gather and windows is not None:
        n = int(windows.shape[0])
        engine.count_scoring(n, 2.0 * n * engine.dense_forward_flops)
    if spec.solver is not None:
        engine.observer.reconstructed(list(done.masks))
    return {name: done.masks[name].to(params[name].device) for name in params}
