"""Magnitude and random pruning at initialization (Tanaka et al. 2020's `mag` and `rand`): they prune before training,
the one keeping the largest initial |w| under one global threshold, the other a global random draw."""

from __future__ import annotations

import torch
from prunebench_baselines.init_pruning import MagnitudeAtInit, RandomAtInit

from prunebench.methods import load_method
from prunebench.testing import digits, engine_for, pruning_context


def test_both_prune_before_training_and_load_by_module_path() -> None:
    for cls in (MagnitudeAtInit, RandomAtInit):
        assert cls.taxonomy.when == "before_training" and cls.taxonomy.scope == "global"
        assert load_method(f"prunebench_baselines.init_pruning:{cls.__name__}").cls is cls


def test_magnitude_at_init_keeps_the_largest_initial_weights_globally() -> None:
    engine = engine_for(digits(), width=1.0)
    ctx = pruning_context(engine, 0.8)
    weights = {k: w.detach().clone() for k, w in ctx.weights().items()}
    masks = MagnitudeAtInit().prune(ctx)
    flat = torch.cat([w.abs().flatten() for w in weights.values()])
    kept = int(sum(m.sum() for m in masks.values()))
    assert kept == round(0.2 * flat.numel())
    threshold = flat.sort(descending=True).values[kept - 1]
    for name, mask in masks.items():
        assert torch.equal(mask.bool(), weights[name].abs() >= threshold), name


def test_random_at_init_keeps_each_layer_near_the_target_and_follows_the_generator() -> None:
    engine = engine_for(digits(), width=1.0)
    first = RandomAtInit().prune(pruning_context(engine, 0.8, seed=0))
    again = RandomAtInit().prune(pruning_context(engine, 0.8, seed=0))
    other = RandomAtInit().prune(pruning_context(engine, 0.8, seed=1))
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert any(not torch.equal(first[k], other[k]) for k in first)
    for name, mask in first.items():
        if mask.numel() >= 1000:  # a global draw keeps about the same fraction of every large layer
            assert abs(float(mask.float().mean()) - 0.2) < 0.05, name
