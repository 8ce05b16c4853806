"""Each baseline against what its reference implementation computes, on inputs small enough to work out by
hand; and the masks of every one-shot method as a function of the protocol alone (no unhashed field moves
them)."""

from __future__ import annotations

import math

import pytest
import torch
from prunebench_baselines.grasp import GraSP, GraSPConfig
from prunebench_baselines.l1_filter import L1FilterPruning, L1FilterPruningConfig, block_first, common_fraction_counts
from prunebench_baselines.lamp import LAMP
from prunebench_baselines.magnitude import GlobalMagnitude, LayerwiseMagnitude
from prunebench_baselines.n_m import NMMagnitude, NMMagnitudeConfig, n_m_mask
from prunebench_baselines.random_pruning import RandomPruning, RandomShuffled
from prunebench_baselines.snip import SNIP, SNIPConfig, scoring_copy, snip_scores
from prunebench_baselines.synflow import SynFlow
from torch import nn

from prunebench.engine.soft_masks import SoftMaskState
from prunebench.methods import SoftMasks
from prunebench.protocol import parse_protocol
from prunebench.testing import MINIMAL, digits, engine_for, pruning_context


# ---- SNIP: inference-mode BatchNorm, as snip-public and Synaptic-Flow score --------------------------------
def test_snip_scores_in_eval_mode_by_hand() -> None:
    """x -> W1 x -> BatchNorm (running mean 0, var 1: x / sqrt(1 + eps)) -> W2 -> cross-entropy, one example.
    With p = softmax(out) and e the one-hot label: dL/dW2 = (p - e) h^T, dL/dW1 = c (W2^T (p - e)) x^T."""
    net = nn.Sequential(nn.Linear(2, 2, bias=False), nn.BatchNorm1d(2), nn.Linear(2, 2, bias=False))
    w1, w2 = [[1.0, -2.0], [0.5, 1.0]], [[1.0, 2.0], [-1.0, 1.0]]
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor(w1))
        net[2].weight.copy_(torch.tensor(w2))
    x, label = [1.0, 2.0], 1
    c = 1 / math.sqrt(1 + net[1].eps)
    h = [c * (w1[i][0] * x[0] + w1[i][1] * x[1]) for i in range(2)]
    out = [w2[k][0] * h[0] + w2[k][1] * h[1] for k in range(2)]
    p = [math.exp(o) / sum(math.exp(v) for v in out) for o in out]
    d = [p[k] - (k == label) for k in range(2)]
    g2 = [[d[k] * h[i] for i in range(2)] for k in range(2)]
    back = [c * (w2[0][i] * d[0] + w2[1][i] * d[1]) for i in range(2)]
    g1 = [[back[i] * x[j] for j in range(2)] for i in range(2)]
    expected = {
        "0.weight": [[abs(g1[i][j] * w1[i][j]) for j in range(2)] for i in range(2)],
        "2.weight": [[abs(g2[k][i] * w2[k][i]) for i in range(2)] for k in range(2)],
    }
    batch = [(torch.tensor([x]), torch.tensor([label]))]
    scores = snip_scores(scoring_copy(net, "eval"), ["0.weight", "2.weight"], batch)
    for name, values in expected.items():
        torch.testing.assert_close(scores[name], torch.tensor(values), rtol=1e-5, atol=1e-7)
    assert net.training, "the model scored is a copy: the original keeps its mode"
    three = [(torch.tensor([x, [0.3, -1.0], [2.0, 0.5]]), torch.tensor([1, 0, 1]))]
    eval_mode = snip_scores(scoring_copy(net, "eval"), ["0.weight", "2.weight"], three)
    train_mode = snip_scores(scoring_copy(net, "train"), ["0.weight", "2.weight"], three)
    assert not torch.allclose(eval_mode["0.weight"], train_mode["0.weight"])  # the modes differ: a real choice


def test_snip_defaults_to_the_references_mode() -> None:
    assert SNIPConfig().batch_norm == "eval" and GraSPConfig().batch_norm == "halves"


# ---- N:M: NVIDIA ASP's layout ------------------------------------------------------------------------------
def test_2_4_groups_run_along_input_channels_at_each_kernel_position() -> None:
    # One filter, 4 input channels, a 1x2 kernel: ASP groups the 4 channels at each of the 2 positions.
    w = torch.tensor([[[[1.0, 8.0]], [[4.0, 7.0]], [[2.0, 6.0]], [[3.0, 5.0]]]])  # (out 1, in 4, 1, 2)
    keep = n_m_mask(w, 2, 4)  # the default layout: channels
    # Position 0 holds 1, 4, 2, 3 -> keep channels 1 and 3; position 1 holds 8, 7, 6, 5 -> keep 0 and 1.
    assert keep[0, :, 0, 0].tolist() == [False, True, False, True]
    assert keep[0, :, 0, 1].tolist() == [True, True, False, False]
    along_kernel = n_m_mask(w, 2, 4, "kernel")  # flattened (in, kh, kw): 1 8 4 7 | 2 6 3 5
    assert along_kernel.flatten().tolist() == [False, True, False, True, False, True, False, True]


