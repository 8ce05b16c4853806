"""Models by name, and the per-layer cost accounting of the budget ledger.

A protocol names its architecture (`model.name`) and the keyword arguments of its constructor
(`model.args`). Registered models (`MODELS`) adapt their first layer to the data's channel count;
every torchvision classification model is also available under its torchvision name, always built
from scratch: the engine trains the base model, so pretrained weights are never loaded.

`layer_macs` gives the multiply-accumulates of one example's forward pass for every convolution
and linear layer: the numbers the budget ledger scales by each layer's density.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import inspect
import itertools
import math
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from prunebench.errors import FieldError
from prunebench.protocol import ModelSpec

InputShape = tuple[int, int, int]
Builder = Callable[..., nn.Module]


@dataclass(frozen=True)
class ModelInfo:
    name: str
    description: str
    builder: Builder  # fn(num_classes, input_shape, **args) -> nn.Module


MODELS: dict[str, ModelInfo] = {}


def register_model(name: str, description: str) -> Callable[[Builder], Builder]:
    """Register `builder(num_classes, input_shape, **args) -> nn.Module` under `name`."""

    def decorate(builder: Builder) -> Builder:
        if name in MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        MODELS[name] = ModelInfo(name, description, builder)
        return builder

    return decorate


@functools.cache
def _torchvision_names() -> tuple[str, ...]:
    # Imported here: torchvision is slow to import and most commands never build a model.
    import torchvision.models

    # module= keeps the classification models: detection, segmentation, video and quantized
    # models live in sub-packages and take different inputs or outputs.
    return tuple(torchvision.models.list_models(module=torchvision.models))


def model_names() -> list[str]:
    """Registered names (in registration order), then torchvision's classification models."""
    return [*MODELS, *(name for name in _torchvision_names() if name not in MODELS)]


# ---- building -----------------------------------------------------------------------------------
# torchvision defaults that do not suit training from scratch here: auxiliary heads make the
# training-mode forward return a tuple instead of logits, and leaving init_weights unset warns.
_TORCHVISION_DEFAULTS: dict[str, dict[str, Any]] = {
    "googlenet": {"aux_logits": False, "init_weights": True},
    "inception_v3": {"aux_logits": False, "init_weights": True},
}
_RESERVED_ARGS = ("num_classes", "input_shape")


def build_model(spec: ModelSpec, *, num_classes: int, input_shape: tuple[int, int, int]) -> nn.Module:
    """Build the model a protocol names, freshly initialized from torch's current RNG state.

    The model is checked with one forward pass of a zero input (in eval mode, without touching
    the RNG), so that an input shape it cannot take is an error here rather than in training.
    """
    shape: InputShape = tuple(int(d) for d in input_shape)  # type: ignore[assignment]
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"input_shape must be (channels, height, width), got {input_shape!r}")
    args = dict(spec.args)
    for key in _RESERVED_ARGS:
        if key in args:
            raise FieldError(("model", "args"), f"{key!r} is not a model argument: it comes from the data set")
    if spec.name in MODELS:
        model = _build_registered(MODELS[spec.name], args, num_classes, shape)
    elif spec.name in _torchvision_names():
        model = _build_torchvision(spec.name, args, num_classes, shape)
    else:
        raise FieldError(("model", "name"), _unknown_model(spec.name))
    _check_forward(model, spec.name, num_classes, shape)
    return model


def _unknown_model(name: str) -> str:
    by_lower = {known.lower(): known for known in model_names()}
    close = [by_lower[m] for m in difflib.get_close_matches(name.lower(), list(by_lower), n=3, cutoff=0.6)]
    hint = f"did you mean {' or '.join(map(repr, close))}? " if close else ""
    return (
        f"unknown model {name!r} ({hint}known: {', '.join(MODELS)}, and the "
        f"{len(_torchvision_names())} torchvision classification models such as resnet50; "
        "`prunebench models` lists them all)"
    )


