"""One-shot pruning of one linear layer's weight W (out_features x in_features, as `nn.Linear` holds it; a GPT-2
`Conv1D` weight is transposed first), as the language-model references do it. Masks are keep-masks (True where a
weight stays): the complement of the references' `W_mask`.

- `magnitude_mask`: |W|, locuslab/wanda `lib/prune.py` `prune_magnitude`. Per layer (`per_row=False`): the
  threshold is the sorted scores' entry at int(numel * sparsity) and every score at or below it is pruned, so
  int(numel * sparsity) + 1 weights or more, as there (and as IST-DASLab/sparsegpt `llama.py`'s `--gmp`). Per row
  (`per_row=True`): Wanda's comparison group, each row's int(in * sparsity) lowest.
- `wanda_mask`: Wanda (Sun et al. 2024, ICLR), `prune_wanda`: score = |W_ij| * sqrt(s_j), s the input's squared
  norm per input column (`InputStats`, prunebench.language.accumulators); each output row loses its
  int(in * sparsity) lowest scores (a stable sort, ties to the lower index).
- N:M (`n_m=(n, m)`, every mask function): in each group of m consecutive input columns of a row, the n lowest
  scores are pruned (`torch.topk(largest=False)`). It needs m to divide the input size (the references let the
  last group run short) and sparsity n/m (Wanda asserts 0.5 for 2:4 and 4:8).
- `sparsegpt_prune`: SparseGPT (Frantar & Alistarh 2023, ICML), IST-DASLab/sparsegpt `sparsegpt.py`
  `SparseGPT.fasterprune` (the same in Wanda's `lib/sparsegpt.py`), on the Hessian H = 2/N sum x x^T of the
  layer's inputs (`Hessian`). Inputs never seen (H_jj = 0) get H_jj = 1 and their weights 0; H is damped by
  `percdamp` times its mean diagonal; U = the upper Cholesky factor of H^-1. Column blocks of `blocksize` are
  pruned left to right, each mask chosen when the sweep reaches it, from the weights updated so far, by the scores
  w^2 / U_jj^2: unstructured, a block's scores at or below its sorted scores' entry at int(numel * sparsity); N:M,
  each group's n lowest. Every column's pruned weights are zeroed, the error (w - q) / U_jj is spread over the
  block's later columns through U's row (the OBS update), and a block's errors over all later columns at once.
  The arithmetic is in float32 (float64 if W or H is), the result in W's dtype. The reference turns TF32 off
  (`torch.backends.cuda.matmul.allow_tf32 = False`, torch's default); a caller that turned it on should too.

Sparsity 0 prunes nothing (the references never prune at 0).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

NM = tuple[int, int]


def check_layer(W: Tensor, sparsity: float, n_m: NM | None) -> None:
    """A 2-D weight, a sparsity in [0, 1), and an N:M pattern that fits the layer and the sparsity."""
    if W.dim() != 2:
        raise ValueError(f"a layer's weight must be 2-D (out x in), got shape {tuple(W.shape)}")
    if not 0 <= sparsity < 1:
        raise ValueError(f"sparsity {sparsity} is outside [0, 1)")
    if n_m is None:
        return
    n, m = n_m
    if not 0 < n < m:
        raise ValueError(f"N:M needs 0 < N < M, got {n}:{m}")
    if W.shape[1] % m:
        raise ValueError(f"N:M {n}:{m} needs the layer's input size {W.shape[1]} to be a multiple of {m}")
    if not math.isclose(sparsity, n / m):
        raise ValueError(f"N:M {n}:{m} prunes {n / m:g} of every row, not the sparsity {sparsity}")


def score_dtype(*tensors: Tensor) -> torch.dtype:
    """float32, or float64 if any tensor is (half-precision scores are computed in float32, as the references)."""
    dtype = torch.float32
    for t in tensors:
        dtype = torch.promote_types(dtype, t.dtype)
    return dtype


def n_m_pruned(scores: Tensor, n: int, m: int) -> Tensor:
    """The n lowest scores of every m consecutive columns of each row (True: pruned)."""
    groups = scores.reshape(scores.shape[0], -1, m)
    lowest = torch.topk(groups, n, dim=-1, largest=False).indices
    return torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, lowest, True).reshape(scores.shape)


def row_pruned(scores: Tensor, sparsity: float) -> Tensor:
    """The int(in * sparsity) lowest scores of each row, ties to the lower index (True: pruned)."""
    lowest = torch.sort(scores, dim=-1, stable=True).indices[:, : int(scores.shape[1] * sparsity)]
    return torch.zeros_like(scores, dtype=torch.bool).scatter_(1, lowest, True)


def threshold_pruned(scores: Tensor, sparsity: float) -> Tensor:
    """Every score at or below the sorted scores' entry at int(numel * sparsity) (True: pruned)."""
    if sparsity == 0:
        return torch.zeros_like(scores, dtype=torch.bool)
    return scores <= torch.sort(scores.flatten()).values[int(scores.numel() * sparsity)]


