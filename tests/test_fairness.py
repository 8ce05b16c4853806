"""The fairness rules: how every comparison setup judges what a job spent (prunebench.fairness)."""

from __future__ import annotations

import pytest

from prunebench.fairness import audit_budget, job_states, recipe_differences
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
