"""One job, as named steps read top to bottom: set up, prune, check for tampering, apply the regime, retrain,
measure, audit, record.

Every step that runs a method's code turns what it raises into a `JobFailed` naming the hook, so a failing
method fails its job (with the reason in its record) and the grid goes on.
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import torch

from prunebench.engine import Analyses, Engine, derive_seed
from prunebench.errors import JobFailed
from prunebench.fairness import audit_budget, changed_outside_engine, off_target
from prunebench.masks import Masks, measure_sparsity
from prunebench.methods import LoadedMethod, Method, MethodConfig, PruningContext
from prunebench.protocol import TrainingSpec
from prunebench.results import (
    BaseModelRecord,
    BudgetRecord,
    CostRecord,
    EpochRecord,
    LayerSparsity,
    Ledger,
    MethodRecord,
    Metrics,
    ProtocolRef,
    ResultRecord,
    RetrainingRecord,
    SparsityRecord,
    Status,
    VariantRecord,
)
from prunebench.run.cache import BaseCheckpoint
from prunebench.run.plan import Job

if TYPE_CHECKING:
    from prunebench.run.runner import Runner

T = TypeVar("T")


class JobRun:
    """The state of one job while it runs; `run()` takes the steps in order and returns its record."""

    def __init__(self, runner: Runner, job: Job, loaded: LoadedMethod, config: MethodConfig) -> None:
        self.runner = runner
        self.job = job
        self.protocol = job.protocol  # for a retraining variant's job: the protocol with the variant's recipe
        self.method: Method[Any] = loaded.instantiate(config)  # a fresh instance: no state from earlier jobs
        self.loaded = loaded
        self.ledger = Ledger()
        self.curves: list[EpochRecord] = []
        self.reasons: list[str] = []
        self.measured: dict[str, Any] = {}
        self.notes: dict[str, Any] = {}
        self.regime = self.method.taxonomy.retraining
        # The regime's recipe at the protocol's epochs; replaced when the method asks for other epochs.
        try:
            self.recipe_name, self.retrain_spec = self.protocol.retraining_recipe(self.regime)
        except ValueError:
            self.recipe_name, self.retrain_spec = "retrain", self.protocol.retrain

    def run(self) -> ResultRecord:
        started, t0 = datetime.now(timezone.utc), time.perf_counter()
        try:
            self.set_up()
            masks = self.prune()
            self.check_tampering(masks)
            self.apply_regime(masks)
            self.retrain()
            self.measure()
            self.audit()
            status: Status = "violation" if self.reasons else "ok"
        except JobFailed as exc:
            status, self.reasons = "failed", [str(exc)]
        return self.record(status, started, time.perf_counter() - t0)

    # ---- the steps ------------------------------------------------------------------------------------
    def set_up(self) -> None:
        """The job's model from its seed's dense checkpoint (its initialization for methods that prune
        before training), its engine and pruning context."""
        job, p, runner = self.job, self.protocol, self.runner
        self.base: BaseCheckpoint = runner.base(job.seed)
        self.ledger.base = self.base.ledger
        model = runner.build_model(job.seed)
        self.start = self.base.states["init" if self.method.taxonomy.when == "before_training" else "final"]
        model.load_state_dict(self.start)
        self.model = model
        engine = runner.engine(model, job.seed, self.base.states, p.retrain)
        engine.ledger = self.ledger
        engine.method = self.method
        self.analyses = Analyses(p.analyses, self.base.states, when=self.method.taxonomy.when, regime=self.regime)
        if self.analyses.per_epoch:
            engine.analyses = self.analyses  # reads the weights after each epoch; never changes them
        self.engine: Engine = engine
        self.dense_params = sum(t.numel() for t in model.parameters())
        self.dense_flops = engine.forward_flops
        self.ctx = PruningContext(
            engine,
            target_sparsity=job.sparsity,
            generator=torch.Generator().manual_seed(derive_seed(job.seed, job.method_key, job.sparsity)),
            scoring_examples=p.pruning.scoring_examples,
            budget=job.budget,
        )
        self.notes = engine.notes

    def prune(self) -> Masks:
        return self._call("prune", lambda: self.method.prune(self.ctx))

    def check_tampering(self, masks: Masks) -> None:
        """A method scores and chooses; only the engine may change weights (by training or rewinding through
        the context). Anything else would be retraining off the books."""
        if not self.engine.weights_changed:
            changed = changed_outside_engine(self.start, self.model, masks)
            if changed:
                self.reasons.append(f"the method changed {changed} outside the engine while pruning")

    def apply_regime(self, masks: Masks) -> None:
        """Enforce the final masks, put the weights retraining starts from in place, and fix its recipe."""
        job, engine = self.job, self.engine
        engine.set_masks(masks)
        if self.regime == "weight_rewinding":
            engine.load_weights(self.base.states["rewind"])
        elif self.regime == "scratch":
            torch.manual_seed(derive_seed(job.seed, job.method_key, job.sparsity, "scratch"))
            engine.load_weights(self.runner.fresh_model().state_dict())
        asked = self._call("retrain_epochs", lambda: self.method.retrain_epochs(self.ctx))
        if asked is not None and (isinstance(asked, bool) or not isinstance(asked, int) or asked < 0):
            raise JobFailed(f"{self.method.name}.retrain_epochs returned {asked!r}, not a number of epochs")
        try:
            self.recipe_name, self.retrain_spec = self.protocol.retraining_recipe(self.regime, asked)
        except ValueError as exc:
            raise JobFailed(f"no retraining recipe for {self.method.name}: {exc}") from None

    def retrain(self) -> None:
        self.analyses.start_retraining(self.engine.masks.params, self.engine.masks.masks)
        try:
            self.engine.train(self.retrain_spec, stage="retrain")
        except JobFailed:
            raise
        except Exception as exc:
            raise JobFailed(f"retraining raised {describe(exc)}") from None
        self.curves = self.engine.curves

    def measure(self) -> None:
        """Accuracy, sparsity (counted from the final weights) and cost, by the engine's own code."""
        engine, data, base = self.engine, self.runner.data, self.base
        test, val = engine.evaluate(data.test), engine.evaluate(data.val)
        achieved, per_layer = measure_sparsity(engine.masks.params)
        kept = sum(n - z for n, z in per_layer.values())
        prunable_total = sum(n for n, _ in per_layer.values())
        self.measured = {
            "sparsity": SparsityRecord(
                target=self.job.sparsity,
                achieved=achieved,
                tolerance=self.protocol.pruning.tolerance,
                per_layer={k: LayerSparsity(numel=n, zeros=z) for k, (n, z) in per_layer.items()},
            ),
            "metrics": Metrics(
                test_top1=test.top1, test_top5=test.top5, test_loss=test.loss, val_top1=val.top1, val_loss=val.loss
            ),
            "base": BaseModelRecord(
                checkpoint_sha256=base.sha256,
                key=base.key,
                test_top1=base.test["top1"],
                test_top5=base.test["top5"],
                val_top1=base.val_top1,
            ),
            "cost": CostRecord(
                params_dense=self.dense_params,
                params_effective=self.dense_params - prunable_total + kept,
                flops_dense=self.dense_flops,
                flops_effective=engine.forward_flops,
            ),
            "analyses": self.analyses.finish(self.curves, self.retrain_spec),
        }

    def audit(self) -> None:
        """The fairness rules: sparsity on target within tolerance, the budget and comparison setup."""
        sparsity = self.measured["sparsity"]
        if off_target(sparsity.achieved, sparsity.target, sparsity.tolerance):
            self.reasons.append(
                f"achieved sparsity {sparsity.achieved:.4f} is off the target {sparsity.target:g} by more than "
                f"the tolerance {sparsity.tolerance:g}"
            )
        budget: BudgetRecord = audit_budget(
            self.protocol,
            self.job.stated_budget,
            self.ledger,
            self.engine.pruning_specs,
            self.dense_flops,
            self.runner.data.train.num_examples,
            retrain_used=self.retrain_spec,
            recipe=self.recipe_name,
        )
        self.reasons.extend(budget.violations)
        self.measured["budget"] = budget

    def record(self, status: Status, started: datetime, duration: float) -> ResultRecord:
        job, p, method, spec = self.job, self.protocol, self.method, self.retrain_spec
        source = self.runner.protocol.source
        return ResultRecord(
            job_id=job.id,
            protocol=ProtocolRef(
                name=p.name,
                hash=self.runner.protocol.hash,  # the protocol's own hash, also for a variant's job
                comparison=p.comparison,
                source=str(source) if source else None,
            ),
            variant=variant_record(job),
            method=MethodRecord(
                name=method.name,
                label=job.method_key,
                version=method.version,
                source=self.loaded.source,
                config=method.config.model_dump(mode="json"),
                taxonomy=method.taxonomy.model_dump(),
                citation=method.citation,
                notes=_jsonable(self.notes),
            ),
            seed=job.seed,
            target_sparsity=job.sparsity,
            status=status,
            reasons=self.reasons,
            retraining=retraining_record(self.regime, self.recipe_name, spec),
            ledger=self.ledger,
            curves=self.curves,
            provenance=self.runner.provenance.of_job(started, datetime.now(timezone.utc), duration),
            **self.measured,
        )

    # ---- helpers --------------------------------------------------------------------------------------
    def _call(self, hook: str, call: Callable[[], T]) -> T:
        """Run a method's hook; whatever it raises fails the job, named."""
        try:
            return call()
        except JobFailed:
            raise
        except Exception as exc:
            raise JobFailed(f"{self.method.name}.{hook} raised {describe(exc)}") from None


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


def describe(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
    return f"{exc.__class__.__name__}: {exc}{where}"


def _jsonable(notes: dict[str, Any]) -> dict[str, Any]:
    """A method's notes as JSON values (a one-element tensor as its number, anything else as its text),
    so that a note can never break the result record."""

    def fallback(value: Any) -> Any:
        return value.item() if isinstance(value, torch.Tensor) and value.numel() == 1 else str(value)

    return json.loads(json.dumps(notes, default=fallback))
