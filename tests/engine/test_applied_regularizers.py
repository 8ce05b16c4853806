"""Declared regularizers as the engine applies them: the terms are what the papers define, they do what they are
for when they weigh enough, soft masks follow their schedule and outlive a train call only as scores, and a
declaration the engine cannot apply fails the job with its reason."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
import torch
from pydantic import ValidationError
from torch import nn
from torch.nn.utils import parametrize

from prunebench.engine import Engine
from prunebench.engine.regularizers import batch_norm_l1, group_lasso
from prunebench.engine.soft_masks import SoftMaskState
from prunebench.errors import JobFailed
from prunebench.methods import BatchNormL1, GroupLasso, PruningContext, SoftMasks
from prunebench.protocol import OptimizerSpec, TrainingSpec

Make = Callable[..., tuple[Engine, PruningContext]]


def _spec(epochs: int) -> TrainingSpec:
    return TrainingSpec(epochs=epochs, batch_size=128, optimizer=OptimizerSpec(lr=0.1))


def _bn_scales(model: nn.Module) -> float:
    return sum(float(m.weight.detach().abs().sum()) for m in model.modules() if isinstance(m, nn.BatchNorm2d))


def _filter_norms(weights: dict[str, torch.Tensor]) -> float:
    return sum(float(w.detach().flatten(1).norm(dim=1).sum()) for w in weights.values() if w.dim() == 4)


def test_the_terms_are_the_papers_by_hand() -> None:
    net = nn.Sequential(nn.Conv2d(1, 2, 2, bias=False), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(2, 2))
    net.append(nn.BatchNorm1d(2))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[[[3.0, 4.0], [0.0, 0.0]]], [[[1.0, -1.0], [1.0, -1.0]]]]))  # norms 5, 2
        net[1].weight.copy_(torch.tensor([0.5, -2.0]))
        net[3].weight.copy_(torch.tensor([[10.0, 0.0], [0.0, 10.0]]))  # a linear weight: no filters
        net[4].weight.copy_(torch.tensor([1.0, -0.25]))
    bn = batch_norm_l1(net, 0.5)
    lasso = group_lasso([net[0].weight, net[3].weight], 0.5)
    assert bn is not None and bn.item() == 0.5 * (0.5 + 2.0 + 1.0 + 0.25)
    assert lasso is not None and lasso.item() == 0.5 * (5.0 + 2.0)
    assert batch_norm_l1(net, 0.0) is None and group_lasso([net[3].weight], 1.0) is None  # nothing to add
    lasso.backward()  # a pruned (all-zero) filter has a finite subgradient
    zero = nn.Parameter(torch.zeros(1, 1, 2, 2))
    group_lasso([zero], 1.0).backward()  # type: ignore[union-attr]
    assert torch.isfinite(zero.grad).all()  # type: ignore[arg-type]


def _measures(ctx: PruningContext) -> dict[str, float]:
    return {"batch_norm_l1": _bn_scales(ctx.model), "group_lasso": _filter_norms(ctx.weights())}


@pytest.mark.parametrize("declared", [BatchNormL1(coefficient=0.05), GroupLasso(coefficient=0.05)])
def test_a_heavy_regularizer_drives_what_it_penalizes_down(make_engine_and_context: Make, declared: Any) -> None:
    plain_engine, plain = make_engine_and_context()
    engine, ctx = make_engine_and_context()
    plain.train(2, spec=_spec(2))
    ctx.train(2, spec=_spec(2), regularizers=[declared])
    without, with_it = _measures(plain), _measures(ctx)
    # What it penalizes falls (BN scales 43 -> 16, filter norms 46 -> 24 in a calibration run); the other stays.
    other = next(k for k in without if k != declared.kind)
    assert with_it[declared.kind] < 0.6 * without[declared.kind]
    assert with_it[other] == pytest.approx(without[other], rel=0.1)
    assert engine.ledger == plain_engine.ledger  # counted as any training is


def test_soft_masks_follow_their_temperatures_and_leave_only_scores(
    make_engine_and_context: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, ctx = make_engine_and_context()
    assert ctx.soft_mask_scores() == {}
    stepped: list[float] = []
    step = SoftMaskState.step
    monkeypatch.setattr(SoftMaskState, "step", lambda self, lr: (stepped.append(_beta(engine)), step(self, lr))[1])
    evaluated: list[float] = []
    evaluate = engine.evaluate
    monkeypatch.setattr(engine, "evaluate", lambda split: (evaluated.append(_beta(engine)), evaluate(split))[1])
    ctx.train(3, spec=_spec(3), regularizers=[SoftMasks(temperatures=[1.0, 10.0, 100.0], penalty=1e-4)])
    steps = len(stepped) // 3
    assert stepped == [1.0] * steps + [10.0] * steps + [100.0] * steps
    assert evaluated == [10.0, 100.0, 100.0]  # each epoch's evaluation after beta moved on
    assert not any(parametrize.is_parametrized(m) for m in ctx.model.modules())
    assert set(ctx.model.state_dict()) == set(engine.snapshot().state)  # the plain architecture's keys
    scores = ctx.soft_mask_scores()
    assert list(scores) == list(ctx.weights()) and all(s.shape == ctx.weights()[k].shape for k, s in scores.items())
    assert any(bool((s != 0).any()) for s in scores.values())  # the scores' own optimizer moved them
    assert any(bool((s > 0).any()) for s in scores.values())  # some above s0 = 0: what a reset would clamp
    next(iter(scores.values())).fill_(7.0)
    assert not any(bool((s == 7.0).all()) for s in ctx.soft_mask_scores().values())  # a copy
    # A later call continues the same scores (`keep`: as they were; a step too small to move them).
    before = ctx.soft_mask_scores()
    ctx.train(1, spec=_spec(1), regularizers=[SoftMasks(temperatures=[100.0], lr=1e-12, reset="keep")])
    assert all(torch.allclose(s, before[k], rtol=0, atol=1e-9) for k, s in ctx.soft_mask_scores().items())


def _beta(engine: Engine) -> float:
    soft = engine.regularization.soft
    assert soft is not None
    return next(iter(soft.masks.values())).beta


def test_the_resets_between_calls() -> None:
    w, left = nn.Parameter(torch.zeros(4)), [-1.0, -0.25, 0.5, 2.0]
    for reset, expected in (("one", [-1.0, -0.25, 0.0, 0.0]), ("last", [-200.0, -50.0, 0.0, 0.0]), ("keep", left)):
        declared = SoftMasks(temperatures=[1.0, 200.0], reset=reset)
        state = SoftMaskState({"w": w}, declared)
        state.begin(declared, 2, fresh=True)
        state.end_epoch()
        with torch.no_grad():
            state.masks["w"].scores.copy_(torch.tensor(left))
        state.begin(declared, 2, fresh=False)
        assert state.masks["w"].scores.tolist() == expected, reset
        assert state.masks["w"].beta == 1.0  # the new call's first temperature


@pytest.mark.parametrize(
    ("declared", "epochs", "reason"),
    [
        ([{"kind": "group_lasso", "coeficient": 1.0}], 1, "0.group_lasso.coeficient"),
        ([SoftMasks(temperatures=[1.0, 2.0])], 1, "declare 2 temperatures for a train call of 1 epochs"),
        ([SoftMasks(temperatures=[1.0]), SoftMasks(temperatures=[1.0], initial=0.5)], 1, "initial 0.5"),
    ],
)
def test_a_declaration_the_engine_cannot_apply_fails_the_job(
    make_engine_and_context: Make, declared: list[Any], epochs: int, reason: str
) -> None:
    engine, _ = make_engine_and_context()
    *before, last = declared
    for earlier in before:
        engine.train_while_pruning(epochs, _spec(epochs), [earlier])
    with pytest.raises(JobFailed, match="regularizers the engine cannot apply") as exc:
        engine.train_while_pruning(epochs, _spec(epochs), [last])
    assert reason in str(exc.value) and engine.failure is not None
    assert not any(parametrize.is_parametrized(m) for m in engine.model.modules())


def test_the_context_refuses_a_misspelled_declaration_before_the_engine(make_context: Callable[..., Any]) -> None:
    ctx = make_context()
    with pytest.raises(ValidationError, match=r"0\.batch_norm_l1\.coeficient"):
        ctx.train(1, spec=_spec(1), regularizers=[{"kind": "batch_norm_l1", "coeficient": 1e-4}])


def test_soft_masks_and_group_lasso_together(make_engine_and_context: Make) -> None:
    _, ctx = make_engine_and_context()
    ctx.train(1, spec=_spec(1), regularizers=[SoftMasks(temperatures=[1.0]), GroupLasso(coefficient=1e-3)])
    assert ctx.soft_mask_scores() and math.isfinite(_filter_norms(ctx.weights()))
