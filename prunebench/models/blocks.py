"""Building blocks of the registered architectures: initialization, argument checks, conv-BN-ReLU."""

from __future__ import annotations

from typing import Any

from torch import nn


def init_weights(model: nn.Module) -> None:
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


def positive(name: str, value: Any, *, integer: bool = False) -> None:
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or value <= 0:
        kind = "positive integer" if integer else "positive number"
        raise ValueError(f"{name} must be a {kind}, got {value!r}")


def scaled(channels: int, width: float) -> int:
    return max(1, round(channels * width))


# Activations are not in-place anywhere: methods that score weights from activations capture
# module outputs with hooks, and an in-place ReLU would overwrite what they captured.
def conv_bn_relu(
    c_in: int, c_out: int, kernel: int = 3, stride: int = 1, groups: int = 1, act: type[nn.Module] = nn.ReLU
) -> nn.Sequential:
    conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False)
    return nn.Sequential(conv, nn.BatchNorm2d(c_out), act())
