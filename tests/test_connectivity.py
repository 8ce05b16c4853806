"""Effective sparsity and disconnection (prunebench.connectivity, Vysogorets & Kempe 2023) on networks built by hand,
whose effective weights are known: a unit left without inputs or outputs, a layer cut off, a residual block whose
convolutions are dead while its shortcut carries the network, max pooling on the all-ones input's ties."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from prunebench.connectivity import NotPathProduct, blocks_of, connectivity
from prunebench.run.measurement.connectivity import LANGUAGE_MODEL, measure_connectivity
from prunebench.testing import seeded_model


def mlp() -> nn.Sequential:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 2))
    with torch.no_grad():
        for m in net:
            if isinstance(m, nn.Linear):
                m.weight.add_(torch.sign(m.weight) * 0.1)  # no weight near 0
                m.bias.fill_(1.0)  # a bias is no path from the input: it must not keep a unit alive
    return net


NAMES = ["0.weight", "2.weight", "4.weight"]


def per_layer(net: nn.Module, names: list[str]) -> dict[str, tuple[int, int]]:
    return {n: (net.get_parameter(n).numel(), int((net.get_parameter(n) == 0).sum())) for n in names}


def test_a_dense_network_is_all_effective_and_its_copy_is_never_touched() -> None:
    net = mlp()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    found = connectivity(net, NAMES, (4,))
    assert not found.disconnected and found.reached == 2
    assert all(bool(e.all()) for e in found.effective.values())
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_a_hidden_unit_without_outputs_or_inputs_makes_the_weights_into_or_out_of_it_ineffective() -> None:
    net = mlp()
    with torch.no_grad():
        net[2].weight[:, 0] = 0  # hidden unit 0 of the first layer feeds nothing: its 4 incoming weights are dead
        net[2].weight[1, :] = 0  # hidden unit 1 of the second layer gets nothing (its bias is no path): 2 outgoing
    found = connectivity(net, NAMES, (4,))
    assert not found.disconnected
    dead_in = ~found.effective["0.weight"]
    assert dead_in[0].all() and not dead_in[1:].any()
    dead_out = ~found.effective["4.weight"]
    assert dead_out[:, 1].all() and not dead_out[:, [0, 2]].any()
    middle = found.effective["2.weight"]
    assert not middle[:, 0].any() and not middle[1].any() and int(middle.sum()) == 4  # the 2x2 still on paths
    connected = measure_connectivity(net, per_layer(net, NAMES), (4,), "classification")
    assert connected.effective_zeros == {"0.weight": 4, "2.weight": 5, "4.weight": 2}
    assert connected.effective(per_layer(net, NAMES)) == pytest.approx(11 / 27)


def test_a_layer_cut_off_disconnects_the_network_and_every_weight_is_ineffective() -> None:
    net = mlp()
    with torch.no_grad():
        net[2].weight.zero_()
    layers = per_layer(net, NAMES)
    connected = measure_connectivity(net, layers, (4,), "classification")
    assert connected.record.disconnected is True and connected.record.collapsed == ["2.weight"]
    assert connected.record.cut_blocks == []  # a disconnection, not a block cut around which the network lives
    assert connected.effective(layers) == 1.0


class Residual(nn.Module):
    """A stem convolution, one residual block (two convolutions, BatchNorm, an identity shortcut), a classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1, bias=False)
        self.block = nn.Sequential(
            nn.Conv2d(4, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1)
        )
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.stem(x))
        x = F.relu(self.block(x) + x)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


RESIDUAL = ["stem.weight", "block.0.weight", "block.3.weight", "fc.weight"]


def test_a_dead_residual_branch_is_a_cut_block_not_a_disconnection() -> None:
    torch.manual_seed(0)
    net = Residual().eval()
    with torch.no_grad():
        net.block[0].weight.zero_()  # the branch's first conv: its second conv's kept weights reach nothing
    layers = per_layer(net, RESIDUAL)
    connected = measure_connectivity(net, layers, (1, 6, 6), "classification")
    record = connected.record
    assert record.disconnected is False  # the shortcut keeps the output reachable
    assert record.collapsed == ["block.0.weight"] and record.cut_off == ["block.3.weight"]
    assert record.cut_blocks == ["block"]
    assert connected.effective_zeros == {"stem.weight": 0, "block.0.weight": 144, "block.3.weight": 144, "fc.weight": 0}


def test_max_pooling_ties_on_the_all_ones_input_cut_no_path() -> None:
    """Every conv output is 1 on the all-ones input: max pooling's gradient would reach its first position only,
    where a padded 2x2 kernel's corner sees one input, and three of its four weights would look dead."""

    class Pooled(nn.Module):
        def __init__(self, functional: bool) -> None:
            super().__init__()
            self.functional = functional
            self.conv = nn.Conv2d(1, 1, 2, padding=1, bias=False)
            self.pool = nn.MaxPool2d(3)
            self.fc = nn.Linear(1, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.conv(x)
            x = F.max_pool2d(x, 3) if self.functional else self.pool(x)
            return self.fc(torch.flatten(x, 1))

    for functional in (False, True):
        found = connectivity(Pooled(functional), ["conv.weight", "fc.weight"], (1, 2, 2))
        assert bool(found.effective["conv.weight"].all()), functional


def test_a_registered_cnn_dense_is_all_effective_and_blocks_are_residual_blocks() -> None:
    """BatchNorm is the identity: its shifts and statistics (drawn as a trained model's) would cut some channels."""
    model = seeded_model("cifar_resnet20", (3, 8, 8), width=4)
    names = [n for n, p in model.named_parameters() if n.endswith("weight") and p.dim() > 1]
    found = connectivity(model, names, (3, 8, 8))
    assert all(bool(e.all()) for e in found.effective.values())
    blocks = blocks_of(names)
    assert blocks["blocks.0.conv1.weight"] == blocks["blocks.0.conv2.weight"] == "blocks.0"
    assert blocks["blocks.3.shortcut.0.weight"] == "blocks.3" and blocks["conv.weight"] == blocks["fc.weight"] == ""


def test_what_is_no_product_of_weights_along_paths_is_not_computed_and_says_why() -> None:
    gated = nn.Sequential(nn.Linear(4, 4), nn.Sigmoid(), nn.Linear(4, 2))
    with pytest.raises(NotPathProduct, match="Sigmoid"):
        connectivity(gated, ["0.weight", "2.weight"], (4,))
    net = mlp()
    record = measure_connectivity(net, per_layer(net, NAMES), (4,), "causal_lm").record
    assert record.not_computed == LANGUAGE_MODEL and record.disconnected is None
    assert measure_connectivity(
        gated, per_layer(gated, ["0.weight", "2.weight"]), (4,), "classification"
    ).record.not_computed
