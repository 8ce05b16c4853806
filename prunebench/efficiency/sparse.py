"""Sparse kernels, where the hardware has them: 2:4 semi-structured sparsity on CUDA devices of compute
capability 8.0 and later (NVIDIA Ampere's sparse tensor cores; Mishra et al. 2021, "Accelerating sparse deep
neural networks"), through `torch.sparse.to_sparse_semi_structured`.

torch supports it for linear layers' weights in half precision only; a model whose 2:4 layers are
convolutions, or a device without the hardware, has no sparse kernel, and the record says so.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

MIN_CAPABILITY = (8, 0)


def is_two_four(weight: Tensor) -> bool:
    """Every group of 4 consecutive weights along the input dimension has at least 2 zeros."""
    if weight.dim() != 2 or weight.shape[1] % 4:
        return False
    return bool(((weight.reshape(weight.shape[0], -1, 4) == 0).sum(-1) >= 2).all())


def semi_structured(model: nn.Module, device: torch.device) -> tuple[nn.Module | None, str]:
    """(a copy of `model` whose 2:4 linear layers use the sparse kernel, in float16, what was converted), or
    (None, why no sparse kernel is available here)."""
    if device.type != "cuda":
        return None, f"no sparse kernel on {device.type}: semi-structured 2:4 kernels need a CUDA device"
    capability = torch.cuda.get_device_capability(device)
    if capability < MIN_CAPABILITY:
        return None, (
            f"no sparse kernel: {torch.cuda.get_device_name(device)} has compute capability "
            f"{capability[0]}.{capability[1]}; semi-structured sparsity needs 8.0 or later"
        )
    to_sparse = getattr(torch.sparse, "to_sparse_semi_structured", None)
    if to_sparse is None:
        return None, f"no sparse kernel: torch {torch.__version__} has no to_sparse_semi_structured"
    converted = copy.deepcopy(model).half().eval()
    names = [
        name
        for name, m in converted.named_modules()
        if isinstance(m, nn.Linear) and is_two_four(m.weight) and m.out_features % 32 == 0 and m.in_features % 64 == 0
    ]
    if not names:
        return None, "no sparse kernel: no linear layer holds a 2:4 pattern in a shape the kernel takes"
    modules = dict(converted.named_modules())
    try:
        for name in names:
            layer = modules[name]
            layer.weight = nn.Parameter(to_sparse(layer.weight.detach()), requires_grad=False)
    except (RuntimeError, ValueError) as exc:
        return None, f"no sparse kernel: torch refused the conversion ({str(exc).splitlines()[0][:200]})"
    return converted, f"semi-structured 2:4 in {len(names)} linear layer(s), float16"
