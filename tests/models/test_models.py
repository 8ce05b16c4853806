"""The model registry and the per-layer MAC accounting of the budget ledger."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from prunebench.errors import FieldError
from prunebench.masks import prunable_parameters
from prunebench.models import (
    MODELS,
    ModelInfo,
    build_model,
    channel_parameters,
    layer_macs,
    model_names,
    other_macs,
    register_model,
)
from prunebench.protocol import ModelSpec, PrunableSpec


def build(name: str, shape: tuple[int, int, int] = (3, 32, 32), classes: int = 10, **args: Any) -> nn.Module:
    return build_model(ModelSpec(name=name, args=args), num_classes=classes, input_shape=shape)


def params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ---- registry ---------------------------------------------------------------------------------
EXPECTED = {
    "small_cnn",
    "lenet_300_100",
    "cifar_resnet20",
    "cifar_resnet32",
    "cifar_resnet44",
    "cifar_resnet56",
    "cifar_resnet110",
    "cifar_wrn",
    "cifar_wrn22_2",
    "cifar_vgg11_bn",
    "cifar_vgg13_bn",
    "cifar_vgg16_bn",
    "cifar_vgg19_bn",
    "cifar_mobilenetv2",
}
CASES = [(name, shape) for name in sorted(EXPECTED) for shape in [(3, 32, 32), (1, 28, 28)]]
CASES += [("small_cnn", (1, 8, 8)), ("lenet_300_100", (1, 8, 8))]


TEXT_MODELS = {"tiny_llama", "hf_causal_lm"}  # causal LMs of token windows (tests/language)


def test_registry_lists_the_models() -> None:
    assert set(MODELS) == EXPECTED | TEXT_MODELS
    assert {name for name, info in MODELS.items() if info.text} == TEXT_MODELS
    assert all(info.name == name and info.description for name, info in MODELS.items())
    names = model_names()
    assert names[: len(MODELS)] == list(MODELS)
    assert {"resnet50", "resnet18", "mobilenet_v2", "vgg16_bn"} <= set(names)
    assert "fasterrcnn_resnet50_fpn" not in names  # classification models only
    assert len(names) == len(set(names))


@pytest.mark.parametrize(("name", "shape"), CASES)
def test_registered_model_builds_and_classifies(name: str, shape: tuple[int, int, int]) -> None:
    model = build(name, shape, classes=7)
    x = torch.randn(2, *shape)
    assert model.training  # built models start in training mode, as nn.Module does
    assert model(x).shape == (2, 7)
    model.eval()
    with torch.no_grad():
        assert model(x).shape == (2, 7)
    macs = layer_macs(model, shape)
    assert macs and all(v > 0 for v in macs.values())
    assert other_macs(model, shape) == 0  # all of a CNN's or MLP's multiplies are in its layers


def test_cifar_resnet_parameter_counts_match_openlth() -> None:
    assert params(build("cifar_resnet20")) == 272_474
    assert params(build("cifar_resnet56")) == 855_770
    assert params(build("cifar_resnet20", width=32)) > 4 * 272_474 * 0.9  # width is the base channel count


# WRN-22-2 counted by hand from the architecture of RigL's reproduction (varun19299/rigl-reproducibility,
# models/wide_resnet.py, built there as WideResNet(22, 2, 10, 0.3)) and of the authors' code
# (szagoruyko/wide-residual-networks, pytorch/resnet.py): 3x3 convolutions and 1x1 shortcuts without bias, two
# BatchNorms (weight and bias) a block, a final BatchNorm, a linear classifier with bias. (Checked once beyond the
# count: the reproduction's state dict, loaded in order into cifar_wrn22_2, gives its log-probabilities to 2.4e-7.)
# Per group of 3 blocks:
def _wrn_group(c_in: int, c: int) -> int:
    first = 2 * c_in + 9 * c_in * c + 2 * c + 9 * c * c + c_in * c  # bn1, conv1, bn2, conv2, 1x1 shortcut
    return first + 2 * (2 * c + 9 * c * c + 2 * c + 9 * c * c)  # two blocks of c -> c, identity shortcuts


# The stem (3 -> 16, 3x3), the groups of 16k, 32k and 64k channels, the final BatchNorm, the classifier.
WRN_22_2_PARAMETERS = 9 * 3 * 16 + _wrn_group(16, 32) + _wrn_group(32, 64) + _wrn_group(64, 128) + 2 * 128 + 1290


def test_wrn22_2_matches_the_reference() -> None:
    assert WRN_22_2_PARAMETERS == 1_079_642  # "about 1.1 M"
    model = build("cifar_wrn22_2")
    assert params(model) == WRN_22_2_PARAMETERS
    assert params(build("cifar_wrn", depth=22, widen=2)) == params(build("cifar_wrn")) == WRN_22_2_PARAMETERS
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    convs = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 1 + 9 * 2 + 3  # the stem, two 3x3 a block, a 1x1 shortcut where each group starts
    shortcuts = {n: (m.in_channels, m.out_channels, m.stride) for n, m in convs if m.kernel_size == (1, 1)}
    assert shortcuts == {
        "blocks.0.shortcut": (16, 32, (1, 1)),  # 16 -> 16k channels: a projection even at stride 1
        "blocks.3.shortcut": (32, 64, (2, 2)),
        "blocks.6.shortcut": (64, 128, (2, 2)),
    }
    # Every convolution and the classifier are prunable by default, in the order they run.
    macs = layer_macs(model, (3, 32, 32))
    prunable = prunable_parameters(model, PrunableSpec(), macs)
    layers = [n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert sorted(prunable) == sorted(f"{n}.weight" for n in layers) and len(prunable) == 23
    assert next(iter(prunable)) == "conv.weight" and list(prunable)[-1] == "fc.weight"
    # 32x32 -> 8x8 before pooling; MACs by hand: 16 channels x 32x32 x 27 in the stem, 10 x 128 in the classifier.
    assert macs["conv"] == 16 * 32 * 32 * 27 and macs["fc"] == 1280
    assert macs["blocks.8.conv2"] == 128 * 8 * 8 * 128 * 9


def test_wrn_is_pre_activation() -> None:
    """A BatchNorm normalizes what a convolution reads: a block's bn2 follows its conv1, the first block's bn1 the
    stem; a block's output is the sum of its conv2 and its shortcut, which the next bn1 (or the final bn) reads as
    a sum, so channel_parameters ties no BatchNorm to a conv2 or a shortcut."""
    for widen in (1, 2):  # identity shortcut in the first block, or a projection
        model = build("cifar_wrn", depth=10, widen=widen)
        follows = channel_parameters(model, (3, 32, 32))
        assert follows == {
            "conv": ["blocks.0.bn1.weight", "blocks.0.bn1.bias"],
            **{f"blocks.{i}.conv1": [f"blocks.{i}.bn2.weight", f"blocks.{i}.bn2.bias"] for i in range(3)},
            "fc": ["fc.bias"],
        }


def test_wrn_dropout() -> None:
    assert not any(isinstance(m, nn.Dropout) for m in build("cifar_wrn22_2").modules())  # 0: no module, no draws
    model = build("cifar_wrn22_2", dropout=0.3)
    dropouts = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    assert len(dropouts) == 9 and all(m.p == 0.3 for m in dropouts)  # one between the convolutions of each block
    x = torch.randn(2, 3, 32, 32)
    assert not torch.equal(model(x), model(x))  # training: dropped at random
    model.eval()
    assert torch.equal(model(x), model(x))


def test_models_adapt_to_the_channel_count() -> None:
    for name in ("cifar_resnet20", "cifar_wrn22_2", "cifar_vgg11_bn", "cifar_mobilenetv2", "small_cnn"):
        first = next(m for m in build(name, (5, 32, 32)).modules() if isinstance(m, nn.Conv2d))
        assert first.in_channels == 5, name
    assert build("lenet_300_100", (1, 28, 28)).fc1.in_features == 784


def test_cifar_model_structure() -> None:
    resnet = build("cifar_resnet20")
    convs = [m for m in resnet.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 19 + 2  # 19 3x3 convs and the two projection shortcuts
    assert {c.out_channels for c in convs} == {16, 32, 64}
    vgg = build("cifar_vgg16_bn")
    assert sum(isinstance(m, nn.Conv2d) for m in vgg.modules()) == 13
    assert next(m for m in vgg.modules() if isinstance(m, nn.Linear)).in_features == 512
    mobilenet = build("cifar_mobilenetv2")
    depthwise = [m for m in mobilenet.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    assert len(depthwise) == 17 and all(m.groups == m.in_channels == m.out_channels for m in depthwise)
    # Stride 1 in the stem and the second stage: 32x32 inputs end at 4x4 before pooling.
    assert mobilenet.features(torch.zeros(1, 3, 32, 32)).shape[-2:] == (4, 4)


def test_small_cnn_width() -> None:
    assert build("small_cnn", (1, 8, 8), width=2).classifier.in_features == 128


def test_torchvision_models_build_from_scratch() -> None:
    model = build("resnet18", classes=3)
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 3)
    assert model.fc.out_features == 3
    assert build("mobilenet_v2", width_mult=0.5)(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_googlenet_gives_logits_in_training() -> None:
    model = build("googlenet", (3, 64, 64))
    model.train()
    assert isinstance(model(torch.zeros(2, 3, 64, 64)), torch.Tensor)  # no auxiliary-head tuple


# ---- errors -----------------------------------------------------------------------------------
def test_unknown_model_suggests_a_close_name() -> None:
    with pytest.raises(FieldError) as info:
        build("resnet21")
    assert info.value.loc == ("model", "name")
    assert "unknown model 'resnet21'" in info.value.message
    assert "did you mean 'resnet18'" in info.value.message
    with pytest.raises(FieldError, match="did you mean 'cifar_resnet20'"):
        build("cifar_resnet_20")


@pytest.mark.parametrize(
    ("name", "args", "fragment"),
    [
        ("cifar_resnet20", {"depth": 3}, "does not take 'depth' (it takes: width)"),
        ("cifar_resnet20", {"width": "wide"}, "width must be a positive integer"),
        ("cifar_resnet20", {"width": 0}, "width must be a positive integer"),
        ("cifar_wrn", {"depth": 20}, "depth is 6n+4"),
        ("cifar_wrn", {"widen": 1.5}, "widen must be a positive integer"),
        ("cifar_wrn22_2", {"dropout": 1.0}, "dropout must be a probability"),
        ("cifar_wrn22_2", {"depth": 28}, "does not take 'depth' (it takes: dropout)"),
        ("lenet_300_100", {"width": 2}, "it takes: no arguments"),
        ("small_cnn", {"num_classes": 3}, "comes from the data set"),
        ("resnet18", {"depth": 3}, "unexpected keyword argument 'depth'"),
        ("resnet18", {"weights": "DEFAULT"}, "never loads pretrained weights"),
    ],
)
def test_bad_args_are_field_errors(name: str, args: dict[str, Any], fragment: str) -> None:
    with pytest.raises(FieldError) as info:
        build(name, **args)
    assert info.value.loc == ("model", "args")
    assert fragment in info.value.message


def test_shapes_a_model_cannot_take_are_field_errors() -> None:
    with pytest.raises(FieldError) as info:
        build("resnet18", (1, 28, 28))
    assert info.value.loc == ("model", "name")
    assert "3-channel" in info.value.message
    with pytest.raises(FieldError) as info:
        build("cifar_vgg11_bn", (1, 8, 8))  # four max pools do not fit in 8x8
    assert info.value.loc == ("model", "name")
    assert "(1, 8, 8)" in info.value.message


# ---- initialization ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["cifar_resnet20", "cifar_wrn22_2", "small_cnn", "resnet18"])
def test_same_seed_same_init(name: str) -> None:
    def init(seed: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        torch.manual_seed(seed)
        model = build(name)
        return model.state_dict(), torch.rand(3)  # what the engine draws next

    (a, after_a), (b, after_b), (c, _) = init(0), init(0), init(1)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert torch.equal(after_a, after_b)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())


def test_convs_get_kaiming_normal_init() -> None:
    torch.manual_seed(0)
    conv = build("cifar_vgg16_bn").features[1][0]  # a 64->64 3x3 conv: fan_out 576
    assert conv.weight.std().item() == pytest.approx((2 / 576) ** 0.5, rel=0.05)


class Noisy(nn.Module):
    """Draws random numbers even in eval mode, as a user's model might."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1) + torch.rand_like(x.flatten(1)))


