"""A causal LM's decoder layers as the layer-by-layer references handle them (locuslab/wanda 8e8fc87 `lib/prune.py`
`prepare_calibration_input`; IST-DASLab/sparsegpt 147d215 `llama.py` `llama_sequential`, `llama_eval`).

- `decoder_layers`: the list of decoder layers and its name (LLaMA's `model.layers`).
- `catch_inputs`: the references' Catcher. They swap the first layer for a module that stores its input and the
  keywords and raises, and call the model on each calibration window alone, cache off. Here a forward pre-hook
  with keywords does the same, so every keyword the model passes its layers is kept (in transformers 4.57
  `position_embeddings`, which the layers need, `attention_mask`, which may be None, `position_ids`,
  `cache_position`; the references keep `attention_mask`, Wanda also `position_ids`). Only the layer list's
  siblings (embeddings, rotary, final norm) visit the device meanwhile, as SparseGPT moves its embeddings.
- `run`: a layer on each window's hidden states, one window at a time (`layer(inps[j].unsqueeze(0))[0]`).
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import Tensor, nn


class _Caught(Exception):
    """Stops the model's forward at the first decoder layer."""


def decoder_layers(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """The model's first non-empty `nn.ModuleList` and its name (LLaMA's `model.layers`, OPT's
    `model.decoder.layers`)."""
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module):
            return name, module
    raise ValueError("the model has no decoder layers (no nn.ModuleList)")


def catch_inputs(
    model: nn.Module, path: str, windows: Tensor, device: torch.device, dtype: torch.dtype, where: torch.device
) -> tuple[Tensor, dict[str, Any]]:
    """The first decoder layer's input on each window, (nsamples, seqlen, hidden) in `dtype` on `where`, and the
    keywords it is called with; the layer list's siblings (embeddings, rotary) visit `device` meanwhile."""
    layers, parent = model.get_submodule(path), model.get_submodule(path.rpartition(".")[0])
    homes = {m: next((t.device for t in [*m.parameters(), *m.buffers()]), None) for m in parent.children()}
    caught: list[Tensor] = []
    kwargs: dict[str, Any] = {}

    def catch(_module: nn.Module, args: tuple[Any, ...], kw: dict[str, Any]) -> None:
        caught.append((args[0] if args else kw.pop("hidden_states")).to(where, dtype))
        kwargs.update(kw)
        raise _Caught

    for module in homes:
        if module is not layers:
            module.to(device)
    handle = layers[0].register_forward_pre_hook(catch, with_kwargs=True)
    try:
        for window in windows:
            with contextlib.suppress(_Caught):
                model(window[None].to(device), use_cache=False)
    finally:
        handle.remove()
        for module, home in homes.items():
            if module is not layers and home is not None:
                module.to(home)
    return torch.cat(caught), kwargs


def run(layer: nn.Module, inputs: Tensor, outputs: Tensor | None, kwargs: dict[str, Any], device: Any) -> None:
    """The layer on each window, one at a time (its inputs cast to its dtype); the outputs kept if asked."""
    dtype = next(layer.parameters()).dtype
    for j in range(inputs.shape[0]):
        out = layer(inputs[j : j + 1].to(device, dtype), **kwargs)
        if outputs is not None:
            outputs[j] = (out[0] if isinstance(out, tuple) else out)[0]
