"""What one-shot pruning gathers of a linear layer's inputs over the calibration samples, batch after batch, as the
references gather it in a forward hook on the layer (its input `x`: (batch, tokens, in_features), or (tokens,
in_features) for one sample).

Both count samples, not tokens: a batch adds its first dimension to N, and the running value is rescaled by
N_old / N_new before the batch's share is added, so that after all batches it is a mean over the N samples of each
sample's sum over its tokens. The references feed one sample per batch.

- `InputStats`: Wanda's `scaler_row` (locuslab/wanda `lib/layerwrapper.py`, `WrappedGPT.add_batch`), per input
  column j, s_j = 1/N * sum over all tokens of x_j^2, the squared norm whose square root `wanda_mask` multiplies
  |W_ij| by (the 1/N scales every score of a row alike).
- `Hessian`: SparseGPT's H (IST-DASLab/sparsegpt `sparsegpt.py`, `SparseGPT.add_batch`), H = 2/N * sum over all
  tokens of x x^T, accumulated as the reference does: x scaled by sqrt(2 / N_new) and x x^T added.

Both keep float32 (the references' zeros of the default dtype; inputs are turned to it), or `dtype`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def as_columns(x: Tensor, columns: int) -> tuple[int, Tensor]:
    """The batch's sample count and its inputs as (in_features, tokens of all samples)."""
    if x.shape[-1] != columns:
        raise ValueError(f"the layer's input has {x.shape[-1]} features, the accumulator {columns}")
    batch = x.unsqueeze(0) if x.dim() == 2 else x
    return batch.shape[0], batch.reshape(-1, columns).t()


class InputStats:
    """Wanda's running squared norm of each input column, `sq_norm` (in_features,)."""

    def __init__(self, columns: int, *, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32):
        self.sq_norm = torch.zeros(columns, device=device, dtype=dtype)
        self.nsamples = 0

    @torch.no_grad()
    def add_batch(self, x: Tensor) -> None:
        count, inputs = as_columns(x, self.sq_norm.shape[0])
        self.sq_norm *= self.nsamples / (self.nsamples + count)
        self.nsamples += count
        self.sq_norm += torch.norm(inputs.to(self.sq_norm), p=2, dim=1) ** 2 / self.nsamples


class Hessian:
    """SparseGPT's running H = 2/N sum x x^T of the layer's inputs, `matrix` (in_features x in_features)."""

    def __init__(self, columns: int, *, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32):
        self.matrix = torch.zeros(columns, columns, device=device, dtype=dtype)
        self.nsamples = 0

    @torch.no_grad()
    def add_batch(self, x: Tensor) -> None:
        count, inputs = as_columns(x, self.matrix.shape[0])
        self.matrix *= self.nsamples / (self.nsamples + count)
        self.nsamples += count
        scaled = math.sqrt(2 / self.nsamples) * inputs.to(self.matrix)
        self.matrix += scaled @ scaled.t()