def test_layers_whose_channels_are_not_a_multiple_of_m_stay_dense_and_are_named() -> None:
    data = digits()
    engine = engine_for(data)  # small_cnn: its first conv sees 1 channel
    ctx = pruning_context(engine, 0.5)
    masks = NMMagnitude(NMMagnitudeConfig()).prune(ctx)
    first = next(iter(masks))
    assert masks[first].all() and engine.notes["dense_layers"] == [first]
    assert all(not m.all() for name, m in masks.items() if name != first)


# ---- Continuous Sparsification: the authors' reset ---------------------------------------------------------
def test_the_reset_between_rounds_is_min_of_s_and_s0() -> None:
    declared = SoftMasks(temperatures=[1.0, 200.0])  # CS's declaration: reset "one"
    state = SoftMaskState({"w": nn.Parameter(torch.zeros(4))}, declared)
    state.begin(declared, 2, fresh=True)
    state.end_epoch()  # the round ends at temperature 200
    scores = state.masks["w"].scores
    with torch.no_grad():
        scores.copy_(torch.tensor([-1.0, -0.25, 0.5, 2.0]))
    state.begin(declared, 2, fresh=False)  # the next round
    assert scores.tolist() == [-1.0, -0.25, 0.0, 0.0]  # at temperature 1: not 200 * s (-0.25 would become -50)


# ---- L1-norm filter pruning: one fraction per layer, Li et al.'s layers -------------------------------------
def test_every_layer_stays_within_one_filter_of_the_common_fraction() -> None:
    counts, size = [16, 32, 32, 64], [9, 144, 288, 288]  # a first conv of 9-weight filters among larger ones
    room = [c - 1 for c in counts]
    for share in (0.3, 0.5, 0.7):
        target = round(share * sum(c * s for c, s in zip(counts, size, strict=True)))
        taken = common_fraction_counts(counts, size, room, target)
        fractions = [k / c for k, c in zip(taken, counts, strict=True)]
        assert max(fractions) - min(fractions) <= 1 / min(counts) + 1 / 16, (share, taken)
        assert taken[0] <= math.floor(share * counts[0]) + 1  # the small first conv is no filler


def test_block_first_selects_the_first_convolution_of_each_residual_block() -> None:
    names = ["conv.weight", "conv1.weight", "blocks.0.conv1.weight", "blocks.0.conv2.weight", "layer1.2.conv1.weight"]
    assert [n for n in names if block_first(n)] == ["blocks.0.conv1.weight", "layer1.2.conv1.weight"]
    data = digits()
    ctx = pruning_context(engine_for(data, model_name="cifar_resnet20", width=4), 0.2)
    masks = L1FilterPruning(L1FilterPruningConfig(layers="block_first")).prune(ctx)
    pruned = {n for n, m in masks.items() if not m.all()}
    assert pruned and all(block_first(n) for n in pruned)


# ---- results are a function of the protocol -------------------------------------------------------------------
ONE_SHOT = [
    GlobalMagnitude(),
    LayerwiseMagnitude(),
    LAMP(),
    RandomPruning(),
    RandomShuffled(),
    SNIP(),
    SNIP(SNIPConfig(batch_norm="train")),
    GraSP(),
    GraSP(GraSPConfig(batch_norm="train")),
    GraSP(GraSPConfig(batch_norm="eval")),
    SynFlow(),
    L1FilterPruning(),
]


@pytest.mark.parametrize("method", ONE_SHOT, ids=lambda m: f"{m.name}-{m.config.model_dump()}")
def test_no_unhashed_field_moves_the_masks(method) -> None:  # type: ignore[no-untyped-def]
    """eval_batch_size (and the other unhashed fields: root, num_workers, description) is not part of the
    protocol's identity; the scoring batches come from the hashed pruning.scoring_batch_size instead."""
    data = digits()
    masks = []
    for eval_batch_size in (128, 1024):
        engine = engine_for(data, seed=3)
        engine.eval_batch_size = eval_batch_size
        masks.append(method.prune(pruning_context(engine, 0.7, seed=3, scoring_examples=300)))
    for name in masks[0]:
        assert torch.equal(masks[0][name], masks[1][name]), name
    assert parse_protocol(MINIMAL.replace("  name: digits\n", "  name: digits\n  eval_batch_size: 64\n")).hash == (
        parse_protocol(MINIMAL).hash
    )


def test_the_scoring_batch_size_is_hashed_and_matters_where_batch_statistics_do() -> None:
    p = parse_protocol(MINIMAL)
    q = parse_protocol(
        MINIMAL.replace("  sparsities: [0.9, 0.5]\n", "  sparsities: [0.9, 0.5]\n  scoring_batch_size: 32\n")
    )
    assert q.hash != p.hash and p.pruning.scoring_batch_size == 512
    data = digits()
    masks = []
    for size in (512, 32):
        engine = engine_for(data, seed=3)
        engine.scoring_batch_size = size
        masks.append(
            GraSP(GraSPConfig(batch_norm="train")).prune(pruning_context(engine, 0.7, seed=3, scoring_examples=300))
        )
    assert any(not torch.equal(masks[0][n], masks[1][n]) for n in masks[0])
