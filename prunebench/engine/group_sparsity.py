"""The engine's side of `GroupSparsity` (prunebench.methods.regularizers): DepGraph's group-level sparsity term
over coupled channel groups, checked against the model when a train call begins and computed at every step.

Fang et al. 2023, "DepGraph: Towards Any Structural Pruning" (CVPR); the reference is Torch-Pruning's
`GroupNormPruner.regularize` (torch_pruning/pruner/algorithms/group_norm_pruner.py, v1.6), which after every
backward pass adds reg * gamma_c * w to the gradient of every weight coupled to channel c, with
gamma_c = alpha_tp ** ((max n - n_c) / (max n - min n)) from the group's norms n (its `alpha_tp` is 2 ** 4: here
`alpha` = 4 is the exponent of 2, DepGraph's notation). Here the same gradient comes from the term
reg / 2 * sum_c gamma_c * n_c ** 2 with gamma taken as a constant (no gradient flows through it); where every
norm of a group is equal, gamma is 1 (Torch-Pruning divides 0 by 0 there).
"""

from __future__ import annotations

import functools
import operator
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from prunebench.methods.regularizers import GroupSparsity


@dataclass(frozen=True)
class _Member:
    module: nn.Module
    attr: str  # the parameter as the module computes with it (so also under a parametrization)
    dim: int
    index: Tensor  # the positions of every channel, in order
    owner: Tensor  # the channel each position belongs to


class GroupSparsityTerm:
    """The term of one declaration on `model`; raises ValueError, naming the group and parameter, for a slice the
    model does not have (no such parameter, a dim it lacks, a position out of range)."""

    def __init__(self, model: nn.Module, declared: GroupSparsity) -> None:
        self.coefficient, self.alpha = declared.coefficient, declared.alpha
        self.groups: list[tuple[int, list[_Member]]] = []
        for g, group in enumerate(declared.groups):
            members = []
            for s in group:
                path, _, attr = s.param.rpartition(".")
                try:
                    module = model.get_submodule(path)
                    value = getattr(module, attr)
                except AttributeError:
                    raise ValueError(f"group_sparsity group {g}: the model has no parameter {s.param}") from None
                flat = [i for pos in s.positions for i in pos]
                if not isinstance(value, Tensor) or value.dim() <= s.dim or (flat and max(flat) >= value.shape[s.dim]):
                    raise ValueError(f"group_sparsity group {g}: {s.param} has no such positions along dim {s.dim}")
                owner = [c for c, pos in enumerate(s.positions) for _ in pos]
                device = value.device
                members.append(_Member(module, attr, s.dim, torch.tensor(flat, device=device), torch.tensor(owner)))
            self.groups.append((len(group[0].positions), members))

    def __call__(self) -> Tensor | None:
        if self.coefficient == 0:
            return None
        terms = []
        for size, members in self.groups:
            squares = functools.reduce(operator.add, (self._squares(m, size) for m in members))
            norms = squares.detach().sqrt()
            spread = norms.max() - norms.min()
            exponent = (norms.max() - norms) / spread if spread > 0 else torch.zeros_like(norms)
            gamma = torch.pow(2.0, self.alpha * exponent)
            terms.append((gamma * squares).sum())
        return self.coefficient / 2 * functools.reduce(operator.add, terms)

    @staticmethod
    def _squares(member: _Member, size: int) -> Tensor:
        """Sum of w^2 over the member's positions, per channel."""
        w = getattr(member.module, member.attr)
        per_index = w.pow(2).transpose(0, member.dim).flatten(1).sum(1) if w.dim() > 1 else w.pow(2)
        out = torch.zeros(size, dtype=per_index.dtype, device=per_index.device)
        return out.index_add(0, member.owner.to(per_index.device), per_index[member.index])