def magnitude_mask(W: Tensor, sparsity: float, per_row: bool = False, n_m: NM | None = None) -> Tensor:
    """Keep-mask of |W|: per layer by the references' threshold, per row, or N:M."""
    check_layer(W, sparsity, n_m)
    scores = W.detach().abs().to(score_dtype(W))
    if n_m is not None:
        return ~n_m_pruned(scores, *n_m)
    return ~(row_pruned(scores, sparsity) if per_row else threshold_pruned(scores, sparsity))


def wanda_mask(W: Tensor, input_sq_norm: Tensor, sparsity: float, n_m: NM | None = None) -> Tensor:
    """Keep-mask of Wanda's |W| * sqrt(squared input norm per column), per output row or N:M."""
    check_layer(W, sparsity, n_m)
    if input_sq_norm.shape != (W.shape[1],):
        raise ValueError(f"the input norms have shape {tuple(input_sq_norm.shape)}, the layer {W.shape[1]} inputs")
    dtype = score_dtype(W, input_sq_norm)
    scores = W.detach().abs().to(dtype) * input_sq_norm.to(W.device, dtype).sqrt().reshape(1, -1)
    return ~(n_m_pruned(scores, *n_m) if n_m is not None else row_pruned(scores, sparsity))


class SparseGPTResult(NamedTuple):
    """The updated weight (W's dtype), its keep-mask, and the reference's reported error (sum of the pruned
    columns' (w - q)^2 / U_jj^2, halved)."""

    weight: Tensor
    keep: Tensor
    error: float


@torch.no_grad()
def sparsegpt_prune(
    W: Tensor, H: Tensor, sparsity: float, n_m: NM | None = None, blocksize: int = 128, percdamp: float = 0.01
) -> SparseGPTResult:
    """SparseGPT's `fasterprune` of W on its inputs' Hessian H (in x in); neither is modified."""
    check_layer(W, sparsity, n_m)
    rows, columns = W.shape
    if H.shape != (columns, columns):
        raise ValueError(f"the Hessian has shape {tuple(H.shape)}, the layer {columns} inputs")
    if n_m is not None and blocksize % n_m[1]:
        raise ValueError(f"blocksize {blocksize} must be a multiple of M={n_m[1]} for N:M")
    if sparsity == 0:
        return SparseGPTResult(W.detach().clone(), torch.ones_like(W, dtype=torch.bool), 0.0)
    dtype = score_dtype(W, H)
    W1 = W.detach().to(dtype).clone()
    H1 = H.detach().to(W.device, dtype).clone()
    dead = H1.diagonal() == 0
    H1.diagonal()[dead] = 1
    W1[:, dead] = 0
    H1.diagonal().add_(percdamp * H1.diagonal().mean())
    U = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H1)), upper=True)
    pruned = torch.zeros_like(W1, dtype=torch.bool)
    error = torch.zeros(rows, dtype=dtype, device=W.device)
    for start in range(0, columns, blocksize):
        stop = min(start + blocksize, columns)
        block, U1 = W1[:, start:stop].clone(), U[start:stop, start:stop]
        d = U1.diagonal()
        errors = torch.zeros_like(block)
        mask = pruned[:, start:stop]
        if n_m is None:
            mask |= threshold_pruned(block**2 / d.reshape(1, -1) ** 2, sparsity)
        for i in range(stop - start):
            if n_m is not None and i % n_m[1] == 0:
                group = slice(i, i + n_m[1])
                mask[:, group] = n_m_pruned(block[:, group] ** 2 / d[group].reshape(1, -1) ** 2, *n_m)
            w = block[:, i].clone()
            q = torch.where(mask[:, i], torch.zeros_like(w), w)
            error += (w - q) ** 2 / d[i] ** 2 / 2
            errors[:, i] = (w - q) / d[i]
            block[:, i:] -= errors[:, i : i + 1] @ U1[i : i + 1, i:]
            block[:, i] = q
        W1[:, start:stop] = block
        W1[:, stop:] -= errors @ U[start:stop, stop:]
    return SparseGPTResult(W1.to(W.dtype), ~pruned, float(error.sum()))
