"""How many weights each layer of a sparse network keeps, at a global sparsity: uniform, or Erdős-Rényi-Kernel (ERK),
the allocation of sparse training from scratch (Evci et al. 2020, "Rigging the Lottery", ICML; Mocanu et al. 2018
for the Erdős-Rényi form), and random masks with exactly those counts."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from prunebench.masks import Masks


def uniform_sparsities(shapes: Mapping[str, tuple[int, ...]], sparsity: float) -> dict[str, float]:
    """Every layer at `sparsity`."""
    return dict.fromkeys(shapes, sparsity)


def erk_sparsities(shapes: Mapping[str, tuple[int, ...]], sparsity: float, *, power: float = 1.0) -> dict[str, float]:
    """ERK: a layer's density proportional to (sum of its dimensions) / (product of its dimensions), to the `power`
    (1: ERK; a kernel's dimensions count, so a 3x3 conv is sparser than a dense layer of its channels), scaled so
    that the layers keep together as many weights as `sparsity` leaves of all of them. A layer whose density would
    exceed 1 is made dense (all the layers of the largest raw density at once) and the others solved again.

    google-research/rigl, `sparse_utils.get_sparsities_erdos_renyi` (include_kernel=True, erk_power_scale=power):
    the same equation, the same dense-layer rule, the same count of a layer's zeros (floor(sparsity * n)). It never
    runs out: a layer is made dense only when the weights left to share exceed it (eps * raw > 1, and the divisor
    holds raw * n of it), so what is left stays positive. What can miss the target is the whole counts of small
    layers: `static_sparse.reach` states them, and a protocol whose tolerance they exceed is refused."""
    sizes = {name: math.prod(shape) for name, shape in shapes.items()}
    raw = {name: (sum(shape) / sizes[name]) ** power for name, shape in shapes.items()}
    dense: set[str] = set()
    while True:
        rhs = 0.0
        divisor = 0.0
        for name, n in sizes.items():
            zeros = math.floor(sparsity * n)
            if name in dense:
                rhs -= zeros
            else:
                rhs += n - zeros
                divisor += raw[name] * n
        if divisor == 0:  # every layer dense: no sparsity left to give
            return dict.fromkeys(shapes, 0.0)
        eps = rhs / divisor
        largest = max(raw[name] for name in sizes if name not in dense)
        if eps * largest <= 1:
            break
        dense |= {name for name in sizes if name not in dense and raw[name] == largest}
    return {name: 0.0 if name in dense else 1.0 - eps * raw[name] for name in shapes}


def random_masks(
    shapes: Mapping[str, tuple[int, ...]], sparsities: Mapping[str, float], generator: torch.Generator
) -> Masks:
    """Keep-masks with exactly floor(sparsity * n) zeros in each layer, at positions drawn from `generator`."""
    masks = {}
    for name, shape in shapes.items():
        n = math.prod(shape)
        zeros = math.floor(max(0.0, sparsities[name]) * n)
        keep = torch.ones(n, dtype=torch.bool)
        keep[torch.randperm(n, generator=generator)[:zeros]] = False
        masks[name] = keep.reshape(shape)
    return masks
