"""Architectures for 32x32 images: CIFAR ResNets (He et al. 2016), Wide ResNets (Zagoruyko & Komodakis 2016), VGG
with BN, MobileNetV2."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from prunebench.models.blocks import conv_bn_relu, init_weights, positive, scaled
from prunebench.models.probe import InputShape
from prunebench.models.registry import Builder, register_model


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
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(F.relu(self.bn(self.conv(x))))
        return self.fc(torch.flatten(self.pool(x), 1))


def _cifar_resnet_builder(depth: int) -> Builder:
    def build(num_classes: int, input_shape: InputShape, width: int = 16) -> nn.Module:
        positive("width", width, integer=True)
        return CifarResNet(depth, input_shape[0], num_classes, width)

    return build


for _depth in (20, 32, 44, 56, 110):
    register_model(
        f"cifar_resnet{_depth}",
        f"CIFAR ResNet-{_depth} (He et al. 2016; OpenLTH), projection shortcuts; args: width (base channels, 16)",
    )(_cifar_resnet_builder(_depth))


class WideBasicBlock(nn.Module):
    """Pre-activation basic block of a Wide ResNet: BN-ReLU-conv3x3 (stride), BN-ReLU-dropout-conv3x3. Where the
    shape changes the shortcut is a 1x1 convolution of the pre-activated input (BN-ReLU of x), otherwise x itself,
    as in the authors' code (szagoruyko/wide-residual-networks, pytorch/resnet.py) and RigL's reproduction
    (varun19299/rigl-reproducibility, models/wide_resnet.py)."""

    def __init__(self, c_in: int, c_out: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        # No module (and no random draw) without dropout, so that dropout 0 trains exactly as a block without it.
        self.dropout: nn.Module = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.shortcut = None
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = F.relu(self.bn1(x))
        out = self.conv2(self.dropout(F.relu(self.bn2(self.conv1(pre)))))
        return out + (x if self.shortcut is None else self.shortcut(pre))


class CifarWideResNet(nn.Module):
    """WRN-depth-widen for 32x32 images (Zagoruyko & Komodakis 2016): a 3x3 conv to 16 channels, three groups of
    (depth - 4) / 6 pre-activation blocks of 16k, 32k and 64k channels (strides 1, 2, 2), a final BN-ReLU, global
    average pooling and a linear classifier."""

    def __init__(self, depth: int, widen: int, in_channels: int, num_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        if depth < 10 or (depth - 4) % 6:
            raise ValueError(f"a Wide ResNet's depth is 6n+4 (10, 16, 22, 28, 40), got {depth}")
        blocks_per_group = (depth - 4) // 6
        self.conv = nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)
        blocks: list[nn.Module] = []
        c_in = 16
        for group, c_out in enumerate((16 * widen, 32 * widen, 64 * widen)):
            for index in range(blocks_per_group):
                stride = 2 if group > 0 and index == 0 else 1
                blocks.append(WideBasicBlock(c_in, c_out, stride, dropout))
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(c_in)
        self.pool = nn.AdaptiveAvgPool2d(1)  # 8x8 -> 1x1 on 32x32 inputs, as the authors' avg_pool2d(8)
        self.fc = nn.Linear(c_in, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn(self.blocks(self.conv(x))))
        return self.fc(torch.flatten(self.pool(x), 1))


def _dropout(value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"dropout must be a probability in [0, 1), got {value!r}")


@register_model(
    "cifar_wrn",
    "CIFAR Wide ResNet WRN-depth-widen (Zagoruyko & Komodakis 2016), pre-activation blocks; args: depth (6n+4, 22), "
    "widen (k, 2), dropout (between a block's convolutions, 0)",
)
def cifar_wrn(
    num_classes: int, input_shape: InputShape, depth: int = 22, widen: int = 2, dropout: float = 0.0
) -> nn.Module:
    positive("depth", depth, integer=True)
    positive("widen", widen, integer=True)
    _dropout(dropout)
    return CifarWideResNet(depth, widen, input_shape[0], num_classes, dropout)


@register_model(
    "cifar_wrn22_2",
    "CIFAR WRN-22-2 (Zagoruyko & Komodakis 2016; RigL's CIFAR-10 model), cifar_wrn at depth 22, widen 2; args: "
    "dropout (0)",
)
def cifar_wrn22_2(num_classes: int, input_shape: InputShape, dropout: float = 0.0) -> nn.Module:
    return cifar_wrn(num_classes, input_shape, depth=22, widen=2, dropout=dropout)


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
                c_out = scaled(int(item), width)
                layers.append(conv_bn_relu(c_in, c_out))
                c_in = c_out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)  # 2x2 -> 1x1 on 32x32 inputs, as OpenLTH's AvgPool2d(2)
        self.classifier = nn.Linear(c_in, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


def _cifar_vgg_builder(depth: int) -> Builder:
    def build(num_classes: int, input_shape: InputShape, width: float = 1.0) -> nn.Module:
        positive("width", width)
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
            layers.append(conv_bn_relu(c_in, hidden, 1, act=nn.ReLU6))
        layers += [
            conv_bn_relu(hidden, hidden, 3, stride=stride, groups=hidden, act=nn.ReLU6),  # depthwise
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
        layers: list[nn.Module] = [conv_bn_relu(in_channels, c_in, 3, act=nn.ReLU6)]
        for expansion, channels, blocks, stride in _MOBILENETV2_CIFAR:
            c_out = _make_divisible(channels * width)
            for index in range(blocks):
                layers.append(InvertedResidual(c_in, c_out, stride if index == 0 else 1, expansion))
                c_in = c_out
        layers.append(conv_bn_relu(c_in, last, 1, act=nn.ReLU6))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(last, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


@register_model("cifar_mobilenetv2", "MobileNetV2 for 32x32 inputs (stride-1 stem); args: width (multiplier, 1)")
def cifar_mobilenetv2(num_classes: int, input_shape: InputShape, width: float = 1.0) -> nn.Module:
    positive("width", width)
    return CifarMobileNetV2(input_shape[0], num_classes, width)
