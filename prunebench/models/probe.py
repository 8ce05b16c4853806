"""Probe passes: one zero input through a model, without moving the RNG or leaving a module's mode changed."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

InputShape = tuple[int, ...]  # (channels, height, width) of an image; (seqlen,) of a window of token ids


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode inside; every submodule's own flag restored after (modes may be mixed)."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


def keep_rng(device: torch.device) -> contextlib.AbstractContextManager[None]:
    """Probe passes must not move the RNG stream the engine seeded. Eval-mode torchvision and
    registered models draw nothing; a user's model might."""
    return torch.random.fork_rng(devices=[device] if device.type == "cuda" else [])


def probe_input(model: nn.Module, shape: InputShape) -> torch.Tensor:
    """One example of zeros: an image in the model's floating type, or a window of token ids (token 0)."""
    tensors = list(itertools.chain(model.parameters(), model.buffers()))
    device = tensors[0].device if tensors else torch.device("cpu")
    if len(shape) == 1:
        return torch.zeros(1, *shape, device=device, dtype=torch.long)
    dtype = next((t.dtype for t in tensors if t.is_floating_point()), torch.get_default_dtype())
    # Batch of one: every leading dimension a layer sees (windows, tokens, ...) is then per example.
    return torch.zeros(1, *shape, device=device, dtype=dtype)
