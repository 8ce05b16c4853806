"""SparseGPT on one layer equals the reference's code, restated here step by step (not imported) from
IST-DASLab/sparsegpt 147d215 `sparsegpt.py` (`SparseGPT.add_batch`, `SparseGPT.fasterprune`; the same in
locuslab/wanda's `lib/sparsegpt.py`), on the weights of a tiny random LLaMA's first decoder layer and the inputs its
linear layers see on seeded calibration windows (conftest's `captured`)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from prunebench.language import Hessian, sparsegpt_prune


def reference_hessian(batches: list[Tensor], columns: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """`SparseGPT.add_batch`: the same count and rescaling; the features scaled by sqrt(2 / N_new) and x x^T added."""
    H, nsamples = torch.zeros(columns, columns, dtype=dtype), 0
    for inp in batches:
        inp = inp.unsqueeze(0) if inp.dim() == 2 else inp
        tmp = inp.shape[0]
        inp = inp.reshape(-1, inp.shape[-1]).t()
        H *= nsamples / (nsamples + tmp)
        nsamples += tmp
        inp = math.sqrt(2 / nsamples) * inp.to(dtype)
        H += inp.matmul(inp.t())
    return H


def test_hessian_is_sparsegpts(captured, batches) -> None:
    for weight, inputs in captured.values():
        hessian = Hessian(weight.shape[1])
        for batch in batches(inputs):
            hessian.add_batch(batch)
        assert hessian.nsamples == 8
        assert torch.equal(hessian.matrix, reference_hessian(batches(inputs), weight.shape[1]))


def reference_fasterprune(W: Tensor, H: Tensor, sparsity: float, prunen: int = 0, prunem: int = 0) -> Tensor:
    """`SparseGPT.fasterprune` (blocksize 128, percdamp 0.01), in the dtype of W and H as given: dead inputs (zero
    diagonal) get H_jj = 1 and W_:j = 0; damp = 0.01 * mean diag; Hinv = upper Cholesky of the inverse (through
    `cholesky_inverse` of the lower factor). Per block of 128 columns: unstructured, the mask is the block's
    W^2 / diag(Hinv1)^2 at or below its sorted entry at int(numel * sparsity); then column by column, N:M groups
    marked at i % m == 0 from the updated block, the column's marked weights zeroed into Q1, err = (w - q) / d
    subtracted times Hinv1's row i from the block's columns i.., and after the block, Err1 @ Hinv's off-block part
    from all later columns; W's block becomes Q1."""
    W, H = W.clone(), H.clone()
    columns, blocksize = W.shape[1], 128
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    diag = torch.arange(columns)
    H[diag, diag] += 0.01 * torch.mean(torch.diag(H))
    Hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True)
    for i1 in range(0, columns, blocksize):
        i2 = min(i1 + blocksize, columns)
        W1, Hinv1 = W[:, i1:i2].clone(), Hinv[i1:i2, i1:i2]
        Q1, Err1 = torch.zeros_like(W1), torch.zeros_like(W1)
        if prunen == 0:
            tmp = W1**2 / (torch.diag(Hinv1).reshape((1, -1))) ** 2
            mask1 = tmp <= torch.sort(tmp.flatten())[0][int(tmp.numel() * sparsity)]
        else:
            mask1 = torch.zeros_like(W1) == 1
        for i in range(i2 - i1):
            w, d = W1[:, i], Hinv1[i, i]
            if prunen != 0 and i % prunem == 0:
                tmp = W1[:, i : (i + prunem)] ** 2 / (torch.diag(Hinv1)[i : (i + prunem)].reshape((1, -1))) ** 2
                mask1.scatter_(1, i + torch.topk(tmp, prunen, dim=1, largest=False)[1], True)
            q = w.clone()
            q[mask1[:, i]] = 0
            Q1[:, i] = q
            err1 = (w - q) / d
            W1[:, i:] -= err1.unsqueeze(1).matmul(Hinv1[i, i:].unsqueeze(0))
            Err1[:, i] = err1
        W[:, i1:i2] = Q1
        W[:, i2:] -= Err1.matmul(Hinv[i1:i2, i2:])
    return W


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(("sparsity", "n_m"), [(0.5, None), (0.5, (2, 4)), (0.5, (4, 8))])
def test_sparsegpt_is_the_references(captured, dtype, sparsity, n_m) -> None:
    n, m = n_m or (0, 0)
    for name, (weight, inputs) in captured.items():
        H = reference_hessian(inputs, weight.shape[1], dtype)
        expected = reference_fasterprune(weight.to(dtype), H, sparsity, n, m)
        result = sparsegpt_prune(weight.to(dtype), H, sparsity, n_m)
        tolerance = 1e-12 if dtype == torch.float64 else 1e-5
        assert (result.weight - expected).abs().max() <= tolerance, name
        assert torch.equal(~result.keep, expected == 0), name
        assert torch.equal(result.weight[~result.keep], torch.zeros(int((~result.keep).sum()), dtype=dtype))


def test_sparsegpt_dead_inputs_and_dtype() -> None:
    """Inputs that are always zero: their weights are pruned first; a float16 weight is pruned in float32."""
    generator = torch.Generator().manual_seed(1)
    W = torch.randn(16, 256, generator=generator)
    X = torch.randn(4, 96, 256, generator=generator)
    X[..., :5] = 0
    H = reference_hessian(list(X[:, None]), 256)
    expected = reference_fasterprune(W, H, 0.5)
    result = sparsegpt_prune(W, H, 0.5)
    assert (result.weight - expected).abs().max() <= 1e-5 and not result.keep[:, :5].any()
    half = sparsegpt_prune(W.half(), H, 0.5)
    expected = reference_fasterprune(W.half().float(), H, 0.5).half()  # the reference's W.float(), then W's dtype
    assert half.weight.dtype == torch.float16 and torch.equal(~half.keep, expected == 0)
    assert (half.weight.float() - expected.float()).abs().max() <= 2e-3
