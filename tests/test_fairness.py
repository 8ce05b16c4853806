"""The fairness rules: how every comparison setup judges what a job spent (prunebench.fairness)."""

from __future__ import annotations

import pytest

from prunebench.fairness import (
    Allowance,
    allowance,
    assumes_shared_dense_model,
    audit_budget,
    counted,
    job_states,
    near_chance,
    over_effective,
    recipe_differences,
    trains_from_scratch,
)
from prunebench.protocol import BudgetSpec, Protocol, TrainingSpec, parse_protocol
from prunebench.results import Ledger, StageLedger
from prunebench.testing import TINY

# ---- the audit, setup by setup --------------------------------------------------------------------

N = 1000  # training examples
DENSE = 1e6  # forward FLOPs per example of the dense model


def _protocol(comparison: str, budget: str = "{pruning_epochs: 4}") -> Protocol:
    text = TINY.replace("seeds: [0]", f"seeds: [0]\ncomparison: {comparison}\nbudget: {budget}")
    return parse_protocol(text)


def _ledger(pruning_epochs: float = 0.0, retrain_epochs: float = 1.0, flops_per_example: float = DENSE) -> Ledger:
    """A job's ledger: TINY's dense base training (2 epochs), then pruning and retraining at `flops_per_example`."""

    def stage(epochs: float, flops: float = flops_per_example) -> StageLedger:
        return StageLedger(epochs=epochs, examples=int(epochs * N), train_flops=3 * flops * epochs * N)

    return Ledger(base=stage(2.0, DENSE), pruning=stage(pruning_epochs), retrain=stage(retrain_epochs))


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
    # SX-A counts every stage: base training's 2 epochs, then 6 of retraining, against 2 + 4 + 1 = 7.
    assert any(
        "SX-A: 8.00 epochs in all; the budget is 7" in v for v in _audit("SX-A", ledger, regime="scratch", epochs=6)
    )
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
    assert record.limits["total_epochs"] == 13  # base training's 2, then pruning's 10 and retraining's 1
    assert audit_budget(p, None, _ledger(pruning_epochs=8), [], DENSE, N).violations


def test_a_job_that_prunes_before_training_never_gets_the_trained_weights() -> None:
    """Nor an iterate of base training: the rewind point only when it is the initialization (rewind_epoch 0)."""
    assert job_states("before_training", rewind_is_init=True) == ("init", "rewind")
    assert job_states("before_training", rewind_is_init=False) == ("init",)
    for when in ("during_training", "after_training"):
        assert job_states(when, rewind_is_init=False) == ("init", "rewind", "final")


@pytest.mark.parametrize("rewind_epoch", [0, 1])
def test_a_method_that_prunes_before_training_cannot_rewind_to_an_iterate_of_base_training(rewind_epoch: int) -> None:
    from prunebench.errors import FieldError
    from prunebench.methods import Taxonomy
    from prunebench.run.sandbox import MethodInfo
    from prunebench.run.validation import check_method

    pruning = "pruning: {sparsities: [0.5, 0.9]}"
    assert pruning in TINY
    p = parse_protocol(TINY.replace(pruning, f"pruning: {{sparsities: [0.5, 0.9], rewind_epoch: {rewind_epoch}}}"))
    taxonomy = Taxonomy(
        when="before_training", granularity="unstructured", scope="global", schedule="one_shot", retraining="fine_tune"
    )
    info = MethodInfo(name="m", version="1", citation="", source="", taxonomy=taxonomy, config={})
    check_method(p, 0, info)  # fine-tuning from the initialization: whatever the rewind point
    rewinding = info.model_copy(update={"taxonomy": taxonomy.model_copy(update={"retraining": "weight_rewinding"})})
    if rewind_epoch == 0:
        check_method(p, 0, rewinding)  # the rewind point is the initialization
    else:
        with pytest.raises(FieldError, match=r"prunes before training and rewinds to pruning\.rewind_epoch 1"):
            check_method(p, 0, rewinding)


