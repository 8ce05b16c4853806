"""The parts of a job's record that describe what it ran: its retraining variant and its retraining recipe."""

from __future__ import annotations

from prunebench.protocol import TrainingSpec
from prunebench.results import RetrainingRecord, VariantRecord
from prunebench.run.jobs import Job


def variant_record(job: Job) -> VariantRecord | None:
    v = job.retraining_variant
    if v is None:
        return None
    return VariantRecord(
        name=v.name,
        kind=v.kind,
        recipe=v.retrain.model_dump(mode="json"),
        extra_epochs=v.extra_epochs,
        lr=v.lr,
        schedule=v.schedule,
        recipe_of=v.recipe_of,
        ablation=v.ablation,
    )


def retraining_record(regime: str, recipe: str, spec: TrainingSpec) -> RetrainingRecord:
    return RetrainingRecord(
        regime=regime,
        epochs=spec.epochs,
        optimizer=spec.optimizer.model_dump(),
        schedule=spec.schedule.model_dump(),
        recipe=recipe,
        batch_size=spec.batch_size,
    )