def test_probe_passes_leave_the_rng_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(MODELS, "noisy", ModelInfo("noisy", "test", lambda num_classes, input_shape: Noisy()))
    torch.manual_seed(0)
    Noisy()
    expected = torch.rand(4)
    torch.manual_seed(0)
    model = build("noisy", (1, 2, 2), classes=2)
    layer_macs(model, (1, 2, 2))
    other_macs(model, (1, 2, 2))
    assert torch.equal(torch.rand(4), expected)


def test_register_model() -> None:
    @register_model("test_mlp", "a test model")
    def test_mlp(num_classes: int, input_shape: tuple[int, int, int], hidden: int = 3) -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[0] * input_shape[1] * input_shape[2], num_classes))

    try:
        assert "test_mlp" in model_names() and MODELS["test_mlp"].builder is test_mlp
        assert build("test_mlp", (1, 2, 2), classes=3, hidden=4)(torch.zeros(1, 1, 2, 2)).shape == (1, 3)
        with pytest.raises(ValueError, match="registered twice"):
            register_model("test_mlp", "again")(test_mlp)
    finally:
        del MODELS["test_mlp"]


# ---- layer_macs -------------------------------------------------------------------------------
def test_layer_macs_hand_computed() -> None:
    model = nn.Sequential(
        nn.Conv2d(4, 6, (3, 5), stride=(2, 1), padding=(1, 2), groups=2),  # 7x9 -> 4x9
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(6 * 4 * 9, 5),
    )
    assert layer_macs(model, (4, 7, 9)) == {"0": 4 * 9 * 6 * (4 // 2) * 3 * 5, "3": 216 * 5}


class Tokens(nn.Module):
    """Registers the classifier before the layers that run first, and runs `shared` twice."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(7, 2)
        self.shared = nn.Linear(7, 7)
        self.embed = nn.Conv2d(1, 7, 1)
        self.seen: list[tuple[bool, bool]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append((self.training, torch.is_grad_enabled()))
        tokens = self.embed(x).flatten(2).transpose(1, 2)  # (N, 5, 7): 5 tokens per example
        tokens = self.shared(torch.relu(self.shared(tokens)))
        return self.head(tokens.mean(1))


def test_layer_macs_follow_execution_order_and_sum_repeated_calls() -> None:
    model = Tokens()
    macs = layer_macs(model, (1, 1, 5))
    assert list(macs) == ["embed", "shared", "head"]
    assert [name for name, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))] == [
        "head",
        "shared",
        "embed",
    ]
    assert macs == {"embed": 5 * 7 * 1, "shared": 2 * 5 * 7 * 7, "head": 7 * 2}


def test_layer_macs_runs_in_eval_without_grad_and_restores_modes(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every hook it registers is removed again: count registrations and removals through the public API.
    registered, removed = [], []
    register, remove = nn.Module.register_forward_hook, torch.utils.hooks.RemovableHandle.remove

    def spy_register(module: nn.Module, *args: Any, **kwargs: Any) -> Any:
        handle = register(module, *args, **kwargs)
        registered.append(handle)
        return handle

    def spy_remove(handle: Any) -> None:
        removed.append(handle)
        remove(handle)

    monkeypatch.setattr(nn.Module, "register_forward_hook", spy_register)
    monkeypatch.setattr(torch.utils.hooks.RemovableHandle, "remove", spy_remove)
    model = Tokens()
    model.train()
    model.embed.eval()  # mixed modes (a frozen part) must come back as they were
    layer_macs(model, (1, 1, 5))
    assert model.seen == [(False, False)]
    assert model.training and model.head.training and not model.embed.training
    model.eval()
    layer_macs(model, (1, 1, 5))
    assert not any(m.training for m in model.modules())
    assert registered and set(map(id, registered)) <= set(map(id, removed))  # every hook removed


def test_layer_macs_leaves_batchnorm_statistics_alone() -> None:
    model = build("cifar_resnet20")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    layer_macs(model, (3, 32, 32))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_layer_macs_uses_the_model_dtype() -> None:
    model = nn.Sequential(nn.Linear(3, 2)).double()
    assert layer_macs(model, (1, 1, 3)) == {"0": 6}


def test_layer_macs_of_resnet50() -> None:
    model = build("resnet50", (3, 224, 224), classes=1000)
    macs = layer_macs(model, (3, 224, 224))
    assert sum(macs.values()) == pytest.approx(4.09e9, rel=0.02)
    assert next(iter(macs)) == "conv1" and list(macs)[-1] == "fc"
    assert macs["fc"] == 2048 * 1000
    assert len(macs) == sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in model.modules())


# ---- attention: weights applied functionally ----------------------------------------------------
def test_vit_attention_projections_are_counted() -> None:
    from torchvision.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    vit = VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64)
    tokens, dim = 16 + 1, 32  # a class token besides the 4x4 patches
    macs = layer_macs(vit, (3, 32, 32))
    # nn.MultiheadAttention applies out_proj's weight with F.linear: its hook never fires.
    out_proj = "encoder.layers.encoder_layer_0.self_attention.out_proj"
    assert macs[out_proj] == tokens * dim * dim
    assert list(macs).index(out_proj) < list(macs).index("encoder.layers.encoder_layer_0.mlp.0")
    in_proj, attention = tokens * dim * 3 * dim, 2 * tokens * tokens * dim
    assert other_macs(vit, (3, 32, 32)) == 2 * (in_proj + attention)
    assert vit.training  # still in training mode after both


def test_swin_window_projections_are_counted() -> None:
    from torchvision.models.swin_transformer import SwinTransformer

    swin = SwinTransformer(patch_size=[4, 4], embed_dim=16, depths=[1, 1], num_heads=[2, 2], window_size=[7, 7])
    macs = layer_macs(swin, (3, 64, 64))
    # 16x16 patches padded to whole 7x7 windows: 21x21 tokens; then 8x8 padded to 14x14.
    assert macs["features.1.0.attn.qkv"] == 21 * 21 * 16 * 48
    assert macs["features.1.0.attn.proj"] == 21 * 21 * 16 * 16
    assert macs["features.3.0.attn.qkv"] == 14 * 14 * 32 * 96
    # Attention products: per 7x7 window, QK^T and AV of 49 tokens over the full channel width.
    expected_other = 2 * 49 * 49 * 16 * (21 * 21 // 49) + 2 * 49 * 49 * 32 * (14 * 14 // 49)
    assert other_macs(swin, (3, 64, 64)) == expected_other


def test_every_convolution_the_protocol_calls_prunable_is_counted() -> None:
    """1-d and 3-d convolutions are prunable (pruning.prunable.layer_types: conv): their MACs are counted too."""

    class Mixed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c1 = nn.Conv1d(2, 4, kernel_size=3, padding=1)  # on a (2, 8) signal
            self.c3 = nn.Conv3d(1, 2, kernel_size=(1, 3, 3), padding=(0, 1, 1))  # on a (1, 2, 4, 4) volume

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            n = x.shape[0]
            signal = self.c1(x.reshape(n, 2, 8))
            volume = self.c3(signal.reshape(n, 1, 2, 4, 4))
            return volume.flatten(1)

    macs = layer_macs(Mixed(), (1, 4, 4))
    # Conv1d: 4 out channels x 8 positions x (2 in x 3 taps); Conv3d: 2 x (2 x 4 x 4) outputs x (1 x 1 x 3 x 3).
    assert macs == {"c1": 4 * 8 * 2 * 3, "c3": 2 * 32 * 9}


@pytest.mark.parametrize(
    "name", ["cifar_resnet20", "cifar_wrn22_2", "vgg11", "mobilenet_v2", "vit_b_16", "swin_t", "convnext_tiny"]
)
def test_the_size_check_sees_every_tensor_the_model_has(name: str) -> None:
    # The size check builds the model on the meta device, skipping the in-place fills of its initializers (a
    # meta tensor has no values, and the first fill costs a second): what it counts must be the real model's.
    from prunebench.models.registry import MODELS, _build_registered, _build_torchvision, _NoValuesOnMeta

    shape = (3, 32, 32) if name.startswith("cifar") else (3, 224, 224)

    def construct() -> nn.Module:
        if name in MODELS:
            return _build_registered(MODELS[name], {}, 10, shape)
        return _build_torchvision(name, {}, 10, shape)

    real = construct()
    with torch.random.fork_rng(devices=[]), torch.device("meta"), _NoValuesOnMeta():
        meta = construct()
    assert all(t.is_meta for t in meta.parameters())
    tensors = [(n, t.shape) for n, t in [*real.named_parameters(), *real.named_buffers()]]
    assert [(n, t.shape) for n, t in [*meta.named_parameters(), *meta.named_buffers()]] == tensors
