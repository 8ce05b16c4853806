"""SET on RigL's schedule: each update drops a layer's active connections of smallest magnitude and grows as many at
random among the missing ones, so no layer's count moves; the drop fraction decays on a cosine and updates stop at
the end fraction; through the engine the mask moves while training and the sparsity stays the target's."""

from __future__ import annotations

import math

import pytest
import torch
from prunebench_baselines.sparse_evolutionary import SparseEvolutionaryTraining, drop_fraction_at, updated_mask

from prunebench.methods import registered_methods
from prunebench.protocol import OptimizerSpec, TrainingSpec
from prunebench.testing import digits, engine_for, pruning_context


def test_a_move_drops_the_smallest_and_grows_as_many_elsewhere() -> None:
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(32, 16, generator=gen)
    keep = torch.rand(32, 16, generator=gen) > 0.7
    w = w * keep  # pruned weights are zero, as the engine keeps them
    score = torch.rand(32, 16, generator=torch.Generator().manual_seed(1))
    after = updated_mask(w, keep, score, 0.3)
    k = int(0.3 * int(keep.sum()))
    assert int(after.sum()) == int(keep.sum()) and k > 0
    dropped = keep & ~after
    grown = after & ~keep
    assert int(dropped.sum()) <= k and int(grown.sum()) == int(dropped.sum())
    smallest = w.abs()[keep].sort().values[:k]
    assert w.abs()[dropped].max() <= smallest.max()  # only among the k smallest active
    assert score[grown].min() >= score[~keep & ~after].max()  # grown where the score is largest


def test_the_drop_fraction_decays_on_a_cosine() -> None:
    assert drop_fraction_at(0, alpha=0.3, end=1000) == pytest.approx(0.3)
    assert drop_fraction_at(500, alpha=0.3, end=1000) == pytest.approx(0.15)
    assert drop_fraction_at(1000, alpha=0.3, end=1000) == pytest.approx(0.0)


def test_through_the_engine_the_mask_moves_and_the_sparsity_holds() -> None:
    assert registered_methods()["set"].cls is SparseEvolutionaryTraining
    engine = engine_for(digits(), width=1.0)
    spec = TrainingSpec(epochs=2, batch_size=64, optimizer=OptimizerSpec(lr=0.05))
    engine.retrain_spec = spec
    method = SparseEvolutionaryTraining(SparseEvolutionaryTraining.Config(update_steps=5))
    engine.method = method
    ctx = pruning_context(engine, 0.9)
    engine.set_masks(method.prune(ctx))
    before = {k: v.clone() for k, v in engine.masks.masks.items()}
    engine.train(spec, stage="retrain")
    after = engine.masks.masks
    assert any(not torch.equal(before[k], after[k]) for k in before)
    for name, keep in after.items():
        assert int(keep.sum()) == int(before[name].sum())  # every layer keeps its count
        assert not engine.masks.params[name][~keep].any()  # and what it does not keep is zero
    steps = -(-engine.data.train.num_examples // 64)  # an epoch's optimizer steps
    assert method.state_dict()["updates"] == len(range(0, math.floor(0.75 * 2 * steps), 5))  # from 0 until 75 %