def _build_registered(info: ModelInfo, args: dict[str, Any], num_classes: int, shape: InputShape) -> nn.Module:
    params = list(inspect.signature(info.builder).parameters.values())[2:]
    takes = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if not any(p.kind is p.VAR_KEYWORD for p in params):
        unknown = sorted(set(args) - set(takes))
        if unknown:
            raise FieldError(
                ("model", "args"),
                f"model {info.name!r} does not take {', '.join(map(repr, unknown))} "
                f"(it takes: {', '.join(takes) or 'no arguments'})",
            )
    try:
        return info.builder(num_classes, shape, **args)
    except (TypeError, ValueError) as exc:  # an argument of the wrong type or value
        raise FieldError(("model", "args"), f"model {info.name!r} rejects its args {args}: {exc}") from None


def _build_torchvision(name: str, args: dict[str, Any], num_classes: int, shape: InputShape) -> nn.Module:
    import torchvision.models

    if shape[0] != 3:
        raise FieldError(
            ("model", "name"),
            f"torchvision model {name!r} takes 3-channel (RGB) images but the data have {shape[0]} "
            "channel(s); the registered models (small_cnn, lenet_300_100, cifar_*) adapt to any channel count",
        )
    for key in ("weights", "pretrained"):
        if key in args:
            raise FieldError(
                ("model", "args"),
                f"{key!r} is not allowed: prunebench never loads pretrained weights (the engine trains the base model)",
            )
    kwargs = {**_TORCHVISION_DEFAULTS.get(name, {}), **args}
    try:
        return torchvision.models.get_model(name, weights=None, num_classes=num_classes, **kwargs)
    except (TypeError, ValueError) as exc:
        raise FieldError(("model", "args"), f"torchvision model {name!r} rejects its args {args}: {exc}") from None


def _check_forward(model: nn.Module, name: str, num_classes: int, shape: InputShape) -> None:
    try:
        x = _probe_input(model, shape)
        with _keep_rng(x.device), _eval_mode(model), torch.no_grad():
            out = model(x)
    except (RuntimeError, ValueError, AssertionError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise FieldError(("model", "name"), f"model {name!r} cannot take inputs of shape {shape}: {first}") from None
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (1, num_classes):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise FieldError(("model", "name"), f"model {name!r} gives {got} for one example, not (1, {num_classes})")


# ---- cost accounting ----------------------------------------------------------------------------
@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode inside; every submodule's own flag restored after (modes may be mixed)."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


def _keep_rng(device: torch.device) -> contextlib.AbstractContextManager[None]:
    """Probe passes must not move the RNG stream the engine seeded. Eval-mode torchvision and
    registered models draw nothing; a user's model might."""
    return torch.random.fork_rng(devices=[device] if device.type == "cuda" else [])


def _probe_input(model: nn.Module, shape: InputShape) -> torch.Tensor:
    tensors = list(itertools.chain(model.parameters(), model.buffers()))
    device = tensors[0].device if tensors else torch.device("cpu")
    dtype = next((t.dtype for t in tensors if t.is_floating_point()), torch.get_default_dtype())
    # Batch of one: every leading dimension a layer sees (windows, tokens, ...) is then per example.
    return torch.zeros(1, *shape, device=device, dtype=dtype)


def _module_macs(module: nn.Module, output: torch.Tensor) -> int:
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return output.numel() * (module.in_channels // module.groups) * kh * kw
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
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            handles.append(module.register_forward_hook(layer_hook))
        elif isinstance(module, parents):
            handles.append(module.register_forward_pre_hook(parent_pre_hook))
            handles.append(module.register_forward_hook(parent_hook))
    fastpath = torch.backends.mha.get_fastpath_enabled()
    total = 0
    try:
        # The fused attention kernel of the fast path is opaque to the FLOP counter.
        torch.backends.mha.set_fastpath_enabled(False)
        x = _probe_input(model, input_shape)
        with _keep_rng(x.device), _eval_mode(model), torch.no_grad():
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
    """Multiply-accumulates of ONE example's forward pass for every nn.Conv2d and nn.Linear,
    keyed by the module's qualified name (as in model.named_modules()), in EXECUTION order
    (dict insertion order = the order their forward ran). Computed with forward hooks on one
    zero input in eval mode under torch.no_grad, on the model's current device; restores the
    model's train/eval mode. Conv: out_h*out_w*out_channels*(in_channels/groups)*kh*kw; Linear:
    in_features*out_features (times leading dims other than batch, if any). A module run twice
    counts twice (same key, summed).

    Linear layers whose weights their parent applies functionally (nn.MultiheadAttention's
    out_proj, torchvision Swin's qkv and proj) are credited when the parent's forward ends.
    A Conv2d or Linear that never runs has no entry.
    """
    return _count(model, input_shape, with_total=False)[0]


def other_macs(model: nn.Module, input_shape: tuple[int, int, int]) -> int:
    """MACs of one example's forward that no Conv2d or Linear accounts for: matrix products and
    convolutions done functionally, such as attention (QK^T, AV) and nn.MultiheadAttention's packed
    input projection. Counted by torch's FLOP counter, which, like `layer_macs`, leaves out
    elementwise work (normalization, activations, pooling, bias adds): 0 for a plain CNN.
    """
    layers, total = _count(model, input_shape, with_total=True)
    return max(0, total - sum(layers.values()))


# ---- registered models --------------------------------------------------------------------------
def _init_weights(model: nn.Module) -> None:
    # He et al. 2015 normal init for every conv and linear (as OpenLTH and torchvision ResNets do);
    # BN starts as the identity.
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)) and module.weight is not None:
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


