"""Pruning a whole model layer by layer (prunebench.language.layerwise) equals the references' loops, restated here
step by step (not imported) from locuslab/wanda 8e8fc87 `lib/prune.py` (`prepare_calibration_input`,
`prune_wanda`, `prune_magnitude`), on the tiny random GQA LLaMA of conftest and seeded calibration windows; the
per-layer pieces (`WrappedGPT.add_batch`, the masks) are the restatements of test_lm_kernels."""

from __future__ import annotations

import contextlib
import copy
import math

import pytest
import torch
from test_lm_kernels import reference_magnitude, reference_scaler_row, reference_wanda
from torch import Tensor, nn

from prunebench.language import (
    InputStats,
    Statistic,
    hf_logits,
    layerwise,
    magnitude_mask,
    perplexity,
    wanda_mask,
    wikitext2_calibration,
    wikitext2_ids,
)


@pytest.fixture(scope="module")
def windows(encode, lines) -> Tensor:
    return wikitext2_calibration(lines, encode, nsamples=8, seqlen=64, seed=0).inputs


def reference_catch(model: nn.Module, windows: Tensor) -> tuple[Tensor, Tensor, dict]:
    """`prepare_calibration_input` (and sparsegpt's Catcher): layers[0] is replaced by a module that writes its input
    to `inps[i]`, keeps the keywords and raises ValueError; the model is called on each window alone, cache off;
    `outs` is zeros like `inps`. The references keep `attention_mask` (and `position_ids`); transformers 4.57 also
    passes `position_embeddings`, which its layers need, so every keyword is kept."""
    layers = model.model.layers
    inps = torch.zeros((windows.shape[0], windows.shape[1], model.config.hidden_size))
    cache = {"i": 0, "kwargs": {}}

    class Catcher(nn.Module):
        def __init__(self, module: nn.Module) -> None:
            super().__init__()
            self.module = module

        def forward(self, inp: Tensor, **kwargs) -> None:
            inps[cache["i"]] = inp
            cache["i"] += 1
            cache["kwargs"] = kwargs
            raise ValueError

    layers[0] = Catcher(layers[0])
    for window in windows:
        with contextlib.suppress(ValueError):
            model(window[None], use_cache=False)
    layers[0] = layers[0].module
    return inps, torch.zeros_like(inps), cache["kwargs"]


def reference_pass(layer: nn.Module, subset: dict[str, nn.Module], inps: Tensor, outs: Tensor, kwargs: dict) -> dict:
    """Forward hooks on `subset` keep each linear's `inp[0].data`; `outs[j] = layer(inps[j].unsqueeze(0))[0]` for
    each window j; the hooks are removed. Returns the inputs each linear saw, in order."""
    seen = {name: [] for name in subset}
    handles = [m.register_forward_hook(lambda _m, inp, _o, n=n: seen[n].append(inp[0].data)) for n, m in subset.items()]
    for j in range(inps.shape[0]):
        outs[j] = layer(inps[j].unsqueeze(0), **kwargs)[0]
    for h in handles:
        h.remove()
    return seen


@torch.no_grad()
def reference_prune_wanda(model: nn.Module, windows: Tensor, sparsity: float, n: int = 0, m: int = 0) -> dict:
    """`prune_wanda`: catch; per layer, `find_layers` (every nn.Linear), `WrappedGPT` statistics from one pass over
    the windows, each linear's mask from its `scaler_row`, its weights zeroed there, then the pruned layer run again
    for the next layer's inputs (`inps, outs = outs, inps`). Returns the pruned masks (True: pruned) by name."""
    inps, outs, kwargs = reference_catch(model, windows)
    masks = {}
    for i, layer in enumerate(model.model.layers):
        subset = {name: mod for name, mod in layer.named_modules() if isinstance(mod, nn.Linear)}
        seen = reference_pass(layer, subset, inps, outs, kwargs)
        for name, linear in subset.items():
            W_mask = reference_wanda(
                linear.weight.data, reference_scaler_row(seen[name], linear.in_features), sparsity, n, m
            )
            linear.weight.data[W_mask] = 0
            masks[f"model.layers.{i}.{name}.weight"] = W_mask
        reference_pass(layer, {}, inps, outs, kwargs)
        inps, outs = outs, inps
    return masks


def wanda(sparsity: float, n_m: tuple[int, int] | None = None):
    def prune(_name: str, weight: Tensor, stats: InputStats) -> tuple[Tensor, Tensor]:
        keep = wanda_mask(weight, stats.sq_norm, sparsity, n_m)
        return weight * keep, keep

    return prune


@pytest.mark.parametrize(("sparsity", "n_m"), [(0.5, None), (0.5, (2, 4))])
def test_wanda_is_prune_wanda(tiny_llama, windows, sparsity, n_m) -> None:
    ours, theirs = copy.deepcopy(tiny_llama), copy.deepcopy(tiny_llama)
    result = layerwise(ours, windows, wanda(sparsity, n_m), Statistic.INPUT_STATS)
    expected = reference_prune_wanda(theirs, windows, sparsity, *(n_m or (0, 0)))
    assert result.masks.keys() == expected.keys() and len(expected) == 14
    for name, pruned in expected.items():
        assert torch.equal(result.masks[name], ~pruned), name
    assert all(torch.equal(a, b) for a, b in zip(ours.state_dict().values(), theirs.state_dict().values(), strict=True))
    assert result.tokens == 8 * 64 and [r.index for r in result.layers] == [0, 1]
    assert all(r.kept[name] == 0.5 for r in result.layers for name in r.kept)


def test_magnitude_prunes_each_weight(tiny_llama) -> None:
    """`prune_magnitude`: each linear of each layer by its own |W|, no calibration pass (`Statistic.NONE`)."""
    model = copy.deepcopy(tiny_llama)
    result = layerwise(model, torch.empty(0, 64), lambda _n, w, _s: (w * (keep := magnitude_mask(w, 0.5)), keep))
    assert result.tokens == 0 and len(result.masks) == 14
    for name, weight in tiny_llama.named_parameters():
        if name in result.masks:
            assert torch.equal(~result.masks[name], reference_magnitude(weight, 0.5)), name
            assert torch.equal(model.get_parameter(name), weight * result.masks[name]), name
        else:
            assert torch.equal(model.get_parameter(name), weight), name


def test_wanda_raises_the_perplexity(tiny_llama, windows, encode, lines) -> None:
    model = copy.deepcopy(tiny_llama)
    ids = wikitext2_ids(lines, encode)
    dense = perplexity(hf_logits(model), ids, 64)
    layerwise(model, windows, wanda(0.5), Statistic.INPUT_STATS)
    pruned = perplexity(hf_logits(model), ids, 64)
    assert math.isfinite(pruned) and pruned > dense