# ---- sparse training from scratch beside pruning ----------------------------------------------------------


def test_sparse_training_from_scratch_is_compared_only_at_equal_totals() -> None:
    assert trains_from_scratch("before_training", "dynamic")
    assert not trains_from_scratch("before_training", "one_shot")  # pruning at initialization: a mask, then training
    assert not trains_from_scratch("after_training", "dynamic")
    assert [
        s for s in ("S1", "S2", "S3.1", "S3.2", "S4.1", "S4.2", "SX-A", "SX-B") if assumes_shared_dense_model(s)
    ] == [
        "S2",
        "S3.1",
        "S3.2",
        "S4.1",
        "S4.2",
    ]


def test_the_totals_count_base_training_for_a_job_that_used_it_and_not_for_one_from_scratch() -> None:
    ledger = _ledger(retrain_epochs=7)
    assert counted(ledger, "S3.2", dense_model=True).epochs == 7  # the ladder: after the base model
    assert counted(ledger, "SX-A", dense_model=True).epochs == 9  # every stage
    assert counted(ledger, "SX-A", dense_model=False).epochs == 7  # it never used the dense model
    # SX-A's total is 2 + 4 + 1 = 7 epochs: pruning spends 2 of them on its dense model, sparse training none.
    p = _protocol("SX-A")
    assert audit_budget(p, None, _ledger(pruning_epochs=4, retrain_epochs=1), [], DENSE, N).violations == []
    assert audit_budget(p, None, ledger, [], DENSE, N, dense_model=False).violations == []
    over = audit_budget(p, None, _ledger(retrain_epochs=8), [], DENSE, N, dense_model=False).violations
    assert over == ["SX-A: 8.00 epochs in all; the budget is 7"]


def test_the_allowance_is_what_is_left_from_where_the_job_starts() -> None:
    sx_a, sx_b = _protocol("SX-A"), _protocol("SX-B")
    assert allowance(_protocol("S3.2"), None, DENSE, N, dense_model=False) == Allowance()
    assert allowance(sx_a, None, DENSE, N, dense_model=True) == Allowance(epochs=5, train_examples=N)
    assert allowance(sx_a, None, DENSE, N, dense_model=False) == Allowance(epochs=7, train_examples=N)
    # SX-B's default: retraining the dense model (1 epoch), plus base training's 2 epochs for sparse training.
    assert allowance(sx_b, None, DENSE, N, dense_model=True) == Allowance(train_flops=3 * DENSE * N, train_examples=N)
    scratch = allowance(sx_b, None, DENSE, N, dense_model=False)
    assert scratch.train_flops == pytest.approx(9 * DENSE * N)
    # At a quarter of the dense FLOPs a sparse network trains 12 epochs on them, and the audit agrees.
    fits = audit_budget(
        sx_b, None, _ledger(retrain_epochs=12, flops_per_example=DENSE / 4), [], DENSE, N, dense_model=False
    )
    assert fits.violations == []
    beyond = _ledger(retrain_epochs=13, flops_per_example=DENSE / 4)
    assert audit_budget(sx_b, None, beyond, [], DENSE, N, dense_model=False).violations


def test_the_margins_of_chance_and_of_effective_sparsity_are_inclusive_bounds() -> None:
    """docs/analyses.md: degenerate at or below chance plus the margin (below chance too); effective sparsity flagged
    only beyond the target plus its margin, as achieved sparsity beyond its tolerance."""
    assert near_chance(0.12, 0.1, 0.02) and near_chance(0.0, 0.1, 0.02) and not near_chance(0.1201, 0.1, 0.02)
    assert near_chance(0.1, 0.1, 0.0) and not near_chance(0.1001, 0.1, 0.0)
    assert not over_effective(0.51, 0.5, 0.01) and over_effective(0.5101, 0.5, 0.01)
    assert over_effective(1.0, 0.99, 0.005) and not over_effective(0.9, 0.9, 0.0)
