"""RigL: one update (drop and grow) equals google-research/rigl's logic on the same weights and gradients; through
the engine its growth reads the dense gradient, which the ledger counts at update steps only (Evci et al. 2020's
training FLOPs), and the mask moves at a fixed count."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from prunebench_baselines.rigl import RigL
from prunebench_baselines.sparse_evolutionary import SparseEvolutionaryTraining, updated_mask

from prunebench.engine import Engine
from prunebench.methods import Method, PruningContext, StepContext, Taxonomy, registered_methods
from prunebench.protocol import OptimizerSpec, TrainingSpec
from prunebench.testing import digits, engine_for, pruning_context


def reference_update(weights: np.ndarray, mask: np.ndarray, grads: np.ndarray, drop_fraction: float) -> np.ndarray:
    """google-research/rigl, sparse_optimizers_base.py, `_get_update_op` with SparseRigLOptimizer's scores
    (score_drop = |mask * w|, score_grow = |masked gradient|), restated in numpy with the noise on score_drop left
    out (noise_std 0) and tf.nn.top_k's order (descending; on ties the lower index first)."""
    n_total = mask.size
    n_ones = int(mask.sum())
    n_prune = int(np.float32(n_ones) * np.float32(drop_fraction))  # tf.cast(float32 product, int32)
    n_keep = n_ones - n_prune
    score_drop = np.abs(mask * weights).reshape(-1)
    order = np.argsort(-score_drop, kind="stable")
    mask1 = np.zeros(n_total, dtype=np.float32)
    mask1[order[:n_keep]] = 1
    score_grow = np.abs(grads).reshape(-1)
    lifted = np.where(mask1 == 1, score_grow.min() - 1, score_grow)
    order = np.argsort(-lifted, kind="stable")
    mask2 = np.zeros(n_total, dtype=np.float32)
    mask2[order[:n_prune]] = 1
    assert (mask1 * mask2).sum() == 0
    return (mask1 + mask2).reshape(mask.shape)


@pytest.mark.parametrize(("shape", "density", "fraction"), [((64, 32), 0.2, 0.3), ((16, 8, 3, 3), 0.1, 0.15)])
def test_one_update_equals_the_reference(shape: tuple[int, ...], density: float, fraction: float) -> None:
    gen = torch.Generator().manual_seed(7)
    keep = torch.rand(shape, generator=gen) < density
    weights = torch.randn(shape, generator=gen) * keep
    grads = torch.randn(shape, generator=gen)  # dense: nonzero where pruned too
    ours = updated_mask(weights, keep, grads.abs(), fraction)
    theirs = reference_update(weights.numpy(), keep.numpy().astype(np.float32), grads.numpy(), fraction)
    assert torch.equal(ours, torch.from_numpy(theirs).bool())
    assert not torch.equal(ours, keep)  # it did move


