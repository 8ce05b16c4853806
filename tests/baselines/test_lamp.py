"""LAMP against its authors' code, against Torch-Pruning's LAMPImportance where that applies, and the property that
names it: the layers' sparsities adapt so that no layer is emptied.

The reference is jaeho-lee/layer-adaptive-sparsity, `tools/pruners.py`. Below, `authors_scores` and
`authors_masks` restate its algorithm step by step (written here from a reading of it, in this project's terms):
`_normalize_scores` (the score), `_compute_lamp_amounts` (the global threshold turned into a count per layer)
and `prune_weights_lamp` / `prune_weights_l1predefined` (each layer pruned to its count by
`torch.nn.utils.prune.l1_unstructured`, which the test calls as they do). The weights are the seeded
initializations of `small_cnn` and `cifar_resnet20` (on digits' 1x8x8 input), every conv and linear weight
prunable, as in the authors' `get_weights`.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch_pruning as tp
from prunebench_baselines.lamp import LAMP, lamp_scores
from prunebench_baselines.magnitude import GlobalMagnitude
from torch import Tensor, nn
from torch.nn.utils import prune

from prunebench.data import DataBundle
from prunebench.methods import registered_methods
from prunebench.testing import digits, engine_for, pruning_context

MODELS = ["small_cnn", "cifar_resnet20"]


@pytest.fixture(scope="module")
def data() -> DataBundle:
    return digits()


def seeded_weights(data: DataBundle, model_name: str, seed: int = 0) -> dict[str, Tensor]:
    engine = engine_for(data, model_name=model_name, seed=seed)
    return {name: w.detach().clone() for name, w in pruning_context(engine, 0.5).weights().items()}


def lamp_masks(data: DataBundle, model_name: str, sparsity: float, seed: int = 0) -> dict[str, Tensor]:
    return LAMP().prune(pruning_context(engine_for(data, model_name=model_name, seed=seed), sparsity))


# ---- the authors' algorithm, restated ---------------------------------------------------------------------------
def authors_scores(squared: Tensor) -> Tensor:
    """`_normalize_scores(w ** 2)`: sort the squared weights ascending (torch.sort, not asked to be stable); the
    denominator of the i-th is the layer's total minus the running sum of those before it; scatter back. Their
    buffers are torch's default dtype (float32): on float32 weights these numerics are theirs; the buffers
    follow the input here so that a float64 run can be compared tightly (their code refuses float64 input)."""
    flat = squared.reshape(-1)
    ascending, where = torch.sort(flat)
    before = torch.zeros_like(ascending)
    before[1:] = torch.cumsum(ascending, 0)[:-1]
    normalized = ascending / (flat.sum() - before)
    out = torch.zeros_like(normalized)
    out[where] = normalized
    return out.view(squared.shape)


def authors_masks(weights: dict[str, Tensor], amount: float) -> dict[str, Tensor]:
    """`prune_weights_lamp(model, amount)` on an unpruned model: keep int(np.round(n (1 - amount))) weights,
    n counting every prunable weight; the threshold is the smallest of the top that many scores (torch.topk);
    each layer keeps as many weights as score >= threshold; then `l1_unstructured` prunes each layer to the
    fraction 1 - kept / n_layer, smallest |w| first."""
    unmasked = torch.tensor([float(w.numel()) for w in weights.values()])  # `_count_unmasked_weights`
    survivors = int(np.round(float(unmasked.sum()) * (1.0 - amount)))
    flat = [authors_scores(w**2).view(-1) for w in weights.values()]
    threshold = torch.topk(torch.cat(flat), survivors).values[-1]
    kept = [(s >= threshold).sum() for s in flat]
    out = {}
    for (name, w), k, n in zip(weights.items(), kept, unmasked, strict=True):
        layer = nn.Module()
        layer.weight = nn.Parameter(w.clone())
        prune.l1_unstructured(layer, name="weight", amount=float(1.0 - k / n))
        out[name] = layer.weight_mask.bool()
    return out


def untied(w: Tensor) -> Tensor:
    """Entries whose magnitude no other entry of the layer shares: the order of equal magnitudes is the only
    freedom (the authors' sort is not asked to be stable; prunebench's is, by position)."""
    _, inverse, counts = torch.unique(w.abs().flatten(), return_inverse=True, return_counts=True)
    return (counts[inverse] == 1).view(w.shape)


# ---- against the authors' code ----------------------------------------------------------------------------------
def test_scores_by_hand() -> None:
    # squares 1, 4, 9: 1 / 14, 4 / 13, 9 / 9
    torch.testing.assert_close(
        lamp_scores(torch.tensor([1.0, -2.0, 3.0])), torch.tensor([1 / 14, 4 / 13, 1.0], dtype=torch.float64)
    )
    # equal magnitudes in the order of their position: squares 4 (first), 4 (second), 1 -> 4 / 8, 4 / 4, 1 / 9
    torch.testing.assert_close(
        lamp_scores(torch.tensor([[2.0, -2.0], [1.0, 0.0]])),
        torch.tensor([[0.5, 1.0], [1 / 9, 0.0]], dtype=torch.float64),
    )
    assert lamp_scores(torch.zeros(3, 2)).eq(0).all()  # a layer of zeros: 0, not 0 / 0


@pytest.mark.parametrize("model_name", MODELS)
def test_scores_equal_the_authors(data: DataBundle, model_name: str) -> None:
    weights = seeded_weights(data, model_name)
    ties = 0
    for name, w in weights.items():
        ours = lamp_scores(w)
        assert ours.dtype == torch.float64 and ours.shape == w.shape
        # Their algorithm in float64: equal to rounding, entry by entry wherever the magnitude is not shared ...
        theirs64 = authors_scores(w.double() ** 2)
        keep = untied(w)
        torch.testing.assert_close(ours[keep], theirs64[keep], rtol=1e-9, atol=0, msg=name)
        # ... and as a set of values everywhere (equal magnitudes only trade scores among themselves).
        torch.testing.assert_close(ours.flatten().sort().values, theirs64.flatten().sort().values, rtol=1e-9, atol=0)
        ties += int((~keep).sum())
        # Their float32 numerics: the total minus a running sum cancels for the largest weights, which ours does not
        # (a suffix sum in float64); about 1e-4 of relative error at most on these layers.
        theirs32 = authors_scores(w**2).double()
        torch.testing.assert_close(ours[keep], theirs32[keep], rtol=1e-3, atol=0, msg=name)
    if model_name == "cifar_resnet20":
        assert ties > 0  # float32 initializations share magnitudes: the tie rule above is exercised


@pytest.mark.parametrize("model_name", MODELS)
def test_masks_equal_the_authors(data: DataBundle, model_name: str) -> None:
    """The whole of the authors' pruning, in their float32 numerics, at moderate to extreme sparsities."""
    weights = seeded_weights(data, model_name)
    for sparsity in (0.5, 0.8, 0.9, 0.95, 0.99, 0.999):
        ours = lamp_masks(data, model_name, sparsity)
        theirs = authors_masks(weights, sparsity)
        assert ours.keys() == theirs.keys()
        for name in ours:
            assert torch.equal(ours[name], theirs[name]), (model_name, sparsity, name)
        if sparsity == 0.9:  # the counts differ from global magnitude's: a real check, not |w| again
            magnitude = GlobalMagnitude().prune(pruning_context(engine_for(data, model_name=model_name), sparsity))
            assert any(int(ours[n].sum()) != int(magnitude[n].sum()) for n in ours)


