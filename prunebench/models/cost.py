"""The per-layer cost accounting of the budget ledger.

`layer_macs` gives the multiply-accumulates of one example's forward pass for every convolution and linear
layer: the numbers the budget ledger scales by each layer's density. `other_macs` counts what no such layer
accounts for (attention's matrix products), with torch's FLOP counter.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import torch
from torch import nn

from prunebench.models.probe import eval_mode, keep_rng, probe_input

# The layers whose MACs are counted, by forward hooks: every convolution and linear layer.
COUNTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def _module_macs(module: nn.Module, output: torch.Tensor) -> int:
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        return output.numel() * (module.in_channels // module.groups) * math.prod(module.kernel_size)
    assert isinstance(module, nn.Linear)
    return output.numel() * module.in_features


def _functional_uses(module: nn.Module, args: tuple[Any, ...], output: Any) -> list[tuple[nn.Linear, int]]:
    """Linear submodules whose weights `module` applies with F.linear instead of calling them.

    Their forward hooks never fire, yet their weights are prunable, so their MACs are credited to
    them when the parent finishes (that is when they ran, give or take, in execution order).
    """
    if isinstance(module, nn.MultiheadAttention):
        attended = output[0] if isinstance(output, tuple) else output
        return [(module.out_proj, attended.numel() * module.out_proj.in_features)]
    swin = _swin_attention_type()
    if swin is not None and isinstance(module, swin) and args:
        *lead, h, w, _ = args[0].shape
        wh, ww = module.window_size
        tokens = math.prod(lead) * math.ceil(h / wh) * wh * math.ceil(w / ww) * ww  # padded to windows
        return [(lin, tokens * lin.in_features * lin.out_features) for lin in (module.qkv, module.proj)]
    return []


def _swin_attention_type() -> type[nn.Module] | None:
    # No model can hold one unless torchvision's swin module is loaded: no import needed. Should
    # torchvision rename it, swin's qkv and proj go uncounted here (and show in other_macs).
    module = sys.modules.get("torchvision.models.swin_transformer")
    found = getattr(module, "ShiftedWindowAttention", None)
    return found if isinstance(found, type) else None


def _attention_flops(query: torch.Size, key: torch.Size, value: torch.Size, *args: Any, **kwargs: Any) -> int:
    # QK^T and AV of scaled dot-product attention, in FLOPs (2 per MAC) as the counter wants.
    *batch, q_len, dim = query
    keys, value_dim = key[-2], value[-1]
    return 2 * math.prod(batch) * q_len * keys * (dim + value_dim)


# The CPU's fused attention kernel has no formula in torch's counter (the CUDA ones do): without
# this, the same model would cost less on the CPU.
_EXTRA_FLOP_FORMULAS: dict[Any, Any] = {
    op: _attention_flops
    for op in [getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)]
    if op is not None
}


def _count(model: nn.Module, input_shape: tuple[int, int, int], with_total: bool) -> tuple[dict[str, int], int]:
    names = {module: name for name, module in model.named_modules()}
    macs: dict[str, int] = {}
    calls: dict[nn.Module, int] = {}
    pending: dict[nn.Module, list[dict[nn.Module, int]]] = {}

    def add(module: nn.Module, count: int) -> None:
        name = names[module]
        macs[name] = macs.get(name, 0) + count
        calls[module] = calls.get(module, 0) + 1

    def layer_hook(module: nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> None:
        add(module, _module_macs(module, output))

    def parent_pre_hook(module: nn.Module, args: tuple[Any, ...]) -> None:
        pending.setdefault(module, []).append(dict(calls))

    def parent_hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        before = pending[module].pop()
        for child, count in _functional_uses(module, args, output):
            # Credit only children that did not run as modules: no double count should a future
            # version call them.
            if child in names and calls.get(child, 0) == before.get(child, 0):
                add(child, count)

    parents: tuple[type[nn.Module], ...] = (nn.MultiheadAttention,)
    if (swin := _swin_attention_type()) is not None:
        parents += (swin,)
    handles = []
    for module in names:
        if isinstance(module, COUNTED):
            handles.append(module.register_forward_hook(layer_hook))
        elif isinstance(module, parents):
            handles.append(module.register_forward_pre_hook(parent_pre_hook))
            handles.append(module.register_forward_hook(parent_hook))
    fastpath = torch.backends.mha.get_fastpath_enabled()
    total = 0
    try:
        # The fused attention kernel of the fast path is opaque to the FLOP counter.
        torch.backends.mha.set_fastpath_enabled(False)
        x = probe_input(model, input_shape)
        with keep_rng(x.device), eval_mode(model), torch.no_grad():
            if with_total:
                from torch.utils.flop_counter import FlopCounterMode

                counter = FlopCounterMode(display=False, custom_mapping=_EXTRA_FLOP_FORMULAS)
                with counter:
                    model(x)
                total = counter.get_total_flops() // 2  # it counts a MAC as two FLOPs
            else:
                model(x)
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
        for handle in handles:
            handle.remove()
    return macs, total


def layer_macs(model: nn.Module, input_shape: tuple[int, int, int]) -> dict[str, int]:
    """Multiply-accumulates of ONE example's forward pass for every convolution (1-, 2- and 3-d) and nn.Linear,
    keyed by the module's qualified name (as in model.named_modules()), in EXECUTION order
    (dict insertion order = the order their forward ran). Computed with forward hooks on one
    zero input in eval mode under torch.no_grad, on the model's current device; restores the
    model's train/eval mode. Conv: output elements * (in_channels/groups) * kernel elements; Linear:
    in_features*out_features (times leading dims other than batch, if any). A module run twice
    counts twice (same key, summed).

    Linear layers whose weights their parent applies functionally (nn.MultiheadAttention's
    out_proj, torchvision Swin's qkv and proj) are credited when the parent's forward ends.
    A convolution or Linear that never runs has no entry.
    """
    return _count(model, input_shape, with_total=False)[0]


def other_macs(model: nn.Module, input_shape: tuple[int, int, int]) -> int:
    """MACs of one example's forward that no convolution or Linear accounts for: matrix products and
    convolutions done functionally, such as attention (QK^T, AV) and nn.MultiheadAttention's packed
    input projection. Counted by torch's FLOP counter, which, like `layer_macs`, leaves out
    elementwise work (normalization, activations, pooling, bias adds): 0 for a plain CNN.
    """
    layers, total = _count(model, input_shape, with_total=True)
    return max(0, total - sum(layers.values()))
