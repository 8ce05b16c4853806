"""Small architectures for 8x8 digits and 28x28 MNIST-likes: a narrow CNN and LeNet-300-100."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from prunebench.models.blocks import conv_bn_relu, init_weights, positive, scaled
from prunebench.models.probe import InputShape
from prunebench.models.registry import register_model


class SmallCNN(nn.Module):
    """Three 3x3 conv-BN-ReLU layers, one 2x2 max pool, global average pooling, a linear classifier."""

    def __init__(self, in_channels: int, num_classes: int, width: float = 1.0) -> None:
        super().__init__()
        c1, c2 = scaled(32, width), scaled(64, width)
        self.features = nn.Sequential(
            conv_bn_relu(in_channels, c1), conv_bn_relu(c1, c2), nn.MaxPool2d(2), conv_bn_relu(c2, c2)
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c2, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


@register_model("small_cnn", "3-layer CNN with BN for 8x8 digits and 28x28 MNIST-likes; args: width (multiplier, 1)")
def small_cnn(num_classes: int, input_shape: InputShape, width: float = 1.0) -> nn.Module:
    positive("width", width)
    return SmallCNN(input_shape[0], num_classes, width)


class LeNet300100(nn.Module):
    """The fully connected LeNet-300-100 (LeCun et al. 1998), the pruning baseline of Han et al. 2015."""

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, 300)
        self.fc2 = nn.Linear(300, 100)
        self.fc3 = nn.Linear(100, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.fc1(torch.flatten(x, 1)))
        return self.fc3(F.relu(self.fc2(x)))


@register_model("lenet_300_100", "MLP 300-100 on the flattened input (LeCun 1998; Han et al. 2015)")
def lenet_300_100(num_classes: int, input_shape: InputShape) -> nn.Module:
    return LeNet300100(math.prod(input_shape), num_classes)
