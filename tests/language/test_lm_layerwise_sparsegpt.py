"""SparseGPT through prunebench.language.layerwise equals IST-DASLab/sparsegpt 147d215 `llama.py` `llama_sequential`,
restated here step by step (not imported), with and without `--true-sequential`, on the tiny random GQA LLaMA of
conftest; its per-layer pieces (`SparseGPT.add_batch`, `fasterprune`) are test_lm_sparsegpt's restatements, its
Catcher test_lm_layerwise's."""

from __future__ import annotations

import copy

import pytest
import torch
from test_lm_layerwise import reference_catch, reference_pass
from test_lm_sparsegpt import reference_fasterprune, reference_hessian
from torch import Tensor, nn

from prunebench.language import (
    SPARSEGPT_LLAMA_SEQUENTIAL,
    Hessian,
    Statistic,
    layerwise,
    sparsegpt_prune,
    wikitext2_calibration,
)


@torch.no_grad()
def reference_llama_sequential(
    model: nn.Module, windows: Tensor, sparsity: float, prunen: int = 0, prunem: int = 0, true_sequential: bool = False
) -> None:
    """`llama_sequential`: catch; per layer, `find_layers`, and its groups (`--true-sequential`: k, v, q; o; up,
    gate; down; else one group of all): hooks on the group's linears, the layer run on every window
    (`outs[j] = layer(inps[j].unsqueeze(0))[0]`), each linear's `fasterprune` (blocksize 128, percdamp 0.01) on
    its Hessian, written to its weight; after the groups the pruned layer run again, `inps, outs = outs, inps`."""
    inps, outs, kwargs = reference_catch(model, windows)
    for layer in model.model.layers:
        full = {name: mod for name, mod in layer.named_modules() if isinstance(mod, nn.Linear)}
        sequential = [list(group) for group in SPARSEGPT_LLAMA_SEQUENTIAL] if true_sequential else [list(full)]
        assert sorted(name for group in sequential for name in group) == sorted(full)
        for names in sequential:
            subset = {n: full[n] for n in names}
            seen = reference_pass(layer, subset, inps, outs, kwargs)
            for name, linear in subset.items():
                H = reference_hessian(seen[name], linear.in_features)
                linear.weight.data = reference_fasterprune(linear.weight.data, H, sparsity, prunen, prunem)
        reference_pass(layer, {}, inps, outs, kwargs)
        inps, outs = outs, inps


def sparsegpt(sparsity: float, n_m: tuple[int, int] | None = None):
    def prune(_name: str, weight: Tensor, hessian: Hessian) -> tuple[Tensor, Tensor]:
        return sparsegpt_prune(weight, hessian.matrix, sparsity, n_m)[:2]

    return prune


@pytest.fixture(scope="module")
def windows(encode, lines) -> Tensor:
    return wikitext2_calibration(lines, encode, nsamples=8, seqlen=64, seed=0).inputs


@pytest.mark.parametrize("true_sequential", [False, True])
@pytest.mark.parametrize(("sparsity", "n_m"), [(0.5, None), (0.5, (2, 4))])
def test_sparsegpt_is_llama_sequential(tiny_llama, windows, sparsity, n_m, true_sequential) -> None:
    ours, theirs = copy.deepcopy(tiny_llama), copy.deepcopy(tiny_llama)
    order = SPARSEGPT_LLAMA_SEQUENTIAL if true_sequential else None
    result = layerwise(ours, windows, sparsegpt(sparsity, n_m), Statistic.HESSIAN, sequential=order)
    reference_llama_sequential(theirs, windows, sparsity, *(n_m or (0, 0)), true_sequential=true_sequential)
    assert len(result.masks) == 14 and result.tokens == 8 * 64
    for name, expected in theirs.named_parameters():
        weight = ours.get_parameter(name)
        assert (weight - expected).abs().max() <= 1e-5, name
        if name in result.masks:
            assert torch.equal(result.masks[name], expected != 0), name
    groups = result.layers[1].groups
    assert len(groups) == (4 if true_sequential else 1) and groups[0][0].startswith("model.layers.1.")


def test_a_linear_outside_every_group_is_one_sentence(tiny_llama, windows) -> None:
    with pytest.raises(ValueError, match=r"the prunable linear layers \['model.layers.0.mlp.down_proj.weight'\]"):
        layerwise(
            copy.deepcopy(tiny_llama),
            windows,
            sparsegpt(0.5),
            Statistic.HESSIAN,
            sequential=SPARSEGPT_LLAMA_SEQUENTIAL[:3],
        )
