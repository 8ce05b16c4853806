"""Pruning at initialization (SNIP, GraSP, SynFlow) and the layerwise-shuffled random baseline:
scores checked by hand on tiny nets, exact sparsity and an untouched model on a real CNN."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from prunebench_baselines.grasp import GraSP, balanced_sample, class_sorted_halves, grasp_scores
from prunebench_baselines.magnitude import GlobalMagnitude
from prunebench_baselines.random_pruning import RandomShuffled
from prunebench_baselines.snip import SNIP, scoring_copy, snip_scores
from prunebench_baselines.synflow import SynapticFlow, SynFlow, schedule_sparsities
from torch import nn

from prunebench.engine import Engine
from prunebench.errors import FieldError
from prunebench.methods import PruningContext, instantiate, masks_from_scores
from prunebench.protocol import MethodSpec

Factory = Callable[..., PruningContext]
NAMES = ["0.weight", "2.weight"]


def two_layer(w1: list[list[float]], w2: list[list[float]], dtype: torch.dtype = torch.float32) -> nn.Sequential:
    """x -> W2 relu(W1 x), no biases, with the given weights."""
    net = nn.Sequential(nn.Linear(len(w1[0]), len(w1), bias=False), nn.ReLU(), nn.Linear(len(w1), len(w2), bias=False))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor(w1))
        net[2].weight.copy_(torch.tensor(w2))
    return net.to(dtype)


def to_digits_input(net: nn.Module) -> nn.Module:
    """Run `net` on 1x8x8 digits: an all-ones image becomes the input vector (1, 1)."""
    return nn.Sequential(nn.AdaptiveAvgPool2d((1, 2)), nn.Flatten(), *net)


# ---- SNIP -----------------------------------------------------------------------------------------
def test_snip_scores_by_hand() -> None:
    # x = (1, 2), y = 0. h = relu(W1 x) = relu(1, -1.5) = (1, 0); z = W2 h = (1, -1).
    # dL/dz = softmax(z) - e0 = (-q, q) with q = sigmoid(-2). dL/dW2 = dz h^T = [[-q, 0], [q, 0]].
    # dL/dh = W2^T dz = (-2q, -q); relu passes only unit 0: dL/dW1 = [[-2q, -4q], [0, 0]].
    net = two_layer([[1.0, 0.0], [0.5, -1.0]], [[1.0, 2.0], [-1.0, 1.0]])
    scores = snip_scores(net, NAMES, [(torch.tensor([[1.0, 2.0]]), torch.tensor([0]))])
    q = 1 / (1 + math.exp(2))
    torch.testing.assert_close(scores["0.weight"], torch.tensor([[2 * q, 0.0], [0.0, 0.0]]))
    torch.testing.assert_close(scores["2.weight"], torch.tensor([[q, 0.0], [q, 0.0]]))


def test_snip_averages_over_batches() -> None:
    net = two_layer([[1.0, -2.0], [0.5, 1.0]], [[1.0, 2.0], [-1.0, 1.0]])
    x, y = torch.tensor([[1.0, 2.0], [0.3, -1.0], [2.0, 0.5]]), torch.tensor([0, 1, 1])
    together = snip_scores(net, NAMES, [(x, y)])
    split = snip_scores(net, NAMES, [(x[:1], y[:1]), (x[1:], y[1:])])
    for name in NAMES:
        torch.testing.assert_close(split[name], together[name])


def test_snip_prunes_the_lowest_sensitivities_on_the_counted_budget(
    make_context: Factory, make_engine_and_context: Callable[..., tuple[Engine, PruningContext]]
) -> None:
    engine, ctx = make_engine_and_context(0.8, scoring_examples=200)
    masks = SNIP().prune(ctx)
    ledger = engine.ledger.pruning
    assert ledger.forward_examples == 200  # the protocol's budget by default, all of it counted
    fresh = make_context(0.8, scoring_examples=200)
    expected = masks_from_scores(
        snip_scores(scoring_copy(fresh.model, "eval"), list(fresh.weights()), fresh.batches(200)), 0.8, scope="global"
    )
    for name, mask in masks.items():
        assert torch.equal(mask, expected[name])
    engine, one_batch = make_engine_and_context(0.8)
    SNIP(SNIP.Config(examples=64)).prune(one_batch)
    assert engine.ledger.pruning.forward_examples == 64


# ---- GraSP ----------------------------------------------------------------------------------------
def test_grasp_scores_closed_form_for_softmax_regression() -> None:
    # One example, z = W x / T, L = CE(z, y): g = (p - e_y) x^T / T and H = (diag p - p p^T) (x) x x^T / T^2,
    # so (H g)_ij = x_j (x . x) [(diag p - p p^T)(p - e_y)]_i / T^3 and the score is -W * H g.
    w = torch.tensor([[0.5, -1.0, 2.0], [1.5, 0.2, -0.3]], dtype=torch.float64)
    x, y, t = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64), 1, 2.0
    net = nn.Linear(3, 2, bias=False).double()
    with torch.no_grad():
        net.weight.copy_(w)
    scores = grasp_scores(net, ["weight"], [(x[None], torch.tensor([y]))], temperature=t)
    p = torch.softmax(w @ x / t, 0)
    curvature = torch.diag(p) - torch.outer(p, p)
    hg = torch.outer(curvature @ (p - F.one_hot(torch.tensor(y), 2).double()), x) * (x @ x) / t**3
    torch.testing.assert_close(scores["weight"], -w * hg)


def test_grasp_scores_match_the_full_hessian_over_batches() -> None:
    net = two_layer([[1.0, -2.0], [0.5, 1.0], [-0.7, 0.4]], [[1.0, 2.0, -0.5], [-1.0, 1.0, 0.3]], torch.float64)
    x = torch.tensor([[1.0, 2.0], [0.3, -1.0], [2.0, 0.5]], dtype=torch.float64)
    y = torch.tensor([0, 1, 1])
    t = 3.0
    scores = grasp_scores(net, NAMES, [(x[:1], y[:1]), (x[1:], y[1:])], temperature=t)

    w1, w2 = net[0].weight.detach(), net[2].weight.detach()

    def loss(flat: torch.Tensor) -> torch.Tensor:
        a, b = flat[: w1.numel()].view_as(w1), flat[w1.numel() :].view_as(w2)
        return F.cross_entropy(torch.relu(x @ a.T) @ b.T / t, y)

    flat = torch.cat([w1.flatten(), w2.flatten()])
    g = torch.autograd.functional.jacobian(loss, flat)
    hg = torch.autograd.functional.hessian(loss, flat) @ g
    expected = -flat * hg
    torch.testing.assert_close(torch.cat([scores[n].flatten() for n in NAMES]), expected)


def test_grasp_takes_samples_per_class_from_the_budget() -> None:
    y = torch.tensor([0, 0, 0, 1, 2, 1, 1, 2, 2, 0])
    x = torch.arange(10.0)[:, None]
    drawn = []

    def batches():  # type: ignore[no-untyped-def]
        for i in range(0, 10, 4):
            drawn.append(i)
            yield x[i : i + 4], y[i : i + 4]

    sample = balanced_sample(batches(), 3, 2)
    labels = torch.cat([b for _, b in sample])
    assert sorted(labels.tolist()) == [0, 0, 1, 1, 2, 2]
    assert drawn == [0, 4]  # the third batch is never drawn: every class was full after the second


def test_grasp_removes_the_highest_scores(make_context: Factory) -> None:
    ctx = make_context(0.7, scoring_examples=300)
    masks = GraSP().prune(ctx)
    fresh = make_context(0.7, scoring_examples=300)
    sample = balanced_sample(fresh.batches(300), 10, 10)
    assert sum(len(b) for _, b in sample) == 100
    halves = class_sorted_halves(sample)  # the authors' batches: classes 0-4, then 5-9, each under its statistics
    assert [sorted(set(y.tolist())) for _, y in halves] == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    scores = grasp_scores(scoring_copy(fresh.model, "train"), list(fresh.weights()), halves, temperature=200.0)
    flat_scores = torch.cat([scores[n].flatten() for n in masks])
    kept = torch.cat([masks[n].flatten() for n in masks])
    assert int((~kept).sum()) == round(0.7 * kept.numel())
    assert flat_scores[kept].max() <= flat_scores[~kept].min()


# ---- SynFlow --------------------------------------------------------------------------------------
def test_synflow_scores_by_hand_and_conserved() -> None:
    # |W1| 1 = (3, 3.5) and 1^T |W2| = (1, 2), so R = 3 + 7 = 10; score(W2_ki) = |W2_ki| (|W1| 1)_i and
    # score(W1_ij) = (1^T |W2|)_i |W1_ij|: every layer's scores sum to R.
    net = two_layer([[1.0, -2.0], [3.0, 0.5]], [[-1.0, 2.0]])
    flow = SynapticFlow(net, NAMES, (2,))
    full = {n: torch.ones_like(net.get_parameter(n), dtype=torch.bool) for n in NAMES}
    scores = flow.scores(full)
    assert scores["0.weight"].tolist() == [[1.0, 2.0], [6.0, 1.0]]
    assert scores["2.weight"].tolist() == [[3.0, 7.0]]
    masked = {**full, "0.weight": torch.tensor([[True, True], [False, True]])}
    scores = flow.scores(masked)  # h = (3, 0.5), R = 4
    assert scores["0.weight"].tolist() == [[1.0, 2.0], [0.0, 1.0]]
    assert scores["2.weight"].tolist() == [[3.0, 1.0]]
    assert all(float(s.sum()) == 4.0 for s in scores.values())
    assert net[0].weight.dtype == torch.float32 and net[0].weight[0, 1] == -2.0  # the original is untouched


def test_synflow_iterates_where_one_shot_would_keep_a_dead_weight(
    make_engine_and_context: Callable[..., tuple[Engine, PruningContext]],
) -> None:
    # Scores: W1 [[4, 6], [3, 1.5]], W2 [[10, 4.5]]. One shot at 50% prunes 1.5, 3 and 4: hidden unit 1
    # loses its inputs but W2[0, 1] stays. Two steps: 1 - 0.5^(1/2) = 29% (2 weights: 1.5 and 3), then
    # h = (5, 0) and W2[0, 1] scores 0: it goes instead.
    net = to_digits_input(two_layer([[2.0, 3.0], [-1.0, 0.5]], [[2.0, 3.0]]))
    engine, ctx = make_engine_and_context(0.5, model=net)
    names = list(ctx.weights())
    one_shot = SynFlow(SynFlow.Config(iterations=1)).prune(ctx)
    assert one_shot[names[0]].tolist() == [[False, True], [False, False]]
    assert one_shot[names[1]].tolist() == [[True, True]]
    iterative = SynFlow(SynFlow.Config(iterations=2)).prune(ctx)
    assert iterative[names[0]].tolist() == [[True, True], [False, False]]
    assert iterative[names[1]].tolist() == [[True, False]]
    assert engine.ledger.pruning.forward_examples == 0  # data-free


def test_synflow_schedule() -> None:
    steps = schedule_sparsities(0.99, 100, "exponential")
    assert len(steps) == 100 and steps[-1] == 0.99
    assert steps[0] == pytest.approx(1 - 0.01**0.01)
    assert steps[49] == pytest.approx(0.9)  # half the steps: the square root of the kept fraction
    assert all(a < b for a, b in itertools.pairwise(steps))
    assert schedule_sparsities(0.5, 4, "linear") == [0.125, 0.25, 0.375, 0.5]


def test_masks_from_scores_ranks_float64_beyond_float32_range() -> None:
    # SynFlow's scores of a deep net can lie beyond float32 (3e38 and 1e-45): they must still rank.
    scores = {"a": torch.tensor([1e-300, 1e300, 1e-200], dtype=torch.float64), "b": torch.tensor([1e200])}
    masks = masks_from_scores(scores, 0.5, scope="global")
    assert masks["a"].tolist() == [False, True, False] and masks["b"].tolist() == [True]


# ---- all three on a real CNN ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "sparsity"),
    [(SNIP(), 0.9), (GraSP(), 0.5), (SynFlow(SynFlow.Config(iterations=20)), 0.95)],
    ids=["snip", "grasp", "synflow"],
)
def test_exact_sparsity_and_the_model_is_untouched(make_context: Factory, method: object, sparsity: float) -> None:
    ctx = make_context(sparsity, scoring_examples=200)
    model = ctx.model
    model.train()
    model.features[1].eval()  # a mixed mode must come back exactly as it was
    modes = [m.training for m in model.modules()]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    masks = method.prune(ctx)  # type: ignore[attr-defined]
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) and before[k].dtype == after[k].dtype for k in before)
    assert [m.training for m in model.modules()] == modes
    total = sum(m.numel() for m in masks.values())
    pruned = sum(int((~m).sum()) for m in masks.values())
    assert pruned == round(sparsity * total)
    # Nothing is left with grads that the engine's optimizer could later pick up.
    assert all(p.grad is None for p in model.parameters())


# ---- layerwise-shuffled random --------------------------------------------------------------------
def test_shuffled_keeps_each_layers_sparsity_not_its_choice(make_context: Factory) -> None:
    source = GlobalMagnitude().prune(make_context(0.8))
    ctx = make_context(0.8)
    shuffled = RandomShuffled().prune(ctx)
    for name, mask in source.items():
        assert int(shuffled[name].sum()) == int(mask.sum())
        assert shuffled[name].shape == mask.shape and shuffled[name].dtype == torch.bool
    big = max(source, key=lambda n: source[n].numel())
    assert not torch.equal(shuffled[big], source[big])
    again = RandomShuffled().prune(make_context(0.8))  # the job's generator decides: reproducible
    assert all(torch.equal(again[n], shuffled[n]) for n in shuffled)


def test_shuffled_follows_its_source() -> None:
    method, _ = instantiate(MethodSpec(name="random_shuffled", config={"source": "snip"}), 0)
    assert method.taxonomy.when == "before_training" and method.taxonomy.scope == "layerwise"
    assert RandomShuffled().taxonomy.when == "after_training"
    with pytest.raises(FieldError, match="unknown method 'snap'"):
        instantiate(MethodSpec(name="random_shuffled", config={"source": "snap"}), 0)
    with pytest.raises(FieldError, match=r"source_config\.iterations"):
        instantiate(
            MethodSpec(name="random_shuffled", config={"source": "synflow", "source_config": {"iterations": 0}}), 0
        )
