"""The runner's measurement of what a job's zeros leave connected (prunebench.connectivity): each prunable layer's
effective zeros, the effective sparsity, collapsed and cut-off layers, cut blocks and disconnection."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import nn

from prunebench.connectivity import NotPathProduct, blocks_of, connectivity
from prunebench.results import ConnectivityRecord

# What a causal LM computes is no product of weights along paths: attention multiplies activations by activations.
LANGUAGE_MODEL = (
    "a causal language model: attention multiplies activations together (queries by keys, weights by values), so "
    "its outputs are no sums of weight products along paths"
)


@dataclass(frozen=True)
class Connected:
    """`effective_zeros` per prunable weight (None when not computed) and the record of what stays connected."""

    effective_zeros: dict[str, int] | None
    record: ConnectivityRecord

    def effective(self, per_layer: dict[str, tuple[int, int]]) -> float | None:
        """The effective sparsity over the prunable weights `per_layer` ((numel, zeros) each)."""
        if self.effective_zeros is None:
            return None
        return sum(self.effective_zeros.values()) / sum(n for n, _ in per_layer.values())


def measure_connectivity(
    model: nn.Module, per_layer: dict[str, tuple[int, int]], input_shape: Sequence[int], task: str
) -> Connected:
    """What the zeros of `model`'s prunable weights (`per_layer`: (numel, zeros) by parameter name) leave connected,
    on one all-ones input of `input_shape`; not computed for a causal LM (`task`), or a network that is no path
    product (the record says why)."""
    collapsed = [n for n, (numel, zeros) in per_layer.items() if zeros == numel]
    why = LANGUAGE_MODEL if task == "causal_lm" else None
    if why is None:
        try:
            found = connectivity(model, list(per_layer), input_shape)
        except NotPathProduct as exc:
            why = str(exc)
    if why is not None:
        return Connected(None, ConnectivityRecord(collapsed=collapsed, not_computed=why))
    effective = {n: int(e.sum()) for n, e in found.effective.items()}
    cut_off = [n for n, (numel, zeros) in per_layer.items() if zeros < numel and effective[n] == 0]
    blocks = blocks_of(per_layer)
    cut_blocks = [] if found.disconnected else sorted({blocks[n] or "(model)" for n in per_layer if effective[n] == 0})
    return Connected(
        {n: numel - effective[n] for n, (numel, _) in per_layer.items()},
        ConnectivityRecord(
            collapsed=collapsed, cut_off=cut_off, cut_blocks=cut_blocks, disconnected=found.disconnected
        ),
    )
