"""Which parameters act on a layer's output channels alone: the layer's own bias, and a BatchNorm applied
directly to its output. When a filter is pruned, these entries of its channel go with it (prunebench.masks)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from prunebench.models.cost import COUNTED
from prunebench.models.probe import InputShape, eval_mode, keep_rng, probe_input


def channel_parameters(model: nn.Module, input_shape: InputShape) -> dict[str, list[str]]:
    """By conv/linear module name: the names of the parameters indexed by its output channels (its bias, the
    weight and bias of a BatchNorm whose input is exactly the layer's output), found by one probe pass."""
    names = {id(m): n for n, m in model.named_modules()}
    produced: dict[int, str] = {}
    kept: list[Any] = []  # the outputs stay alive, so that no id is reused during the pass
    follows: dict[str, list[str]] = {}

    def after_layer(module: nn.Module, _args: tuple[Any, ...], out: Any) -> None:
        kept.append(out)
        produced[id(out)] = names[id(module)]

    def before_norm(module: nn.Module, args: tuple[Any, ...]) -> None:
        layer = produced.get(id(args[0])) if args else None
        if layer is not None:
            follows.setdefault(layer, []).extend(
                f"{names[id(module)]}.{p}" for p in ("weight", "bias") if getattr(module, p, None) is not None
            )

    hooks = [m.register_forward_hook(after_layer) for m in model.modules() if isinstance(m, COUNTED)]
    hooks += [m.register_forward_pre_hook(before_norm) for m in model.modules() if isinstance(m, _BatchNorm)]
    device = next(model.parameters()).device
    try:
        with torch.no_grad(), eval_mode(model), keep_rng(device):
            model(probe_input(model, input_shape))
    finally:
        for h in hooks:
            h.remove()
    out: dict[str, list[str]] = {}
    for name, module in model.named_modules():
        if isinstance(module, COUNTED):
            own = [f"{name}.bias"] if getattr(module, "bias", None) is not None else []
            found = own + list(dict.fromkeys(follows.get(name, [])))
            if found:
                out[name] = found
    return out