def _steps(engine: Any, spec: TrainingSpec) -> list[int]:
    """The examples of every step of a stage of `spec` on the engine's training split, in order."""
    n, b = engine.data.train.num_examples, spec.batch_size
    per_epoch = [b] * (n // b) + ([n % b] if n % b else [])
    return per_epoch * spec.epochs


def _sparse_engine(method: Method[Any], spec: TrainingSpec) -> Engine:
    """An engine on the digits whose retraining is `spec`, `method` hooked in, its masks at 0.9 in place."""
    engine = engine_for(digits(), width=1.0)
    engine.retrain_spec, engine.method = spec, method
    engine.set_masks(method.prune(pruning_context(engine, 0.9)))
    return engine


def test_through_the_engine_it_grows_by_the_dense_gradient_and_the_ledger_counts_it() -> None:
    assert registered_methods()["rigl"].cls is RigL
    spec = TrainingSpec(epochs=2, batch_size=64, optimizer=OptimizerSpec(lr=0.05))
    ledgers, masks = {}, {}
    for cls in (RigL, SparseEvolutionaryTraining):
        engine = _sparse_engine(cls(cls.Config(update_steps=5)), spec)
        before = {k: v.clone() for k, v in engine.masks.masks.items()}
        f_sparse, f_dense = engine.forward_flops, engine.dense_forward_flops
        engine.train(spec, stage="retrain")
        after = engine.masks.masks
        assert any(not torch.equal(before[k], after[k]) for k in before)
        assert all(int(after[k].sum()) == int(before[k].sum()) for k in before)
        ledgers[cls.name], masks[cls.name] = engine.ledger.retrain, after
    steps = _steps(engine, spec)
    end = math.floor(0.75 * len(steps))
    updates = [t for t in range(len(steps)) if t % 5 == 0 and t < end]
    sparse = sum(3.0 * f_sparse * n for n in steps)
    assert ledgers["set"].train_flops == pytest.approx(sparse, rel=1e-12)
    extra = sum((f_dense - f_sparse) * steps[t] for t in updates)
    assert f_dense > f_sparse and extra > 0
    assert ledgers["rigl"].train_flops == pytest.approx(sparse + extra, rel=1e-12)
    assert ledgers["rigl"].steps == ledgers["set"].steps == len(steps)
    assert any(not torch.equal(masks["rigl"][k], masks["set"][k]) for k in masks["set"])  # it grows elsewhere


class _Reader(Method[Any]):
    """Reads the dense gradient at every step it is called, and records what it saw."""

    name = "dense_reader"
    taxonomy = Taxonomy(
        when="before_training",
        granularity="unstructured",
        scope="layerwise",
        schedule="dynamic",
        retraining="fine_tune",
    )
    hook_stages = ("retrain",)
    dense_gradients: ClassVar[bool] = True

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.seen: list[dict[str, torch.Tensor]] = []

    def prune(self, ctx: PruningContext) -> dict[str, torch.Tensor]:
        return ctx.masks_from_scores(
            {k: torch.rand(v.shape, generator=ctx.generator) for k, v in ctx.weights().items()}, scope="layerwise"
        )

    def on_step_end(self, ctx: StepContext) -> None:
        ctx.next_call_at(3 if ctx.step < 3 else None)
        self.seen.append(ctx.dense_gradients())


def test_the_dense_gradient_is_the_unmasked_one_and_only_where_the_hook_runs() -> None:
    spec = TrainingSpec(epochs=1, batch_size=64, optimizer=OptimizerSpec(lr=0.05))
    method = _Reader()
    engine = _sparse_engine(method, spec)
    f_sparse, f_dense = engine.forward_flops, engine.dense_forward_flops
    engine.train(spec, stage="retrain")
    assert len(method.seen) == 2  # steps 1 and 3
    for grads in method.seen:
        for name, keep in engine.masks.masks.items():
            assert grads[name].shape == keep.shape
            assert grads[name][~keep].abs().sum() > 0  # the pruned positions' gradient, which the masks zero
    steps = _steps(engine, spec)
    expected = sum(3.0 * f_sparse * n for n in steps) + (f_dense - f_sparse) * (steps[0] + steps[2])
    assert engine.ledger.retrain.train_flops == pytest.approx(expected, rel=1e-12)
    with pytest.raises(RuntimeError, match="no dense gradient here"):
        engine.dense_gradients()  # outside the hook


def test_a_method_that_does_not_declare_it_gets_none() -> None:
    class Undeclared(_Reader):
        name = "undeclared_reader"
        dense_gradients: ClassVar[bool] = False

    spec = TrainingSpec(epochs=1, batch_size=64, optimizer=OptimizerSpec(lr=0.05))
    engine = _sparse_engine(Undeclared(), spec)
    with pytest.raises(RuntimeError, match="no dense gradient here"):
        engine.train(spec, stage="retrain")


@pytest.mark.slow
def test_under_sx_b_sparse_training_takes_the_epochs_its_flops_buy(tmp_path: Any) -> None:
    """From scratch under SX-B a sparse network trains for as long as the dense model's base training and
    retraining FLOPs allow: a static mask far longer than the protocol's retraining, RigL less (its dense gradients
    cost), each within the budget the audit holds it to."""
    import json
    import os
    import subprocess
    import sys

    from prunebench.testing import TINY

    protocol = tmp_path / "sxb.yaml"
    protocol.write_text(
        TINY.replace(
            "  - name: layerwise_magnitude\n  - name: random\n", "  - name: rigl\n    config: {update_steps: 3}\n"
        )
        .replace("  - name: global_magnitude\n", "  - name: global_magnitude\n  - name: static_sparse\n")
        .replace("sparsities: [0.5, 0.9]", "sparsities: [0.9]")
        + "comparison: SX-B\n"
    )
    cmd = [sys.executable, "-m", "prunebench", "run", str(protocol), "--results", str(tmp_path / "r")]
    done = subprocess.run([*cmd, "--cache", str(tmp_path / "c")], capture_output=True, text=True, env=os.environ)
    assert done.returncode == 0, done.stderr[-2000:]
    records = {(r := json.loads(p.read_text()))["job_id"].split("/")[0]: r for p in (tmp_path / "r").rglob("sp*.json")}
    epochs = {name: r["ledger"]["retrain"]["epochs"] for name, r in records.items()}
    assert epochs["global_magnitude"] == 1 and epochs["static_sparse"] > epochs["rigl"] > 1, epochs
    for name, r in records.items():
        assert r["status"] == "ok", (name, r["reasons"])
        spent = r["ledger"]["retrain"]["train_flops"] + (
            r["ledger"]["base"]["train_flops"] if name == "global_magnitude" else 0
        )
        assert spent <= r["budget"]["limits"]["total_train_flops"], name
    for name in ("static_sparse", "rigl"):  # within a step of an epoch of what the budget allows
        r = records[name]
        epoch_flops = r["ledger"]["retrain"]["train_flops"] / r["ledger"]["retrain"]["epochs"]
        assert r["ledger"]["retrain"]["train_flops"] + 1.5 * epoch_flops > r["budget"]["limits"]["total_train_flops"]


def test_a_grown_connection_starts_at_zero_with_zero_optimizer_state() -> None:
    """What RigL's code does to new connections (grow_init zeros, momentum reset to 0): the engine's doing here."""
    spec = TrainingSpec(epochs=1, batch_size=64, optimizer=OptimizerSpec(lr=0.05, momentum=0.9))
    method = RigL(RigL.Config(update_steps=2))
    engine = _sparse_engine(method, spec)
    seen: list[tuple[str, torch.Tensor]] = []
    original = method.on_step_end

    def watch(ctx: StepContext) -> None:
        before = {k: v.clone() for k, v in engine.masks.masks.items()}
        original(ctx)
        optimizer = engine._optimizer
        assert optimizer is not None
        for name, keep in engine.masks.masks.items():
            grown = keep & ~before[name]
            if grown.any():
                param = engine.masks.params[name]
                assert not param[grown].any()  # at zero
                buffer = optimizer.state[param].get("momentum_buffer")
                assert buffer is not None and not buffer[grown].any()  # no momentum carried in
                seen.append((name, grown))

    method.on_step_end = watch  # type: ignore[method-assign]
    engine.train(spec, stage="retrain")
    assert seen  # connections were grown, and each was checked
