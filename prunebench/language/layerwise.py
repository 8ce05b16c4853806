"""One-shot pruning of a causal LM decoder layer by decoder layer, as the references' calibration loops do it:
locuslab/wanda 8e8fc87 `lib/prune.py` `prune_wanda` (and its `prune_sparsegpt`, the same loop) and
IST-DASLab/sparsegpt 147d215 `llama.py` `llama_sequential`.

`layerwise(model, windows, prune, statistic)`: the first decoder layer's input on each calibration window is caught
(`decoder.catch_inputs`, the references' Catcher). Then for each decoder layer in order, moved alone to `device`: a
forward hook on each prunable `nn.Linear` feeds its input to a fresh accumulator (`statistic`); the layer runs on
every window, one at a time; `prune(parameter name, weight, accumulator)` gives each linear's new weight and
keep-mask, the weight written in place; the pruned layer runs on the windows again and its outputs are the next
layer's inputs (both references take them from the pruned layer). Magnitude (`Statistic.NONE`) gathers nothing: no
window runs and each weight is pruned by itself, as `prune_magnitude`.

All of a layer's linears see the dense layer's inputs and are pruned together (both references' default), or with
`sequential` (SparseGPT's `--true-sequential`, `SPARSEGPT_LLAMA_SEQUENTIAL`; Wanda's copy has none) group after
group, the layer re-run before each group, so a group's statistics see the earlier groups pruned. The rest differs
without changing the result: Wanda keeps the model on its GPUs (`device_map="auto"`) where SparseGPT moves one
layer at a time to the GPU, as here; both also re-run the last layer, here skipped (its outputs go nowhere).

Activations are two buffers (nsamples, seqlen, hidden), the references' `inps` and `outs` (in the model's dtype, on
the GPU), here in `dtype` on `activations_device` (default: `device`). The result: the keep-masks by parameter name
(on each layer's own device), the calibration tokens run through the model (0 for magnitude), a record per layer.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor, nn

from prunebench.language.accumulators import Hessian, InputStats
from prunebench.language.decoder import catch_inputs, decoder_layers, run

SPARSEGPT_LLAMA_SEQUENTIAL = (
    ("self_attn.k_proj", "self_attn.v_proj", "self_attn.q_proj"),
    ("self_attn.o_proj",),
    ("mlp.up_proj", "mlp.gate_proj"),
    ("mlp.down_proj",),
)


class Accumulator(Protocol):
    """What gathers a linear layer's inputs, batch after batch (`InputStats`, `Hessian`)."""

    nsamples: int

    def add_batch(self, x: Tensor) -> None: ...


class Statistic(enum.Enum):
    """What a method gathers of each linear's inputs: magnitude nothing, Wanda `InputStats`, SparseGPT `Hessian`."""

    NONE = "none"
    INPUT_STATS = "input_stats"
    HESSIAN = "hessian"

    def accumulator(self, columns: int, device: torch.device) -> Accumulator | None:
        """A fresh, float32 accumulator on `device` for a layer of `columns` inputs (None for NONE)."""
        if self is Statistic.NONE:
            return None
        return (InputStats if self is Statistic.INPUT_STATS else Hessian)(columns, device=device)


Prune = Callable[[str, Tensor, Accumulator | None], tuple[Tensor, Tensor]]


@dataclass
class LayerRecord:
    """One decoder layer: the parameter names pruned, group by group; each one's fraction kept; the seconds."""

    index: int
    groups: list[list[str]]
    kept: dict[str, float]
    seconds: float


@dataclass
class Layerwise:
    """The keep-masks by parameter name, the calibration tokens run through the model, and a record per layer."""

    masks: dict[str, Tensor]
    tokens: int
    layers: list[LayerRecord]


def feed(linear: nn.Module, accumulator: Accumulator) -> torch.utils.hooks.RemovableHandle:
    """A forward hook giving the linear's input to the accumulator (the references' `add_batch(inp[0].data)`)."""
    return linear.register_forward_hook(lambda _module, x, _y: accumulator.add_batch(x[0].data))


def plan(linears: Sequence[str], sequential: Sequence[Sequence[str]] | None, prefix: str) -> list[list[str]]:
    """The groups of parameter names pruned together: all at once, or `sequential`'s groups of the block's names."""
    if sequential is None:
        return [list(linears)] if linears else []
    named = [[f"{prefix}{n}.weight" for n in names if f"{prefix}{n}.weight" in linears] for names in sequential]
    missing = set(linears) - {p for group in named for p in group}
    if missing:
        raise ValueError(f"the prunable linear layers {sorted(missing)} are in no group of `sequential`")
    return [group for group in named if group]


@torch.no_grad()
def layerwise(
    model: nn.Module,
    windows: Tensor,
    prune: Prune,
    statistic: Statistic = Statistic.NONE,
    *,
    prunable: Callable[[str], bool] | None = None,
    sequential: Sequence[Sequence[str]] | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    activations_device: torch.device | str | None = None,
) -> Layerwise:
    """Prune every prunable linear (`prunable(parameter name)`; default every `nn.Linear` of a decoder layer) of
    the model's decoder layers in order, on the calibration `windows` (nsamples, seqlen) token ids."""
    path, layers = decoder_layers(model)
    first = next(layers[0].parameters())
    device = torch.device(device) if device is not None else first.device
    where = torch.device(activations_device) if activations_device is not None else device
    gather = statistic is not Statistic.NONE
    if gather and (windows.dim() != 2 or not windows.numel()):
        raise ValueError(f"the calibration windows must be (nsamples, seqlen) token ids, got {tuple(windows.shape)}")
    if gather:
        inputs, kwargs = catch_inputs(model, path, windows, device, dtype or first.dtype, where)
        outputs = torch.empty_like(inputs)
    masks: dict[str, Tensor] = {}
    records = []
    for i, layer in enumerate(layers):
        start, home, prefix = time.perf_counter(), next(layer.parameters()).device, f"{path}.{i}."
        layer.to(device)
        found = {f"{prefix}{n}.weight": m for n, m in layer.named_modules() if isinstance(m, nn.Linear)}
        linears = {p: m for p, m in found.items() if prunable is None or prunable(p)}
        groups, kept = plan(list(linears), sequential, prefix), {}
        for group in groups:
            stats = {p: statistic.accumulator(linears[p].in_features, device) for p in group}
            hooks = [feed(linears[p], a) for p, a in stats.items() if a is not None]
            try:
                if gather:
                    run(layer, inputs, None, kwargs, device)
            finally:
                for hook in hooks:
                    hook.remove()
            for p in group:
                weight = linears[p].weight
                new, keep = prune(p, weight.data, stats[p])
                if new.shape != weight.shape or keep.shape != weight.shape or keep.dtype != torch.bool:
                    raise ValueError(f"prune({p!r}) must give a weight and a bool keep-mask of shape {weight.shape}")
                weight.data.copy_(new)
                masks[p], kept[p] = keep.to(home), float(keep.float().mean())
        if gather and i + 1 < len(layers):
            run(layer, inputs, outputs, kwargs, device)
            inputs, outputs = outputs, inputs
        layer.to(home)
        records.append(LayerRecord(i, groups, kept, time.perf_counter() - start))
    return Layerwise(masks, windows.numel() if gather else 0, records)
