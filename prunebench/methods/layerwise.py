"""One-shot pruning of a causal LM layer by layer on calibration windows, as SparseGPT (Frantar & Alistarh 2023) and
Wanda (Sun et al. 2024) do it: what a method declares to the engine (`Layerwise`), and the rule it scores by.

`PruningContext.prune_layerwise(spec, score)`: the engine runs the references' loop (prunebench.language.layerwise)
over the decoder layers on the seed's calibration windows (the protocol's `pruning.calibration`, drawn by the
runner and counted in the ledger). For each prunable linear it gathers the declared `statistic` of the layer's
inputs (as the earlier layers, already pruned, pass them on), and then either

- asks the method's `score(name, weight, statistic)` for a score per weight and keeps the highest, at the target
  sparsity, over the layer (`selection="layer"`), in each output row (`"row"`), or n of every m inputs of a row
  (`n_m`), as the engine counts them (prunebench.language.kernels); or
- runs the declared weight reconstruction (`SparseGPTSolver`, Frantar & Alistarh's OBS update; its own saliency),
  the only way a method changes the weights it keeps: through a solver the engine runs, never by writing weights.

The statistic a score sees: `Statistic.INPUT_STATS`, the squared L2 norm of each input column over the calibration
tokens (Wanda's `scaler_row`, shape (in,)); `Statistic.HESSIAN`, 2/N sum x x^T (in x in); `Statistic.NONE`: None
(the layer still sees its own weights only, as magnitude pruning: no window runs).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor

from prunebench.language.layerwise import SPARSEGPT_LLAMA_SEQUENTIAL, Statistic

__all__ = ["SPARSEGPT_LLAMA_SEQUENTIAL", "LayerScore", "Layerwise", "SparseGPTSolver", "Statistic"]

LayerScore = Callable[[str, Tensor, Tensor | None], Tensor]


class SparseGPTSolver(BaseModel):
    """SparseGPT's mask selection and OBS weight reconstruction (IST-DASLab/sparsegpt `fasterprune`), run by the
    engine: its defaults are the paper's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    percdamp: float = Field(0.01, gt=0, le=1, description="Dampening: this fraction of the Hessian's mean diagonal.")
    blocksize: int = Field(128, ge=1, le=1 << 16, description="Columns pruned and updated together.")


class Layerwise(BaseModel):
    """What a method declares for the engine's layer-by-layer pass."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    statistic: Statistic = Field(Statistic.NONE, description="What is gathered of each linear's inputs.")
    selection: Literal["layer", "row"] = Field(
        "layer", description="Where the target's fraction is pruned: over each layer, or in each output row."
    )
    n_m: tuple[int, int] | None = Field(None, description="N:M: prune n of every m consecutive inputs of a row.")
    solver: SparseGPTSolver | None = Field(
        None, description="The engine's weight reconstruction, in place of a score (needs the Hessian)."
    )
    sequential: tuple[tuple[str, ...], ...] | None = Field(
        None,
        description="Groups of a decoder layer's linears (names inside the layer, e.g. self_attn.q_proj) pruned one "
        "after another, the layer re-run between them (SparseGPT's --true-sequential); none: all at once.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Layerwise:
        if self.solver is not None and self.statistic is not Statistic.HESSIAN:
            raise ValueError("the SparseGPT solver works on the Hessian: declare statistic=Statistic.HESSIAN")
        if self.n_m is not None and not 0 < self.n_m[0] < self.n_m[1]:
            raise ValueError(f"N:M needs 0 < N < M, got {self.n_m[0]}:{self.n_m[1]}")
        if self.n_m is not None and self.selection != "row":
            raise ValueError("N:M groups lie in rows: declare selection='row' with n_m")
        return self
