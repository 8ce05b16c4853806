"""Models by name: registered architectures and every torchvision classification model.

A protocol names its architecture (`model.name`) and the keyword arguments of its constructor
(`model.args`). Registered models (`MODELS`, `@register_model`) adapt their first layer to the data's
channel count; every torchvision classification model is also available under its torchvision name, always
built from scratch: the engine trains the base model, so pretrained weights are never loaded.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from prunebench.errors import FieldError
from prunebench.models.probe import InputShape, eval_mode, keep_rng, probe_input
from prunebench.protocol import ModelSpec

Builder = Callable[..., nn.Module]


@dataclass(frozen=True)
class ModelInfo:
    name: str
    description: str
    builder: Builder  # fn(num_classes, input_shape, **args) -> nn.Module
    text: bool = False  # a causal LM of token windows (input_shape (seqlen,)), not an image model
    # The files the builder reads, from its args (a local model directory): a job's process must see them.
    files: Callable[[dict[str, Any]], tuple[Path, ...]] | None = None


MODELS: dict[str, ModelInfo] = {}


def register_model(
    name: str,
    description: str,
    *,
    text: bool = False,
    files: Callable[[dict[str, Any]], tuple[Path, ...]] | None = None,
) -> Callable[[Builder], Builder]:
    """Register `builder(num_classes, input_shape, **args) -> nn.Module` under `name`; `text`: a causal LM, built
    for windows of `input_shape[0]` tokens and a vocabulary of at least `num_classes`; `files(args)`: the local
    files it reads (a job's process is let see them)."""

    def decorate(builder: Builder) -> Builder:
        if name in MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        MODELS[name] = ModelInfo(name, description, builder, text, files)
        return builder

    return decorate


@functools.cache
def torchvision_names() -> tuple[str, ...]:
    # Imported here: torchvision is slow to import and most commands never build a model.
    import torchvision.models

    # module= keeps the classification models: detection, segmentation, video and quantized
    # models live in sub-packages and take different inputs or outputs.
    return tuple(torchvision.models.list_models(module=torchvision.models))


def model_files(spec: ModelSpec) -> tuple[Path, ...]:
    """The local files the protocol's model is built from (none for architectures built from scratch)."""
    info = MODELS.get(spec.name)
    if info is None or info.files is None:
        return ()
    try:
        return info.files(dict(spec.args))
    except FieldError:  # an unset variable: building the model says so
        return ()


def model_names() -> list[str]:
    """Registered names (in registration order), then torchvision's classification models."""
    return [*MODELS, *(name for name in torchvision_names() if name not in MODELS)]


# ---- building -----------------------------------------------------------------------------------
# torchvision defaults that do not suit training from scratch here: auxiliary heads make the
# training-mode forward return a tuple instead of logits, and leaving init_weights unset warns.
_TORCHVISION_DEFAULTS: dict[str, dict[str, Any]] = {
    "googlenet": {"aux_logits": False, "init_weights": True},
    "inception_v3": {"aux_logits": False, "init_weights": True},
}
_RESERVED_ARGS = ("num_classes", "input_shape")


def build_model(spec: ModelSpec, *, num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
    """Build the model a protocol names, freshly initialized from torch's current RNG state.

    The model is checked with one forward pass of a zero input (in eval mode, without touching
    the RNG), so that an input shape it cannot take is an error here rather than in training.
    `input_shape`: (channels, height, width) of an image, whose model gives (1, num_classes) scores;
    or (seqlen,) of a window of token ids, whose causal LM gives (1, seqlen, vocabulary) logits (its
    `.logits`), the vocabulary at least num_classes (the tokenizer's).
    """
    shape: InputShape = tuple(int(d) for d in input_shape)
    if len(shape) not in (1, 3) or min(shape) < 1:
        raise ValueError(f"input_shape must be (channels, height, width) or (seqlen,), got {input_shape!r}")
    args = dict(spec.args)
    for key in _RESERVED_ARGS:
        if key in args:
            raise FieldError(("model", "args"), f"{key!r} is not a model argument: it comes from the data set")
    if spec.name in MODELS:
        info = MODELS[spec.name]
        if info.text != (len(shape) == 1):
            takes, data = ("token windows", "images") if info.text else ("images", "token windows")
            raise FieldError(("model", "name"), f"model {spec.name!r} takes {takes}, and the data set gives {data}")

        def construct() -> nn.Module:
            return _build_registered(info, args, num_classes, shape)

    elif spec.name in torchvision_names():

        def construct() -> nn.Module:
            return _build_torchvision(spec.name, args, num_classes, shape)

    else:
        raise FieldError(("model", "name"), _unknown_model(spec.name))
    _check_size(construct, spec.name, args)
    try:
        model = construct()
    except (MemoryError, RuntimeError) as exc:  # the allocator's refusal: arguments too large for this machine
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise FieldError(
            ("model", "args"), f"model {spec.name!r} with args {_short(args)} cannot be built here: {first}"
        ) from None
    _check_forward(model, spec.name, num_classes, shape)
    return model


def _short(args: dict[str, Any]) -> str:
    text = repr(args)
    return text if len(text) <= 200 else text[:180] + "...}"


MAX_PARAMETERS = 2_000_000_000  # 8 GB of float32 weights: far beyond what a protocol here trains


def _check_size(construct: Callable[[], nn.Module], name: str, args: dict[str, Any]) -> None:
    """Refuse a model too large to allocate before allocating it: built once on the meta device (no memory,
    the RNG untouched), its parameters and buffers counted. Models that cannot be built on meta are not checked."""
    try:
        with torch.random.fork_rng(devices=[]), torch.device("meta"), _NoValuesOnMeta():
            model = construct()
    except (NotImplementedError, RuntimeError):
        return
    count = sum(t.numel() for t in itertools.chain(model.parameters(), model.buffers()))
    if count > MAX_PARAMETERS:
        raise FieldError(
            ("model", "args"),
            f"model {name!r} with args {_short(args)} has {count:,} parameters and buffers; at most "
            f"{MAX_PARAMETERS:,} are accepted",
        )


# In-place operations that change a tensor's shape, not only its values.
_RESHAPING = frozenset(
    {"resize_", "resize_as_", "set_", "as_strided_", "squeeze_", "unsqueeze_", "t_", "transpose_", "swapdims_"}
)


class _NoValuesOnMeta(TorchFunctionMode):
    """Skips the in-place operations that only fill a meta tensor's values (an initializer's normal_, erfinv_...):
    a meta tensor has none, and the first of some of them costs about a second (torch imports its Python meta
    kernels then), once in every process that checks a model's size."""

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        name = getattr(func, "__name__", "")
        if (
            name.endswith("_")
            and not name.startswith("_")
            and name not in _RESHAPING
            and args
            and isinstance(args[0], torch.Tensor)
            and args[0].is_meta
        ):
            return args[0]
        return func(*args, **(kwargs or {}))


def _unknown_model(name: str) -> str:
    by_lower = {known.lower(): known for known in model_names()}
    close = [by_lower[m] for m in difflib.get_close_matches(name.lower(), list(by_lower), n=3, cutoff=0.6)]
    hint = f"did you mean {' or '.join(map(repr, close))}? " if close else ""
    return (
        f"unknown model {name!r} ({hint}known: {', '.join(MODELS)}, and the "
        f"{len(torchvision_names())} torchvision classification models such as resnet50; "
        "`prunebench models` lists them all)"
    )


def _build_registered(info: ModelInfo, args: dict[str, Any], num_classes: int, shape: InputShape) -> nn.Module:
    params = list(inspect.signature(info.builder).parameters.values())[2:]
    takes = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if not any(p.kind is p.VAR_KEYWORD for p in params):
        unknown = sorted(set(args) - set(takes))
        if unknown:
            listed = ", ".join(map(repr, unknown[:5])) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
            raise FieldError(
                ("model", "args"),
                f"model {info.name!r} does not take {listed} (it takes: {', '.join(takes) or 'no arguments'})",
            )
    try:
        return info.builder(num_classes, shape, **args)
    except (TypeError, ValueError) as exc:  # an argument of the wrong type or value
        raise FieldError(("model", "args"), f"model {info.name!r} rejects its args {_short(args)}: {exc}") from None


def _build_torchvision(name: str, args: dict[str, Any], num_classes: int, shape: InputShape) -> nn.Module:
    import torchvision.models

    if len(shape) != 3:
        raise FieldError(("model", "name"), f"torchvision model {name!r} takes images, and the data set gives text")
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
        raise FieldError(
            ("model", "args"), f"torchvision model {name!r} rejects its args {_short(args)}: {exc}"
        ) from None


def _check_forward(model: nn.Module, name: str, num_classes: int, shape: InputShape) -> None:
    try:
        x = probe_input(model, shape)
        with keep_rng(x.device), eval_mode(model), torch.no_grad():
            out = model(x)
    except (RuntimeError, ValueError, AssertionError, IndexError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise FieldError(("model", "name"), f"model {name!r} cannot take inputs of shape {shape}: {first}") from None
    if len(shape) == 1:
        logits = getattr(out, "logits", out)
        if not isinstance(logits, torch.Tensor) or logits.dim() != 3 or logits.shape[:2] != (1, shape[0]):
            got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(out).__name__
            raise FieldError(("model", "name"), f"model {name!r} gives {got} for a window, not (1, {shape[0]}, vocab)")
        if logits.shape[2] < num_classes:
            raise FieldError(
                ("model", "name"),
                f"model {name!r} has a vocabulary of {logits.shape[2]}, fewer than the tokenizer's {num_classes}",
            )
        return
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (1, num_classes):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise FieldError(("model", "name"), f"model {name!r} gives {got} for one example, not (1, {num_classes})")
