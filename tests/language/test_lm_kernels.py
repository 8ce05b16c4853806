"""Magnitude and Wanda on one layer equal the references' code, restated here step by step (not imported) from
locuslab/wanda 8e8fc87 (`lib/prune.py` `prune_magnitude`, `prune_wanda`; `lib/layerwrapper.py` `WrappedGPT`), on the
weights of a tiny random LLaMA's first decoder layer and the inputs its linear layers see on seeded calibration
windows (conftest's `captured`)."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from prunebench.language import InputStats, magnitude_mask, sparsegpt_prune, wanda_mask


def reference_scaler_row(batches: list[Tensor], columns: int) -> Tensor:
    """`WrappedGPT.add_batch`: a 2-D input gains a batch dim; N counts its first dim; the running value is scaled by
    N_old / N_new, then the float32 squared L2 norm of each feature over the batch's tokens, over N_new, is added."""
    scaler_row, nsamples = torch.zeros(columns), 0
    for inp in batches:
        inp = inp.unsqueeze(0) if inp.dim() == 2 else inp
        tmp = inp.shape[0]
        inp = inp.reshape(-1, inp.shape[-1]).t()
        scaler_row *= nsamples / (nsamples + tmp)
        nsamples += tmp
        scaler_row += torch.norm(inp.type(torch.float32), p=2, dim=1) ** 2 / nsamples
    return scaler_row


def test_input_stats_are_wandas(captured, batches) -> None:
    for weight, inputs in captured.values():
        stats = InputStats(weight.shape[1])
        for batch in batches(inputs):
            stats.add_batch(batch)
        assert stats.nsamples == 8
        assert torch.equal(stats.sq_norm, reference_scaler_row(batches(inputs), weight.shape[1]))


def reference_n_m(metric: Tensor, n: int, m: int) -> Tensor:
    """Both N:M branches of `prune_magnitude` and `prune_wanda`: at every column ii with ii % m == 0, the n lowest of
    the float scores in columns ii .. ii+m-1 of each row are marked (True: pruned)."""
    W_mask = torch.zeros_like(metric) == 1
    for ii in range(metric.shape[1]):
        if ii % m == 0:
            tmp = metric[:, ii : (ii + m)].float()
            W_mask.scatter_(1, ii + torch.topk(tmp, n, dim=1, largest=False)[1], True)
    return W_mask


def reference_wanda(W: Tensor, scaler_row: Tensor, sparsity: float, n: int = 0, m: int = 0) -> Tensor:
    """`prune_wanda`: metric |W| * sqrt(scaler_row) per column; N:M as above, else a stable sort of each row and its
    first int(in * sparsity) indices marked (True: pruned)."""
    W_metric = torch.abs(W) * torch.sqrt(scaler_row.reshape((1, -1)))
    if n != 0:
        return reference_n_m(W_metric, n, m)
    W_mask = torch.zeros_like(W_metric) == 1
    W_mask.scatter_(1, torch.sort(W_metric, dim=-1, stable=True)[1][:, : int(W_metric.shape[1] * sparsity)], True)
    return W_mask


def reference_magnitude(W: Tensor, sparsity: float, n: int = 0, m: int = 0) -> Tensor:
    """`prune_magnitude`: |W|; N:M as above, else |W| at or below the sorted |W|'s entry at int(numel * sparsity)."""
    W_metric = torch.abs(W)
    if n != 0:
        return reference_n_m(W_metric, n, m)
    return W_metric <= torch.sort(W_metric.flatten())[0][int(W.numel() * sparsity)]


@pytest.mark.parametrize(("sparsity", "n_m"), [(0.5, None), (0.5, (2, 4)), (0.5, (4, 8)), (0.7, None)])
def test_wanda_and_magnitude_masks_are_the_references(captured, sparsity, n_m) -> None:
    n, m = n_m or (0, 0)
    for weight, inputs in captured.values():
        scaler_row = reference_scaler_row(inputs, weight.shape[1])
        keep = wanda_mask(weight, scaler_row, sparsity, n_m)
        assert torch.equal(~keep, reference_wanda(weight, scaler_row, sparsity, n, m))
        assert int((~keep).sum()) == weight.shape[0] * int(weight.shape[1] * sparsity)
        assert torch.equal(~magnitude_mask(weight, sparsity, n_m=n_m), reference_magnitude(weight, sparsity, n, m))
        assert torch.equal(
            ~magnitude_mask(weight, sparsity, per_row=True, n_m=n_m),
            reference_wanda(weight, torch.ones(weight.shape[1]), sparsity, n, m),
        )


def test_bad_layers_are_one_clear_sentence() -> None:
    W = torch.randn(4, 12)
    with pytest.raises(ValueError, match="N:M 2:8 needs the layer's input size 12 to be a multiple of 8"):
        wanda_mask(W, torch.ones(12), 0.25, (2, 8))
    with pytest.raises(ValueError, match=r"sparsity 1.0 is outside \[0, 1\)"):
        magnitude_mask(W, 1.0)
    with pytest.raises(ValueError, match=r"sparsity -0.1 is outside \[0, 1\)"):
        sparsegpt_prune(W, torch.eye(12), -0.1)
    with pytest.raises(ValueError, match=r"N:M 2:4 prunes 0\.5 of every row, not the sparsity 0\.6"):
        sparsegpt_prune(W, torch.eye(12), 0.6, (2, 4))
    with pytest.raises(ValueError, match="the Hessian has shape"):
        sparsegpt_prune(W, torch.eye(8), 0.5)
    assert magnitude_mask(W, 0.0).all() and sparsegpt_prune(W, torch.eye(12), 0.0).keep.all()
