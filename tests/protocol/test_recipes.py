"""Training recipes: schedule windows, stretching a recipe, the recipe each retraining regime runs."""

from __future__ import annotations

import pytest

from prunebench.engine import lr_factor
from prunebench.protocol import RecipeError, RetrainingRecipe, ScheduleSpec, TrainingSpec, parse_protocol
from prunebench.testing import TINY

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


def test_a_regime_without_a_recipe_is_one_error_saying_why() -> None:
    """An unknown regime, or a recipe that would not be valid, is a RecipeError (a ValueError) naming the field."""
    p = parse_protocol(TINY.replace("base: {epochs: 2", "base: {epochs: 0"))
    with pytest.raises(RecipeError, match=r"lr_rewinding over 1 epochs: its base_tail recipe would not be valid "):
        p.retraining_recipe("lr_rewinding")
    with pytest.raises(RecipeError, match=r"fine_tune over 10000000 epochs: .*\(epochs: "):
        p.retraining_recipe("fine_tune", 10_000_000)
    with pytest.raises(RecipeError, match="unknown retraining regime 'distillation'"):
        p.retraining_recipe("distillation")
    assert issubclass(RecipeError, ValueError)
    recipe = p.retraining_recipe("scratch", 3)
    assert (recipe.name, recipe.spec.epochs) == ("retrain", 3) and recipe == RetrainingRecipe("retrain", recipe.spec)


def test_new_schedule_fields_leave_existing_protocol_hashes_alone() -> None:
    p = parse_protocol(TINY)
    assert "span_epochs" not in p.hashed_content()["retrain"]["schedule"]
    windowed = TINY.replace("retrain: {epochs: 1,", "retrain: {epochs: 1, schedule: {span_epochs: 2, start_epoch: 1},")
    assert parse_protocol(windowed).hash != p.hash
