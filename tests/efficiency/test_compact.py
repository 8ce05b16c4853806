"""Physical compaction (prunebench.efficiency.compact): removes exactly the channels the model computes as
zero, keeps every output, and counts parameters and MACs as a reader would by hand."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from prunebench.efficiency import CompactionError, compact
from prunebench.models import channel_parameters
from prunebench.models.cifar import CifarResNet
from prunebench.run.measurement.measure import scattered_zeros


class Tiny(nn.Module):
    """conv 1->4 (3x3, pad 1) + BN + ReLU, conv 4->6 (3x3, pad 1) + BN + ReLU, global average, linear 6->3."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4)
        self.conv2, self.bn2 = nn.Conv2d(4, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6)
        self.fc = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))))
        return self.fc(x.mean((2, 3)))


def randomized(model: nn.Module) -> nn.Module:
    """Non-trivial BatchNorm statistics, so a channel that is not zero would show."""
    torch.manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    return model.eval()


def prune_filters(model: nn.Module, conv: str, filters: list[int], *, with_channel: bool = True) -> None:
    """Zero `filters` of `conv`, and (as the engine does for a filter method) the entries of their channel."""
    modules, params = dict(model.named_modules()), dict(model.named_parameters())
    with torch.no_grad():
        modules[conv].weight[filters] = 0
        if with_channel:
            for name in channel_parameters(model, (1, 8, 8) if isinstance(model, Tiny) else (3, 32, 32))[conv]:
                params[name][filters] = 0


def test_counts_match_a_hand_count_and_outputs_stay() -> None:
    model = randomized(Tiny())
    prune_filters(model, "conv1", [0, 3])
    prune_filters(model, "conv2", [1, 2, 5])
    batch = torch.randn(16, 1, 8, 8)
    out = compact(model, batch)
    small = out.model
    assert (small.conv1.out_channels, small.conv2.in_channels, small.conv2.out_channels) == (2, 2, 3)
    assert small.bn1.num_features == 2 and small.bn2.num_features == 3 and small.fc.in_features == 3
    # By hand, on 8x8: conv1 2x8x8 outputs x 1x9 = 1152; conv2 3x8x8 x 2x9 = 3456; fc 3x3 = 9.
    assert out.macs == 1152 + 3456 + 9
    # conv1 2x9, bn1 2x2, conv2 3x2x9, bn2 3x2, fc 3x3 + 3.
    assert out.params == 18 + 4 + 54 + 6 + 12
    assert out.channels_removed == 5
    assert out.max_abs_diff < 1e-5
    with torch.no_grad():
        assert torch.allclose(small(batch), model(batch), atol=1e-5)
    assert model.conv1.out_channels == 4  # the measured model itself is left as it was


def test_the_input_channels_removed_with_a_channel_are_reported_and_their_zeros_are_structured() -> None:
    model = randomized(Tiny())
    prune_filters(model, "conv1", [0, 3])
    with torch.no_grad():
        model.conv2.weight[:, [0, 3]] = 0  # what a channel method's masks zero with the filters
    out = compact(model, torch.randn(4, 1, 8, 8))
    assert out.inputs_removed == {"conv2": [0, 3]}
    params = {n: p for n, p in model.named_parameters() if n.endswith("weight") and p.dim() > 1}
    assert scattered_zeros(params, out.inputs_removed) == {}
    with torch.no_grad():
        model.conv2.weight[:, 1] = 0  # an input channel whose channel stays: zeros compaction does not remove
        model.fc.weight[0, 2] = 0
    assert scattered_zeros(params, out.inputs_removed) == {"conv2.weight": 6 * 9, "fc.weight": 1}
    assert scattered_zeros(params, {}) == {"conv2.weight": 3 * 6 * 9, "fc.weight": 1}


def test_a_channel_that_passes_a_batchnorm_shift_is_kept() -> None:
    model = randomized(Tiny())
    prune_filters(model, "conv1", [0, 3], with_channel=False)  # the filters are zero; their BN still shifts
    prune_filters(model, "conv2", [4])
    out = compact(model, torch.randn(8, 1, 8, 8))
    assert out.model.conv1.out_channels == 4 and out.model.conv2.out_channels == 5
    assert out.channels_removed == 1 and out.max_abs_diff < 1e-5


def test_a_residual_channel_goes_only_when_every_coupled_layer_is_zero() -> None:
    model = randomized(CifarResNet(20, 3, 10))
    prune_filters(model, "blocks.0.conv1", [0, 1, 2, 3])  # inside the block: free to go
    prune_filters(model, "blocks.1.conv2", [5])  # channel 5 of stage 1 is also written by the stem and blocks 0, 2
    batch = torch.randn(4, 3, 32, 32)
    out = compact(model, batch)
    assert out.model.blocks[0].conv1.out_channels == 12 and out.model.blocks[0].conv2.in_channels == 12
    assert out.model.blocks[1].conv2.out_channels == 16 and out.channels_removed == 4
    assert out.max_abs_diff < 1e-4

    for conv in ("conv", "blocks.0.conv2", "blocks.2.conv2"):  # now every layer writing channel 5 is zero
        prune_filters(model, conv, [5])
    both = compact(model, batch)
    assert both.channels_removed == 5 and both.model.blocks[1].conv2.out_channels == 15
    assert both.model.blocks[3].conv1.in_channels == 15 and both.max_abs_diff < 1e-4


def test_the_classifier_keeps_its_classes() -> None:
    model = randomized(Tiny())
    with torch.no_grad():
        model.fc.weight[1] = 0
        model.fc.bias[1] = 0
    assert compact(model, torch.randn(2, 1, 8, 8)).model.fc.out_features == 3


class NoGrad(Tiny):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return super().forward(x)


def test_a_model_the_graph_cannot_trace_is_one_line() -> None:
    with pytest.raises(CompactionError, match=r"^Torch-Pruning cannot trace the model \(") as caught:
        compact(randomized(NoGrad()), torch.randn(2, 1, 8, 8))
    assert "\n" not in str(caught.value)


class ShiftsZero(Tiny):
    """sigmoid(0) is 0.5: a zero channel does not stay zero, so removing it would change the outputs."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.sigmoid(self.bn1(self.conv1(x)))
        return self.fc(torch.relu(self.bn2(self.conv2(x))).mean((2, 3)))


def test_a_compaction_that_would_change_the_outputs_is_refused() -> None:
    model = randomized(ShiftsZero())
    prune_filters(model, "conv1", [0, 1])
    with pytest.raises(CompactionError, match="changed the outputs by up to"):
        compact(model, torch.randn(8, 1, 8, 8))
