"""Which kept weights lie on a path from the input to the output: effective sparsity and disconnection.

Vysogorets & Kempe 2023 ("Connectivity Matters: Neural Network Pruning Through the Lens of Effective Sparsity",
JMLR 24): a kept weight that cannot be reached from the input, or cannot reach the output, computes nothing
the output depends on; counting it as pruned gives the *effective* sparsity. A network in which no path
survives is *disconnected*: SynFlow's objective (Tanaka et al. 2020), the sum of the outputs of the network
with |W|·mask on an all-ones input, is zero exactly then.

Computed on a float64 copy of the model with every conv and linear weight replaced by 1 where it is non-zero
and 0 where it is zero, biases zero (a bias is no path from the input), normalization as the identity, and max
pooling as average pooling (max pooling's gradient reaches one argmax, and on the all-ones input every position
ties: a path through the others would look cut). Each conv and linear output is cut to 0 or 1, and so is the
gradient flowing back into it, so that no count overflows however deep the network: the objective R is then the
number of outputs some path reaches, and a kept weight is effective exactly when dR/dw > 0. Only networks in
which every signal is such a product of weights along paths are computed; others (attention, gates, products of
activations) raise `NotPathProduct` with the reason.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

# Leaf modules whose computation keeps a positive signal positive and a zero zero (normalization is replaced by
# the identity, max pooling by average pooling); any other leaf makes the network not computable here.
PATH_MODULES: tuple[type[nn.Module], ...] = (
    nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear,
    nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm,
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.GELU, nn.SiLU, nn.Hardswish, nn.ELU, nn.Identity, nn.Flatten, nn.Unflatten,
    nn.Sequential,  # an empty one is the identity (a shortcut)
    nn.modules.dropout._DropoutNd, nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd,
    nn.modules.pooling._AdaptiveMaxPoolNd, nn.modules.pooling._AdaptiveAvgPoolNd,
)  # fmt: skip
WEIGHTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
OWNS_PARAMETERS = (*WEIGHTED, nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)
LINEAR_MAPS = {"conv1d", "conv2d", "conv3d", "linear"}
NORMS = {"batch_norm", "group_norm", "layer_norm", "instance_norm"}
AVERAGED = {f"max_pool{d}d": getattr(F, f"avg_pool{d}d") for d in (1, 2, 3)} | {
    f"adaptive_max_pool{d}d": getattr(F, f"adaptive_avg_pool{d}d") for d in (1, 2, 3)
}
# Functions whose output is no sum of weight products along paths: gates, attention, products of activations.
REFUSED = {
    "sigmoid", "hardsigmoid", "softmax", "log_softmax", "matmul", "__matmul__", "bmm", "baddbmm", "einsum",
    "scaled_dot_product_attention", "multi_head_attention_forward", "embedding", "max", "amax", "maximum",
}  # fmt: skip
PRODUCTS = {"mul", "mul_", "__mul__", "__rmul__", "__imul__"}


class NotPathProduct(Exception):
    """The network computes something other than sums of weight products along paths: not computed, and why."""


@dataclass(frozen=True)
class Connectivity:
    """What a network's zeros leave connected. `effective`: per weight, kept and on some input-output path;
    `reached`: the outputs some path reaches (SynFlow's objective is zero exactly when this is 0)."""

    effective: dict[str, Tensor]
    reached: int

    @property
    def disconnected(self) -> bool:
        return self.reached == 0


def connectivity(model: nn.Module, names: Sequence[str], input_shape: Sequence[int]) -> Connectivity:
    """Effective weights among the parameters `names` (conv or linear weights) of `model`, from their zeros, on an
    all-ones input of `input_shape` (one example). The model is copied, never modified. Raises NotPathProduct."""
    refuse_modules(model)
    net = copy.deepcopy(model).double().eval()
    for module in net.modules():
        for p in module.parameters(recurse=False):
            p.requires_grad_(False)
        if isinstance(module, WEIGHTED):
            with torch.no_grad():
                module.weight.copy_(module.weight != 0)
                if module.bias is not None:
                    module.bias.zero_()
            module.weight.requires_grad_(True)
    weights = [net.get_parameter(n) for n in names]
    device = weights[0].device if weights else torch.device("cpu")
    with torch.enable_grad(), _Paths():
        out = net(torch.ones(1, *input_shape, dtype=torch.float64, device=device))
    if not isinstance(out, Tensor):
        raise NotPathProduct(f"the model returns {type(out).__name__}, not one tensor of outputs")
    reached = int((out > 0).sum())
    if reached == 0:
        return Connectivity({n: torch.zeros_like(w, dtype=torch.bool) for n, w in zip(names, weights, strict=True)}, 0)
    grads = torch.autograd.grad(out.sum(), weights, allow_unused=True)
    effective = {
        n: torch.zeros_like(w, dtype=torch.bool) if g is None else (g > 0) & (w != 0)
        for n, w, g in zip(names, weights, grads, strict=True)
    }
    return Connectivity(effective, reached)


def refuse_modules(model: nn.Module) -> None:
    """Raise NotPathProduct for a leaf module that is not a path product, or parameters outside conv, linear and
    normalization layers (a scale, an embedding, attention's projections)."""
    for name, module in model.named_modules():
        if not isinstance(module, PATH_MODULES) and next(module.children(), None) is None:
            raise NotPathProduct(f"{name or 'the model'} is a {type(module).__name__}, not a product of weights")
        if not isinstance(module, OWNS_PARAMETERS) and next(module.parameters(recurse=False), None) is not None:
            raise NotPathProduct(f"{name or 'the model'} ({type(module).__name__}) holds parameters of its own")


def blocks_of(names: Iterable[str]) -> dict[str, str]:
    """Each prunable weight's block: the smallest module holding two or more of the prunable layers (a residual
    block, a stage; "" for the whole model)."""
    layers = {n: n.removesuffix(".weight") for n in names}
    out = {}
    for name, layer in layers.items():
        parts = layer.split(".")
        out[name] = ""
        for k in range(len(parts) - 1, 0, -1):
            prefix = ".".join(parts[:k]) + "."
            if sum(other.startswith(prefix) for other in layers.values()) >= 2:
                out[name] = prefix[:-1]
                break
    return out


def _binary(x: Tensor) -> Tensor:
    """x cut to 1 where positive and 0 elsewhere, the gradient passing through unchanged (and then cut so)."""
    cut = x + ((x > 0).to(x.dtype) - x).detach()
    if cut.requires_grad:
        cut.register_hook(lambda g: (g > 0).to(g.dtype))
    return cut


class _Paths(TorchFunctionMode):
    """The path network's functions: conv and linear outputs cut to 0/1, norms as the identity, max pooling as
    average pooling; what is no path product is refused."""

    def __torch_function__(self, func: Any, types: Any, args: Sequence[Any] = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name in NORMS:
            return args[0] if args else kwargs["input"]
        if name in AVERAGED:
            return _average(name, args, kwargs)
        if name in REFUSED or "with_indices" in name:
            raise NotPathProduct(f"the model calls {name}: not a product of weights along paths")
        tensors = [a for a in args if isinstance(a, Tensor) and a.numel() > 1]
        if name in PRODUCTS and len(tensors) == 2 and all(t.requires_grad for t in tensors):
            raise NotPathProduct("the model multiplies activations together (a gate): not a product of weights")
        out = func(*args, **kwargs)
        return _binary(out) if name in LINEAR_MAPS else out


def _average(name: str, args: Sequence[Any], kwargs: dict[str, Any]) -> Tensor:
    """Max pooling's call as average pooling of the same windows (a window is positive when any input is)."""
    keys = ("input", "output_size") if name.startswith("adaptive") else ("input", "kernel_size", "stride", "padding")
    keys += () if name.startswith("adaptive") else ("dilation", "ceil_mode")
    bound = dict(zip((*keys, "return_indices"), args, strict=False)) | kwargs
    if bound.pop("return_indices", False):
        raise NotPathProduct(f"the model calls {name} for its indices")
    dilation = bound.pop("dilation", 1)
    if any(d != 1 for d in (dilation if isinstance(dilation, (tuple, list)) else [dilation])):
        raise NotPathProduct(f"the model calls {name} with dilation {dilation}")
    return AVERAGED[name](**bound)  # type: ignore[no-any-return]