# ---- Torch-Pruning's LAMPImportance: the structured form --------------------------------------------------------
def test_torch_pruning_lamp_is_the_same_normalization_over_channels(data: DataBundle) -> None:
    """Torch-Pruning's `LAMPImportance` (torch_pruning/pruner/importance.py, `GroupMagnitudeImportance._lamp`: the
    authors' `_normalize_scores`) is structured: a channel's importance is the sum of its squared weights
    (p=2), reduced over the layers its removal touches (`group_reduction`, by default the mean over the
    conv's filter, its BatchNorm scale and the next layer's input slice), then LAMP-normalized across the
    channels of that group, and a pruner removes whole channels (globally across groups with
    `global_pruning=True`). The classifier's outputs are never pruned there. Where a channel is the one weight
    it reduces over, it is unstructured LAMP."""
    engine = engine_for(data, model_name="small_cnn")
    model = engine.model
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=torch.zeros(1, *data.input_shape))
    conv = model.get_submodule("features.1.0")
    assert isinstance(conv, nn.Conv2d)
    group = graph.get_pruning_group(conv, tp.prune_conv_out_channels, idxs=list(range(conv.out_channels)))
    # The root layer alone (group_reduction="first"): LAMP of the filters' L2 norms.
    first = tp.importance.LAMPImportance(p=2, group_reduction="first")(group)
    filters = lamp_scores(conv.weight.detach().flatten(1).norm(dim=1))
    torch.testing.assert_close(first.double(), filters, rtol=1e-4, atol=0)
    # Its default (the mean over the group, BatchNorm and the next conv included) is another score.
    default = tp.importance.LAMPImportance(p=2)(group)
    assert not torch.allclose(default.double(), filters, rtol=1e-2)

    # A layer whose channels are single weights (one input): the channel scores are LAMP's weight scores.
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(1, 32, bias=False), nn.ReLU(), nn.Linear(32, 3))
    graph = tp.DependencyGraph().build_dependency(net, example_inputs=torch.zeros(1, 1))
    group = graph.get_pruning_group(net[0], tp.prune_linear_out_channels, idxs=list(range(32)))
    channels = tp.importance.LAMPImportance(p=2, group_reduction="first")(group)
    torch.testing.assert_close(channels.double(), lamp_scores(net[0].weight).flatten(), rtol=1e-4, atol=0)