def _positive(name: str, value: Any, *, integer: bool = False) -> None:
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or value <= 0:
        kind = "positive integer" if integer else "positive number"
        raise ValueError(f"{name} must be a {kind}, got {value!r}")


def _scaled(channels: int, width: float) -> int:
    return max(1, round(channels * width))


# Activations are not in-place anywhere: methods that score weights from activations capture
# module outputs with hooks, and an in-place ReLU would overwrite what they captured.
def _conv_bn_relu(
    c_in: int, c_out: int, kernel: int = 3, stride: int = 1, groups: int = 1, act: type[nn.Module] = nn.ReLU
) -> nn.Sequential:
    conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False)
    return nn.Sequential(conv, nn.BatchNorm2d(c_out), act())


class SmallCNN(nn.Module):
    """Three 3x3 conv-BN-ReLU layers, one 2x2 max pool, global average pooling, a linear classifier."""

    def __init__(self, in_channels: int, num_classes: int, width: float = 1.0) -> None:
        super().__init__()
        c1, c2 = _scaled(32, width), _scaled(64, width)
        self.features = nn.Sequential(
            _conv_bn_relu(in_channels, c1), _conv_bn_relu(c1, c2), nn.MaxPool2d(2), _conv_bn_relu(c2, c2)
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c2, num_classes)
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


@register_model("small_cnn", "3-layer CNN with BN for 8x8 digits and 28x28 MNIST-likes; args: width (multiplier, 1)")
def small_cnn(num_classes: int, input_shape: InputShape, width: float = 1.0) -> nn.Module:
    _positive("width", width)
    return SmallCNN(input_shape[0], num_classes, width)


class LeNet300100(nn.Module):
    """The fully connected LeNet-300-100 (LeCun et al. 1998), the pruning baseline of Han et al. 2015."""

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, 300)
        self.fc2 = nn.Linear(300, 100)
        self.fc3 = nn.Linear(100, num_classes)
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.fc1(torch.flatten(x, 1)))
        return self.fc3(F.relu(self.fc2(x)))


@register_model("lenet_300_100", "MLP 300-100 on the flattened input (LeCun 1998; Han et al. 2015)")
def lenet_300_100(num_classes: int, input_shape: InputShape) -> nn.Module:
    return LeNet300100(math.prod(input_shape), num_classes)


class CifarBasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        # Projection shortcut (option B of He et al. 2016) where the shape changes, as in OpenLTH.
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for 32x32 images (He et al. 2016, Sec. 4.2): three stages of n basic blocks."""

    def __init__(self, depth: int, in_channels: int, num_classes: int, width: int = 16) -> None:
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"a CIFAR ResNet's depth is 6n+2 (20, 32, 44, 56, 110), got {depth}")
        blocks_per_stage = (depth - 2) // 6
        self.conv = nn.Conv2d(in_channels, width, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(width)
        blocks: list[nn.Module] = []
        c_in = width
        for stage, c_out in enumerate((width, 2 * width, 4 * width)):
            for index in range(blocks_per_stage):
                blocks.append(CifarBasicBlock(c_in, c_out, stride=2 if stage > 0 and index == 0 else 1))
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c_in, num_classes)
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(F.relu(self.bn(self.conv(x))))
        return self.fc(torch.flatten(self.pool(x), 1))


def _cifar_resnet_builder(depth: int) -> Builder:
    def build(num_classes: int, input_shape: InputShape, width: int = 16) -> nn.Module:
        _positive("width", width, integer=True)
        return CifarResNet(depth, input_shape[0], num_classes, width)

    return build


for _depth in (20, 32, 44, 56, 110):
    register_model(
        f"cifar_resnet{_depth}",
        f"CIFAR ResNet-{_depth} (He et al. 2016; OpenLTH), projection shortcuts; args: width (base channels, 16)",
    )(_cifar_resnet_builder(_depth))


_VGG_PLANS: dict[int, list[int | str]] = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512],
}


class CifarVGG(nn.Module):
    """VGG with BN for CIFAR (OpenLTH; Liu et al. 2019): four max pools, global pooling, one linear."""

    def __init__(self, plan: list[int | str], in_channels: int, num_classes: int, width: float = 1.0) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = in_channels
        for item in plan:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                c_out = _scaled(int(item), width)
                layers.append(_conv_bn_relu(c_in, c_out))
                c_in = c_out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)  # 2x2 -> 1x1 on 32x32 inputs, as OpenLTH's AvgPool2d(2)
        self.classifier = nn.Linear(c_in, num_classes)
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


def _cifar_vgg_builder(depth: int) -> Builder:
    def build(num_classes: int, input_shape: InputShape, width: float = 1.0) -> nn.Module:
        _positive("width", width)
        return CifarVGG(_VGG_PLANS[depth], input_shape[0], num_classes, width)

    return build


for _depth in _VGG_PLANS:
    register_model(
        f"cifar_vgg{_depth}_bn",
        f"CIFAR VGG-{_depth} with BN and one linear classifier (OpenLTH); args: width (multiplier, 1)",
    )(_cifar_vgg_builder(_depth))


def _make_divisible(value: float, divisor: int = 8) -> int:
    # MobileNet's channel rounding: to a multiple of 8, never more than 10% below the value.
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class InvertedResidual(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = c_in * expansion
        layers: list[nn.Module] = []
        if expansion != 1:
            layers.append(_conv_bn_relu(c_in, hidden, 1, act=nn.ReLU6))
        layers += [
            _conv_bn_relu(hidden, hidden, 3, stride=stride, groups=hidden, act=nn.ReLU6),  # depthwise
            nn.Conv2d(hidden, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out),
        ]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return x + out if self.residual else out


# (expansion, channels, blocks, stride) per stage; the ImageNet strides of the stem and of the
# second stage are 1 here, so 32x32 inputs end at 4x4 (the common CIFAR variant).
_MOBILENETV2_CIFAR = [
    (1, 16, 1, 1),
    (6, 24, 2, 1),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]


class CifarMobileNetV2(nn.Module):
    """MobileNetV2 (Sandler et al. 2018) for 32x32 images."""

    def __init__(self, in_channels: int, num_classes: int, width: float = 1.0) -> None:
        super().__init__()
        c_in = _make_divisible(32 * width)
        last = _make_divisible(1280 * max(1.0, width))
        layers: list[nn.Module] = [_conv_bn_relu(in_channels, c_in, 3, act=nn.ReLU6)]
        for expansion, channels, blocks, stride in _MOBILENETV2_CIFAR:
            c_out = _make_divisible(channels * width)
            for index in range(blocks):
                layers.append(InvertedResidual(c_in, c_out, stride if index == 0 else 1, expansion))
                c_in = c_out
        layers.append(_conv_bn_relu(c_in, last, 1, act=nn.ReLU6))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(last, num_classes)
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


@register_model("cifar_mobilenetv2", "MobileNetV2 for 32x32 inputs (stride-1 stem); args: width (multiplier, 1)")
def cifar_mobilenetv2(num_classes: int, input_shape: InputShape, width: float = 1.0) -> nn.Module:
    _positive("width", width)
    return CifarMobileNetV2(input_shape[0], num_classes, width)
