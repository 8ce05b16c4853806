"""Physical compaction of a model whose pruned filters are whole: the channels they leave at exactly zero are
removed, with everything that depends on them, through Torch-Pruning's dependency graph (Fang et al. 2023,
"DepGraph: Towards any structural pruning", CVPR).

A channel is removed only when the model provably computes zero in it for every input: every layer that
writes it (a convolution's or linear layer's output filter, all the layers a residual addition couples) has
that filter's weights and bias at zero, and every BatchNorm on it maps zero to zero. Removing such a channel,
with the next layers' input channels and the BatchNorm entries, leaves every output as it was. The input channels
removed with it are reported (`Compacted.inputs_removed`): a channel method zeroes them too. That is
checked on a real batch, and the largest absolute difference of the outputs is part of the result: a
compaction that changes outputs by more than float arithmetic's reordering explains is refused.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from prunebench.efficiency._imports import quietly
from prunebench.models import layer_macs
from prunebench.models.probe import eval_mode

if TYPE_CHECKING:
    import torch_pruning as tp

WRITERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
TOLERANCE = 1e-4  # of the outputs' magnitude: float32 sums in another order differ by ~1e-6 of it


def torch_pruning() -> ModuleType:
    return quietly("torch_pruning")


class CompactionError(ValueError):
    """The model cannot be compacted (Torch-Pruning cannot trace it) or compacting it changed its outputs."""


@dataclass
class Compacted:
    model: nn.Module
    channels_removed: int
    params: int
    macs: int  # conv and linear MACs per example of the compacted module
    max_abs_diff: float  # between the outputs of the masked and the compacted model on the checked batch
    # By conv/linear layer name: the input channels (indices into its weight's dim 1) removed with the channels
    inputs_removed: dict[str, list[int]] = field(default_factory=dict)


def channel_is_zero(module: nn.Module, index: int, writes: bool) -> bool:
    """Whether `module` leaves channel `index` at zero when that channel comes in as zero (a layer that only
    reads it, or a parameterless operation such as ReLU, an addition or pooling, does)."""
    if isinstance(module, WRITERS):
        if not writes:
            return True
        bias = module.bias
        return bool((module.weight[index] == 0).all()) and (bias is None or bool(bias[index] == 0))
    if isinstance(module, _BatchNorm):
        shift = module.bias[index] if module.bias is not None else torch.zeros(())
        if module.running_mean is not None and module.running_var is not None:
            scale = module.weight[index] if module.weight is not None else torch.ones(())
            shift = shift - scale * module.running_mean[index] / torch.sqrt(module.running_var[index] + module.eps)
        return bool(shift == 0)
    # Anything else with parameters on the channel (PReLU, GroupNorm, LayerNorm) is kept, to be sure.
    return not any(True for _ in module.parameters(recurse=False))


def output_layers(model: nn.Module, example: Tensor) -> list[nn.Module]:
    """The layers whose output is the model's output (the classifier): their outputs are never removed."""
    produced: dict[int, nn.Module] = {}
    hooks = [
        m.register_forward_hook(lambda mod, _args, out: produced.__setitem__(id(out), mod))
        for m in model.modules()
        if isinstance(m, WRITERS)
    ]
    try:
        with torch.no_grad(), eval_mode(model):
            out = model(example)
    finally:
        for h in hooks:
            h.remove()
    return [produced[id(out)]] if id(out) in produced else []


Plan = tuple[nn.Module, object, list[int], dict[nn.Module, set[int]]]


def removable_groups(graph: tp.DependencyGraph, keep: list[nn.Module]) -> list[Plan]:
    """(root layer, its pruning function, channel indices, the input channels of each conv/linear layer that
    reads them) for every coupled group of channels in which the channels listed are zero in every layer of the
    group."""
    plans = []
    for group in graph.get_all_groups(ignored_layers=keep, root_module_types=WRITERS):
        root = group[0]
        zero = dict.fromkeys(root.root_idxs, True)
        for item in group:
            writes = graph.is_out_channel_pruning_fn(item.dep.handler)
            module = item.dep.target.module
            for index, root_index in zip(item.idxs, item.root_idxs, strict=True):
                if zero.get(root_index) and not channel_is_zero(module, int(index), writes):
                    zero[root_index] = False
        channels = [int(i) for i, z in zero.items() if z]
        if channels:
            readers: dict[nn.Module, set[int]] = {}
            for item in group:
                module = item.dep.target.module
                if isinstance(module, WRITERS) and not graph.is_out_channel_pruning_fn(item.dep.handler):
                    removed = (int(i) for i, r in zip(item.idxs, item.root_idxs, strict=True) if zero.get(r))
                    readers.setdefault(module, set()).update(removed)
            plans.append((root.dep.target.module, root.dep.handler, channels, readers))
    return plans


def compact(model: nn.Module, batch: Tensor) -> Compacted:
    """A compacted copy of `model` (left unchanged) in evaluation mode, checked against it on `batch`."""
    example = batch[:1]
    original = model
    model = copy.deepcopy(model).eval()
    try:
        graph = torch_pruning().DependencyGraph().build_dependency(model, example_inputs=example)  # traces autograd
        modules = dict(model.named_modules())
        ran = layer_macs(model, tuple(batch.shape[1:]))  # type: ignore[arg-type]  # the layers that run
        untraced = [n for n in ran if modules[n] not in graph.module2node]
        if untraced:
            raise CompactionError(
                f"Torch-Pruning cannot trace the model (its graph misses {len(untraced)} layer(s), e.g. "
                f"{untraced[0]}: a forward outside autograd, or a layer applied functionally)"
            )
        keep = output_layers(model, example)
        removed = 0
        names = {m: n for n, m in model.named_modules()}
        inputs_removed: dict[str, list[int]] = {}
        plans = removable_groups(graph, keep)  # all indices of the model as given, before any is removed
        for _, _, _, readers in plans:
            for module, indices in readers.items():
                inputs_removed[names[module]] = sorted(set(inputs_removed.get(names[module], [])) | indices)
        with torch.no_grad():
            for layer, handler, channels, _ in plans:
                graph.get_pruning_group(layer, handler, idxs=channels).prune()
                removed += len(channels)
    except CompactionError:
        raise
    except Exception as exc:  # Torch-Pruning's tracer fails in many ways on a model it cannot follow
        message = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise CompactionError(f"Torch-Pruning cannot trace the model ({type(exc).__name__}: {message})") from None
    with torch.no_grad(), eval_mode(original):
        expected = original(batch).float()
        got = model(batch).float()
    if got.shape != expected.shape:
        raise CompactionError(
            f"the compacted model's outputs have shape {tuple(got.shape)}, not {tuple(expected.shape)}"
        )
    diff = float((got - expected).abs().max())
    scale = float(expected.abs().max())
    if not math.isfinite(diff) or diff > TOLERANCE * max(scale, 1.0):
        raise CompactionError(
            f"removing the zero channels changed the outputs by up to {diff:.3g} (of outputs up to {scale:.3g})"
        )
    shape = tuple(batch.shape[1:])
    macs = sum(layer_macs(model, shape).values())  # type: ignore[arg-type]  # (C, H, W) of registered models
    return Compacted(
        model=model,
        channels_removed=removed,
        params=sum(p.numel() for p in model.parameters()),
        macs=int(macs),
        max_abs_diff=diff,
        inputs_removed=inputs_removed,
    )