# ---- layer-adaptive ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("model_name", MODELS)
def test_each_layer_peaks_at_one_and_ranks_by_magnitude(data: DataBundle, model_name: str) -> None:
    for name, w in seeded_weights(data, model_name).items():
        scores = lamp_scores(w).flatten()
        flat = w.abs().flatten()
        top = int(torch.argmax(flat))
        assert scores[top] == 1.0 and int((scores == 1.0).sum()) == 1, name  # the largest weight, exactly 1
        assert bool((scores > 0).all()) and bool((scores <= 1).all()), name
        by_magnitude = scores[torch.sort(flat, stable=True).indices]
        assert bool((by_magnitude[1:] >= by_magnitude[:-1]).all()), name  # the layer's ranking is |w|'s
        # The scores hold the layer's energy profile: the squared weights come back from them.
        # u_i = score_i * S_i with S_1 = sum of squares and S_(i+1) = S_i (1 - score_i).
        energy = flat.double().square().sum()
        remaining = energy * torch.cumprod(torch.cat([torch.ones(1, dtype=torch.float64), 1 - by_magnitude[:-1]]), 0)
        back = by_magnitude * remaining
        torch.testing.assert_close(back, torch.sort(flat.double().square()).values, rtol=1e-6, atol=1e-12)


def test_no_layer_is_emptied_while_the_target_keeps_one_weight_a_layer(data: DataBundle) -> None:
    """Keeping exactly as many weights as there are layers, each layer keeps one, its largest; global magnitude
    empties layers at that target (so this test can tell the two apart). At 0.999 every layer keeps some."""
    weights = seeded_weights(data, "cifar_resnet20")
    total = sum(w.numel() for w in weights.values())
    layers = len(weights)
    sparsity = 1 - layers / total
    assert round(sparsity * total) == total - layers
    masks = lamp_masks(data, "cifar_resnet20", sparsity)
    for name, w in weights.items():
        assert int(masks[name].sum()) == 1, name
        assert bool(masks[name].flatten()[int(torch.argmax(w.abs()))]), name
    magnitude = GlobalMagnitude().prune(pruning_context(engine_for(data, model_name="cifar_resnet20"), sparsity))
    assert any(not m.any() for m in magnitude.values())
    for model_name in MODELS:
        assert all(m.any() for m in lamp_masks(data, model_name, 0.999).values()), model_name


def test_a_layers_scale_does_not_move_the_masks(data: DataBundle) -> None:
    """LAMP's scores are invariant to rescaling a layer (a BatchNorm after it makes the network invariant too), so
    its masks are; global magnitude's are not."""
    sparsity = 0.9
    before = lamp_masks(data, "small_cnn", sparsity)
    engine = engine_for(data, model_name="small_cnn")
    with torch.no_grad():
        engine.model.get_parameter("features.1.0.weight").mul_(1000.0)
        engine.model.get_parameter("features.3.0.weight").mul_(1e-3)
    after = LAMP().prune(pruning_context(engine, sparsity))
    for name in before:
        assert torch.equal(before[name], after[name]), name
    magnitude = GlobalMagnitude().prune(pruning_context(engine, sparsity))
    assert int(magnitude["features.3.0.weight"].sum()) == 0  # the shrunk layer is gone under one |w| threshold


def test_already_pruned_weights_stay_pruned_and_count(data: DataBundle) -> None:
    engine = engine_for(data, model_name="small_cnn")
    first = LAMP().prune(pruning_context(engine, 0.5))
    engine.masks.set(first)
    second = LAMP().prune(pruning_context(engine, 0.8))
    total = sum(m.numel() for m in second.values())
    assert all(bool((~second[n] | first[n]).all()) for n in first)
    assert sum(int((~m).sum()) for m in second.values()) == round(0.8 * total)
    assert math.isclose(sum(int(m.sum()) for m in second.values()) / total, 0.2, abs_tol=1 / total)


def test_registered_through_the_entry_point_group() -> None:
    found = registered_methods()["lamp"]
    assert found.cls is LAMP and found.source == "entry point prunebench_baselines.lamp:LAMP"
    assert LAMP.taxonomy == GlobalMagnitude.taxonomy
