"""One-shot pruning of causal language models, layer by layer on calibration windows, as the language-model
references prune them: magnitude (locuslab/wanda `prune_magnitude`), Wanda (Sun et al. 2024, locuslab/wanda
`prune_wanda`) and SparseGPT (Frantar & Alistarh 2023, IST-DASLab/sparsegpt `llama_sequential`).

Each declares what the engine's pass (`PruningContext.prune_layerwise`, prunebench.methods.layerwise) gathers and
how a layer's weights are kept; the engine runs the loop, counts the calibration windows, and the runner measures the
sparsity from the weights it returns. Unstructured (every layer to the target) or N:M (`n_m: "2:4"`: n of every m
consecutive inputs of a row pruned, the target then n/m). No retraining: the references prune once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Literal

from pydantic import Field, field_validator
from torch import Tensor

from prunebench.methods import (
    SPARSEGPT_LLAMA_SEQUENTIAL,
    Layerwise,
    Masks,
    Method,
    MethodConfig,
    PruningContext,
    Reach,
    SparseGPTSolver,
    Statistic,
    Target,
    Taxonomy,
)

ONE_SHOT = Taxonomy(
    when="after_training", granularity="unstructured", scope="layerwise", schedule="one_shot", retraining="fine_tune"
)


class OneShotConfig(MethodConfig):
    n_m: str | None = Field(
        None, description='N:M, e.g. "2:4" (n of every m consecutive inputs of a row pruned); none: unstructured.'
    )

    @field_validator("n_m")
    @classmethod
    def _pattern(cls, value: str | None) -> str | None:
        if value is None:
            return value
        n, _, m = value.partition(":")
        if not (n.isdigit() and m.isdigit() and 0 < int(n) < int(m) <= 64):
            raise ValueError(f"N:M is written n:m with 0 < n < m <= 64, e.g. 2:4, not {value!r}")
        return value

    @property
    def pattern(self) -> tuple[int, int] | None:
        if self.n_m is None:
            return None
        n, m = self.n_m.split(":")
        return int(n), int(m)


class OneShotLM(Method[OneShotConfig]):
    """What the three share: the taxonomy (N:M granularity with `n_m`), and the reach of an N:M pattern."""

    name = "one_shot_lm"
    taxonomy = ONE_SHOT

    def __init__(self, config: OneShotConfig | None = None) -> None:
        super().__init__(config)
        if self.config.n_m is not None:
            self.taxonomy = ONE_SHOT.model_copy(update={"granularity": "n:m"})

    def reach(self, shapes: Mapping[str, tuple[int, ...]], target: Target) -> Reach | None:
        """N:M prunes n/m of every layer whose inputs are a multiple of m (the references assert the sparsity):
        another target, or a layer it cannot group, is refused before any training."""
        pattern = self.config.pattern
        if pattern is None or target.kind != "sparsity":
            return None
        n, m = pattern
        if not math.isclose(target.value, n / m, abs_tol=1e-9):
            raise ValueError(f"N:M {n}:{m} prunes {n / m:g} of the weights, not the target {target.value:g}")
        ragged = [name for name, shape in shapes.items() if shape[-1] % m]
        if ragged:
            raise ValueError(f"N:M {n}:{m} needs inputs in multiples of {m}: {ragged[0]} has {shapes[ragged[0]][-1]}")
        return Reach(n / m)

    def layerwise(self) -> Layerwise:
        raise NotImplementedError

    def score(self, name: str, weight: Tensor, statistic: Tensor | None) -> Tensor:
        raise NotImplementedError

    def prune(self, ctx: PruningContext) -> Masks:
        spec = self.layerwise()
        return ctx.prune_layerwise(spec, None if spec.solver is not None else self.score)


class MagnitudeConfig(OneShotConfig):
    comparison: Literal["layer", "row"] = Field(
        "layer", description="Where |w| are compared: over each layer (the references' magnitude), or in each row."
    )


class LMMagnitude(OneShotLM, Method[MagnitudeConfig]):
    """Magnitude pruning of every prunable linear to the target, |w| compared over the layer by the references'
    threshold (the entry at int(numel x sparsity) of the sorted magnitudes and every one at or below it: one weight
    more than the target when none tie), or in each output row. No calibration."""

    name = "lm_magnitude"
    citation = "Han et al. 2015 (NeurIPS); as locuslab/wanda prune_magnitude (Sun et al. 2024)"
    config: MagnitudeConfig

    def layerwise(self) -> Layerwise:
        selection = "row" if self.config.pattern is not None else self.config.comparison
        return Layerwise(statistic=Statistic.NONE, selection=selection, n_m=self.config.pattern)

    def score(self, name: str, weight: Tensor, statistic: Tensor | None) -> Tensor:
        return weight.abs().float()


class Wanda(OneShotLM):
    """Wanda: a weight's score is |w_ij| x ||x_j||, the L2 norm of its input over the calibration tokens (as the
    layers before it, already pruned, pass them on); each output row keeps its highest (N:M: in each group)."""

    name = "wanda"
    citation = "Sun et al. 2024 (ICLR), A Simple and Effective Pruning Approach for Large Language Models"

    def layerwise(self) -> Layerwise:
        return Layerwise(statistic=Statistic.INPUT_STATS, selection="row", n_m=self.config.pattern)

    def score(self, name: str, weight: Tensor, statistic: Tensor | None) -> Tensor:
        assert statistic is not None
        return weight.abs().float() * statistic.float().sqrt().reshape(1, -1)


class SparseGPTConfig(OneShotConfig):
    percdamp: float = Field(0.01, gt=0, le=1, description="Hessian dampening, a fraction of its mean diagonal.")
    blocksize: int = Field(128, ge=1, le=65536, description="Columns pruned and reconstructed together.")
    true_sequential: bool = Field(
        False,
        description="Prune a LLaMA layer's linears in groups (k, v, q; o; up, gate; down), re-running the layer "
        "between them (sparsegpt's --true-sequential; off by default there and in Wanda's copy).",
    )


class SparseGPT(OneShotLM, Method[SparseGPTConfig]):
    """SparseGPT: the OBS reconstruction of each layer on its inputs' Hessian, the mask chosen block by block by
    w^2 / [H^-1]_jj^2, the kept weights updated to make up for the pruned ones (by the engine's solver)."""

    name = "sparsegpt"
    citation = "Frantar & Alistarh 2023 (ICML), SparseGPT: Massive Language Models Can Be Accurately Pruned in One-Shot"
    config: SparseGPTConfig

    def layerwise(self) -> Layerwise:
        cfg = self.config
        sequential = SPARSEGPT_LLAMA_SEQUENTIAL if cfg.true_sequential else None
        return Layerwise(
            statistic=Statistic.HESSIAN,
            selection="row" if cfg.pattern is not None else "layer",
            n_m=cfg.pattern,
            solver=SparseGPTSolver(percdamp=cfg.percdamp, blocksize=cfg.blocksize),
            sequential=sequential,
        )
