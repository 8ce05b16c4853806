"""Retraining regimes and budgets: the recipe each regime runs, schedule windows, method-chosen retraining
epochs, parameters a method steps itself, and how every comparison setup judges what a job spent."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import pytest
import torch
from conftest import TINY

from prunebench.protocol import BudgetSpec, Protocol, ScheduleSpec, TrainingSpec, parse_protocol
from prunebench.results import Ledger, ResultRecord, StageLedger
from prunebench.runner import Runner, audit_budget, plan, recipe_differences
from prunebench.train import lr_factor

# ---- schedule windows and recipes -------------------------------------------------------------------


def test_a_window_of_a_cosine_is_the_tail_of_the_full_schedule() -> None:
    full = lr_factor(ScheduleSpec(name="cosine", min_lr=0.01), epochs=10, steps_per_epoch=7, peak_lr=0.1)
    tail = lr_factor(
        ScheduleSpec(name="cosine", min_lr=0.01, span_epochs=10, start_epoch=6),
        epochs=4,
        steps_per_epoch=7,
        peak_lr=0.1,
    )
    assert [tail(s) for s in range(28)] == pytest.approx([full(s + 42) for s in range(28)])
    window = lr_factor(
        ScheduleSpec(name="multistep", milestones=[5, 8], span_epochs=10, start_epoch=4), 6, 10, peak_lr=1
    )
    assert [window(s) for s in (0, 9, 10, 39, 40, 59)] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])


def test_schedule_fields_are_checked_against_the_span() -> None:
    TrainingSpec(epochs=2, schedule=ScheduleSpec(name="multistep", milestones=[5], span_epochs=10, start_epoch=8))
    with pytest.raises(ValueError, match="milestone 5 is not before the last epoch of the stage's 3 epochs"):
        TrainingSpec(epochs=3, schedule=ScheduleSpec(name="multistep", milestones=[5]))
    with pytest.raises(ValueError, match=r"start_epoch 10\.0 is not within the schedule's span of 10 epochs"):
        TrainingSpec(epochs=2, schedule=ScheduleSpec(span_epochs=10, start_epoch=10))


def test_with_epochs_stretches_the_schedule_in_proportion() -> None:
    spec = TrainingSpec(epochs=10, schedule=ScheduleSpec(name="multistep", milestones=[5, 8], warmup_epochs=1))
    longer = spec.with_epochs(20)
    assert (longer.epochs, longer.schedule.milestones, longer.schedule.warmup_epochs) == (20, [10, 16], 2)
    assert spec.with_epochs(10) is spec
    assert (
        TrainingSpec(epochs=4, schedule=ScheduleSpec(name="step", step_size=2)).with_epochs(8).schedule.step_size == 4
    )


def test_each_regime_runs_a_recipe_derived_from_the_protocol() -> None:
    p = parse_protocol(TINY.replace("base: {epochs: 2", "base: {epochs: 6, schedule: {name: cosine}"))
    for regime in ("fine_tune", "weight_rewinding", "scratch"):
        assert p.retraining_recipe(regime) == ("retrain", p.retrain)
    name, tail = p.retraining_recipe("lr_rewinding")
    assert name == "base_tail"
    # Base training's optimizer and batch size, its schedule entered for the last retrain.epochs epochs.
    assert tail.optimizer == p.base.optimizer and tail.batch_size == p.base.batch_size
    assert (tail.epochs, tail.schedule.name, tail.schedule.span_epochs, tail.schedule.start_epoch) == (
        1,
        "cosine",
        6,
        5,
    )
    assert p.retraining_recipe("lr_rewinding", 10)[1].schedule.start_epoch == 0  # longer than base: all of it
    assert p.retraining_recipe("scratch", 3)[1].epochs == 3
    with pytest.raises(ValueError, match="unknown retraining regime"):
        p.retraining_recipe("distillation")


def test_new_schedule_fields_leave_existing_protocol_hashes_alone() -> None:
    p = parse_protocol(TINY)
    assert "span_epochs" not in p.hashed_content()["retrain"]["schedule"]
    windowed = TINY.replace("retrain: {epochs: 1,", "retrain: {epochs: 1, schedule: {span_epochs: 2, start_epoch: 1},")
    assert parse_protocol(windowed).hash != p.hash


# ---- the audit, setup by setup --------------------------------------------------------------------

N = 1000  # training examples
DENSE = 1e6  # forward FLOPs per example of the dense model


def _protocol(comparison: str, budget: str = "{pruning_epochs: 4}") -> Protocol:
    text = TINY.replace("seeds: [0]", f"seeds: [0]\ncomparison: {comparison}\nbudget: {budget}")
    return parse_protocol(text)


def _ledger(pruning_epochs: float = 0.0, retrain_epochs: float = 1.0, flops_per_example: float = DENSE) -> Ledger:
    def stage(epochs: float) -> StageLedger:
        return StageLedger(epochs=epochs, examples=int(epochs * N), train_flops=3 * flops_per_example * epochs * N)

    return Ledger(pruning=stage(pruning_epochs), retrain=stage(retrain_epochs))


def _audit(
    comparison: str,
    ledger: Ledger,
    *,
    budget: str = "{pruning_epochs: 4}",
    regime: str = "fine_tune",
    epochs: int | None = None,
    stated: BudgetSpec | None = None,
    specs: list[TrainingSpec] | None = None,
) -> list[str]:
    p = _protocol(comparison, budget)
    recipe, used = p.retraining_recipe(regime, epochs)
    record = audit_budget(p, stated, ledger, specs or [], DENSE, N, retrain_used=used, recipe=recipe)
    return record.violations


@pytest.mark.parametrize(
    ("setup", "violates"),
    [("S1", False), ("S2", False), ("S3.1", True), ("S3.2", True), ("S4.2", True), ("SX-A", False), ("SX-B", False)],
)
def test_scratch_b_longer_retraining_is_judged_per_setup(setup: str, violates: bool) -> None:
    # Twice the retraining epochs at a quarter of the dense FLOPs: within SX-B's default (dense
    # retraining) FLOPs and within SX-A's total of pruning_epochs + retrain.epochs = 5 epochs.
    found = _audit(setup, _ledger(retrain_epochs=2, flops_per_example=DENSE / 4), regime="scratch", epochs=2)
    assert bool(found) == violates, found
    if violates:
        assert any("retrained 2.00 epochs; the protocol fixes 1" in v for v in found)
        assert not any("recipe" in v for v in found), "a stretched schedule is judged once, as epochs"


def test_scratch_b_over_the_totals_breaks_sx_a_and_sx_b() -> None:
    ledger = _ledger(retrain_epochs=6, flops_per_example=DENSE / 2)
    assert any("SX-A: 6.00 epochs" in v for v in _audit("SX-A", ledger, regime="scratch", epochs=6))
    assert any("SX-B: " in v for v in _audit("SX-B", ledger, regime="scratch", epochs=6))


def test_lr_rewinding_breaks_s32_unless_the_protocol_declares_that_schedule() -> None:
    ledger = _ledger()
    (reason,) = _audit("S3.2", ledger, regime="lr_rewinding")
    assert "retrained with the base_tail recipe" in reason
    assert "optimizer.lr 0.1 (protocol: 0.05)" in reason and "schedule.start_epoch 1.0 (protocol: 0.0)" in reason
    assert _audit("S3.1", ledger, regime="lr_rewinding") == []
    assert _audit("SX-A", ledger, regime="lr_rewinding") == []
    # A protocol whose retraining recipe *is* base training's rewound schedule puts every method on it.
    declared = TINY.replace(
        "retrain: {epochs: 1, batch_size: 128, optimizer: {lr: 0.05}}",
        "retrain: {epochs: 1, batch_size: 128, optimizer: {lr: 0.1}, schedule: {span_epochs: 2, start_epoch: 1}}",
    )
    p = parse_protocol(declared)
    recipe, used = p.retraining_recipe("lr_rewinding")
    assert recipe_differences(used, p.retrain) == []
    assert audit_budget(p, None, ledger, [], DENSE, N, retrain_used=used, recipe=recipe).violations == []


def test_pruning_budget_and_pruning_setups() -> None:
    over = _ledger(pruning_epochs=5)
    assert any("trained 5.00 epochs while pruning; the budget allows 4" in v for v in _audit("S1", over))
    under = _ledger(pruning_epochs=3)
    assert _audit("S3.2", under) == []
    assert any("S4.1: pruned over 3.00 epochs; every method must spend 4" in v for v in _audit("S4.1", under))
    # S4.2 also fixes the recipe of training while pruning: learning-rate rewinding's rounds break it.
    p = _protocol("S4.2")
    tail = p.retraining_recipe("lr_rewinding", 2)[1]
    found = _audit("S4.2", _ledger(pruning_epochs=4), specs=[tail])
    assert found == ["S4.2: trained while pruning with an optimizer or LR schedule of its own"]


def test_a_budget_stated_for_the_method_replaces_the_protocols() -> None:
    p = _protocol("SX-A")
    stated = BudgetSpec(pruning_epochs=10)
    record = audit_budget(p, stated, _ledger(pruning_epochs=8), [], DENSE, N)
    assert record.stated_by == "method" and record.violations == []
    assert record.limits["total_epochs"] == 11
    assert audit_budget(p, None, _ledger(pruning_epochs=8), [], DENSE, N).violations


# ---- the engine and the runner --------------------------------------------------------------------

CORE_METHODS = textwrap.dedent(
    """\
    import torch
    from torch import nn
    from prunebench.methods import Method, Taxonomy

    class OwnScale(Method):
        '''Adds a parameter to the model that it never steps, and trains while pruning: the engine's
        optimizer must leave it alone. Records the LR its hooks see and what the context offers.'''
        name = "own_scale"
        taxonomy = Taxonomy(when="after_training", granularity="unstructured", scope="global",
                            schedule="gradual", retraining="fine_tune")
        def __init__(self, config=None):
            super().__init__(config)
            self.extra = None
            self.lrs = []
        def own_parameters(self):
            return [self.extra] if self.extra is not None else []
        def prune(self, ctx):
            self.extra = nn.Parameter(torch.ones(()))
            ctx.model.register_parameter("own_scale", self.extra)
            ctx.note("budget", ctx.budget.pruning_epochs)
            ctx.note("flops_ratio", ctx.forward_flops(dense=True) / ctx.forward_flops())
            ctx.train(2, spec=ctx.recipe("fine_tune", 2))
            self.grad_seen = self.extra.grad is not None
            del ctx.model.own_scale
            return ctx.masks_from_scores({k: w.abs() for k, w in ctx.weights().items()}, scope="global")
        def loss_term(self, model):
            return 1e-3 * self.extra ** 2 if self.extra is not None and hasattr(model, "own_scale") else None
        def on_step_end(self, ctx):
            if ctx.stage == "pruning":
                self.lrs.append(ctx.lr)

    class AsksEpochs(Method):
        name = "asks_epochs"
        taxonomy = Taxonomy(when="after_training", granularity="unstructured", scope="global",
                            schedule="one_shot", retraining="fine_tune")
        answer = 3
        def prune(self, ctx):
            return ctx.masks_from_scores({k: w.abs() for k, w in ctx.weights().items()}, scope="global")
        def retrain_epochs(self, ctx):
            return self.answer

    class AsksNonsense(AsksEpochs):
        name = "asks_nonsense"
        answer = 2.5
    """
)


def _run(tmp_path: Path, cache: Path, methods: list[str], extra: str = "") -> dict[str, ResultRecord]:
    (tmp_path / "core.py").write_text(CORE_METHODS)
    head = TINY.split("methods:")[0].replace("[0.5, 0.9]", "[0.5]")
    text = head + extra + "methods:\n" + "".join(f"  - name: {m}\n" for m in methods)
    (tmp_path / "p.yaml").write_text(text)
    p = parse_protocol(text, tmp_path / "p.yaml")
    runner = Runner(p, results_dir=tmp_path / "r", cache_dir=cache, device="cpu")
    return {r.method.label: r for r in runner.run(plan(p))}


def test_parameters_a_method_steps_itself_stay_out_of_the_engine_optimizer(tmp_path: Path, shared_cache: Path):
    (tmp_path / "core.py").write_text(CORE_METHODS)
    text = TINY.split("methods:")[0].replace("[0.5, 0.9]", "[0.5]") + "budget: {pruning_epochs: 2}\n"
    text += "methods:\n  - name: core.py:OwnScale\n"
    p = parse_protocol(text, tmp_path / "p.yaml")
    runner = Runner(p, results_dir=tmp_path / "r", cache_dir=shared_cache, device="cpu")
    (r,) = runner.run(plan(p))
    method = runner.methods[0][0]
    assert r.status == "ok", r.reasons
    assert method.grad_seen, "the loss term reached the parameter"
    assert method.extra.item() == 1.0, "weight decay and SGD of the engine would have moved it"
    # Hooks see the engine's LR (the retraining recipe's, 0.05 constant) and the stage is counted as a run.
    assert set(method.lrs) == {0.05} and len(method.lrs) == r.ledger.pruning.steps == 22
    assert (r.ledger.pruning.runs, r.ledger.retrain.runs) == (1, 1)
    assert r.method.notes["budget"] == 2
    assert r.method.notes["flops_ratio"] == pytest.approx(1.0)


def test_retraining_epochs_a_method_asks_for_are_run_recorded_and_judged(tmp_path: Path, shared_cache: Path):
    got = _run(tmp_path, shared_cache, ["core.py:AsksEpochs", "core.py:AsksNonsense"])
    asks = got["core.py:AsksEpochs"]
    assert asks.ledger.retrain.epochs == pytest.approx(3)
    assert (asks.retraining.epochs, asks.retraining.recipe, asks.retraining.batch_size) == (3, "retrain", 128)
    assert asks.status == "violation" and asks.reasons == ["S3.2: retrained 3.00 epochs; the protocol fixes 1"]
    nonsense = got["core.py:AsksNonsense"]
    assert nonsense.status == "failed" and "returned 2.5, not a number of epochs" in nonsense.reasons[0]


def test_the_result_records_the_recipe_of_learning_rate_rewinding(tmp_path: Path, shared_cache: Path):
    got = _run(tmp_path, shared_cache, ["lr_rewinding"], extra="comparison: S3.1\nbudget: {pruning_epochs: 3}\n")
    r = got["lr_rewinding"]
    assert r.status == "ok", r.reasons  # S3.1 fixes the epochs, not the schedule
    assert r.retraining.recipe == "base_tail" and r.retraining.regime == "lr_rewinding"
    assert r.retraining.optimizer["lr"] == 0.1  # base training's, not the protocol's retraining 0.05
    assert (r.retraining.schedule["span_epochs"], r.retraining.schedule["start_epoch"]) == (2, 1.0)
    assert r.ledger.retrain.epochs == pytest.approx(1)
    assert math.isclose(r.curves[-1].lr, 0.1)
    assert torch.isfinite(torch.tensor(r.metrics.test_top1))  # type: ignore[union-attr]
