"""What a job prunes to: its target. A weight sparsity (the fraction of the prunable weights that are zero, the
unstructured papers' measure), or a reduction of the physically compacted model's cost, dense over pruned (the
structured papers' measure: "2x FLOPs"): of its FLOPs (conv and linear multiply-accumulates per example) or of its
parameters. The runner counts every kind from the final model; a method only aims at it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

TargetKind = Literal["sparsity", "flops_reduction", "params_reduction"]
CostKind = Literal["flops_reduction", "params_reduction"]
COST_KINDS: tuple[CostKind, ...] = ("flops_reduction", "params_reduction")


@dataclass(frozen=True)
class Target:
    """`kind` and `value`: a sparsity in (0, 1), or a reduction factor above 1 (dense cost / pruned cost)."""

    kind: TargetKind
    value: float

    @property
    def is_cost(self) -> bool:
        return self.kind in COST_KINDS

    def label(self) -> str:
        """How boards and messages name it: `sparsity 0.9`, `FLOPs 2x`, `params 3.5x`."""
        if self.kind == "sparsity":
            return f"sparsity {self.value:g}"
        return f"{'FLOPs' if self.kind == 'flops_reduction' else 'params'} {self.value:g}x"
