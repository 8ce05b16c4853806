"""Coupled channels: what a structured method removes together, found by Torch-Pruning's dependency graph.

A *channel* is one output channel of a convolution or linear layer. Removing it from the network takes with it
every parameter slice coupled to it (Fang et al. 2023, "DepGraph: Towards Any Structural Pruning", CVPR): the
output filters of every layer that writes it (a residual addition couples the filters of all the layers it
adds, a depthwise convolution passes the channel on), its BatchNorm entries, and the input-channel slices of
every layer that reads it (through concatenations and flattening too). Torch-Pruning's `DependencyGraph` traces
these couplings; its group of a root layer holds, for every channel of that layer, all the coupled slices.

Here a `Coupling` is one such group: the channels of one layer, or of all the layers of a residual stage, found
once. A *channel group* is one channel of a coupling with all its slices: the unit a structured method removes.
Only channels whose removal the engine and the runner can carry out exactly are grouped; the others are listed
with the reason (`ChannelGroups.excluded`):

- every writer's weight is prunable under the protocol (the engine zeroes only prunable weights): a coupling
  written by a layer the protocol keeps dense (`prunable.exclude`, `include_first: false`) is excluded. A reader
  that is not prunable is no obstacle: its input slices are removed with the channel all the same (physical
  compaction drops them), they are only not masked, and they do not count toward the weight sparsity;
- every BatchNorm on the channels follows a writer directly, so that the engine zeroes its entries with the
  writer's filter (prunebench.models.channel_parameters) and the channel then computes exactly zero;
- no other parametrized layer (LayerNorm, GroupNorm, PReLU), no grouped (non-depthwise) or transposed
  convolution, no parameter outside a module touches the channels.

The model's output layer (the layer that produces the model's output) is never grouped: its channels are the
classes. The model is traced on a copy in evaluation mode, on a zero input of `ctx.input_shape`.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from prunebench.efficiency.compact import WRITERS, output_layers, torch_pruning
from prunebench.methods.coupling import ChannelGroups, Coupling, Slice, SliceKind
from prunebench.models import channel_parameters, layer_macs
from prunebench.models.probe import InputShape, probe_input

if TYPE_CHECKING:
    from prunebench.methods.context import PruningContext


def channel_groups(ctx: PruningContext) -> ChannelGroups:
    """The coupled channels of the method's model (`ctx.model`, untouched: a copy is traced)."""
    return find_channel_groups(ctx.model, ctx.input_shape, ctx.weights().keys())


def find_channel_groups(model: nn.Module, input_shape: InputShape, prunable: Iterable[str]) -> ChannelGroups:
    """The couplings of `model` (left unchanged) on an input of `input_shape`; `prunable`: the protocol's
    prunable weights by name."""
    with torch.enable_grad():  # Torch-Pruning traces autograd, whatever the caller's mode
        return _find(copy.deepcopy(model).eval().requires_grad_(True), input_shape, prunable)


def _find(model: nn.Module, input_shape: InputShape, prunable_names: Iterable[str]) -> ChannelGroups:
    example = probe_input(model, input_shape)
    names = {m: n for n, m in model.named_modules()}
    modules = {n: m for m, n in names.items()}
    params = dict(model.named_parameters())
    prunable = {name: params[name].numel() for name in prunable_names}
    following = channel_parameters(model, input_shape)  # a layer's bias and the BatchNorm right after it
    zeroed = {p for ps in following.values() for p in ps}
    follows = {p.rpartition(".")[0]: layer for layer, ps in following.items() for p in ps if p != f"{layer}.bias"}
    macs = layer_macs(model, input_shape)
    graph = torch_pruning().DependencyGraph().build_dependency(model, example_inputs=example)
    found = ChannelGroups([], {}, prunable, sum(p.numel() for p in params.values()), sum(macs.values()))
    for group in graph.get_all_groups(ignored_layers=output_layers(model, example), root_module_types=WRITERS):
        root = names[group[0].dep.target.module]
        members: dict[tuple[str, SliceKind], list[tuple[int, int]]] = {}
        why = None
        for item in group:
            module = item.dep.target.module
            if isinstance(module, nn.Parameter):
                why = "a parameter used outside its module's forward is on the channels"
                break
            if module not in names:  # Torch-Pruning's own operations (additions, concatenations, reshapes)
                continue
            kind, why = _kind(module, names[module], graph.is_out_channel_pruning_fn(item.dep.handler))
            if why is None and any(r is None for r in item.root_idxs):
                why = f"Torch-Pruning cannot map {names[module]}'s indices to the channels"
            if why is not None:
                break
            if kind is not None:
                members.setdefault((names[module], kind), []).extend(zip(item.idxs, item.root_idxs, strict=True))
        size = len(group[0].idxs)
        slices = [_slice(modules[m], m, kind, pairs, size, prunable, follows) for (m, kind), pairs in members.items()]
        why = why or _obstacle(slices, zeroed)
        if why is not None:
            found.excluded[root] = why
            continue
        found.couplings.append(Coupling(root, size, tuple(slices)))
        for s in slices:
            if s.kind == "norm":
                own = (params.get(s.param), params.get(f"{s.module}.bias"))
                found.norms[s.module] = sum(p is not None for p in own)
            else:
                bias = modules[s.module].bias is not None
                found.layers[s.module] = (tuple(params[s.param].shape), macs.get(s.module, 0), bias)
    return found


def _kind(module: nn.Module, name: str, writes: bool) -> tuple[SliceKind | None, str | None]:
    """The kind of slice `module` holds in a coupling (None: it holds no parameter), or why it cannot."""
    if isinstance(module, WRITERS):
        groups = getattr(module, "groups", 1)
        depthwise = groups == getattr(module, "in_channels", 0) == getattr(module, "out_channels", 0)
        if getattr(module, "transposed", False) or (groups != 1 and not depthwise):
            return None, f"{name} is a grouped or transposed convolution"
        return ("out" if writes else "in"), None
    if isinstance(module, _BatchNorm):
        if module.weight is None and module.running_mean is not None:
            return None, f"{name} shifts the channels by its running mean and has no scale to zero"
        return ("norm" if module.weight is not None else None), None
    if any(True for _ in module.parameters(recurse=False)):
        return None, f"{name} ({type(module).__name__}) has parameters on the channels that are not pruned"
    return None, None


def _slice(
    layer: nn.Module,
    module: str,
    kind: SliceKind,
    pairs: list[tuple[int, int]],
    size: int,
    prunable: dict[str, int],
    follows: dict[str, str],
) -> Slice:
    positions: list[list[int]] = [[] for _ in range(size)]
    for index, channel in pairs:
        positions[int(channel)].append(int(index))
    param = f"{module}.weight" if module else "weight"
    depthwise = isinstance(layer, WRITERS) and getattr(layer, "groups", 1) > 1
    indices = tuple(tuple(sorted(set(p))) for p in positions)
    writer = follows.get(module) if kind == "norm" else None
    return Slice(module, param, kind, indices, param in prunable, depthwise, writer)


def _obstacle(slices: list[Slice], zeroed: set[str]) -> str | None:
    """Why the coupling's channels cannot be removed exactly, or None."""
    writers = [s for s in slices if s.kind == "out"]
    kept = [s.param for s in writers if not s.prunable]
    if kept:
        return f"written by {kept[0]}, which is not prunable"
    if not writers:
        return "no prunable layer writes it"
    loose = [s.module for s in slices if s.kind == "norm" and s.param not in zeroed]
    if loose:
        return f"the BatchNorm {loose[0]} does not follow a layer that writes it directly"
    return None
