"""One job, as named steps read top to bottom: set up, run the method in a job process, measure, audit, record.

The method's code runs only in the job's process (prunebench.run.steps); this process, the runner's, counts
the ledger from that process's reports, measures the final weights it returns with its own code, and
applies the fairness rules. A job whose process fails, in any way, is recorded as failed with the reason,
and the grid goes on.
"""

from __future__ import annotations

import functools
import time
import warnings
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from prunebench.analyses import Analyses
from prunebench.engine import TRAINER_VERSION
from prunebench.errors import JobFailed, one_line
from prunebench.fairness import audit_budget, off_target
from prunebench.methods import Taxonomy
from prunebench.protocol import TrainingSpec, content_hash
from prunebench.results import (
    BaseModelRecord,
    EpochRecord,
    Ledger,
    MethodRecord,
    Metrics,
    ProtocolRef,
    ResultRecord,
    RetrainingRecord,
    Status,
    VariantRecord,
)
from prunebench.run.cache import BaseCheckpoint, weights_sha256
from prunebench.run.isolation import ChildFailed, Limits, run_child
from prunebench.run.measure import Measured
from prunebench.run.messages import BadMessage, Message
from prunebench.run.plan import Job
from prunebench.run.ranks import job_group
from prunebench.run.reports import JobReports
from prunebench.run.tasks import Environment, JobTask, MethodInfo

if TYPE_CHECKING:
    from prunebench.run.runner import Runner


class JobRun:
    """The state of one job while it runs; `run()` takes the steps in order and returns its record."""

    def __init__(self, runner: Runner, job: Job, info: MethodInfo) -> None:
        self.runner = runner
        self.job = job
        self.protocol = job.protocol  # for a retraining variant's job: the protocol with the variant's recipe
        self.info = info
        self.regime = info.taxonomy.retraining
        self.ledger = Ledger()
        self.curves: list[EpochRecord] = []
        self.reasons: list[str] = []
        self.measured: dict[str, Any] = {}
        self.notes: dict[str, Any] = {}
        self.final: dict[str, Any] | None = None
        # The regime's recipe at the protocol's epochs; replaced when the method asks for other epochs.
        try:
            self.recipe_name, self.retrain_spec = self.protocol.retraining_recipe(self.regime)
        except ValueError:
            self.recipe_name, self.retrain_spec = "retrain", self.protocol.retrain

    def run(self) -> ResultRecord:
        started, t0 = datetime.now(timezone.utc), time.perf_counter()
        try:
            self.set_up()
            self.run_method()
            self.check_recipe()
            self.measure()
            self.measure_efficiency()
            self.audit()
            status: Status = "violation" if self.reasons else "ok"
        except JobFailed as exc:
            status, self.reasons = "failed", [one_line(str(exc))]
        return self.record(status, started, time.perf_counter() - t0)

    # ---- the steps ------------------------------------------------------------------------------------
    def set_up(self) -> None:
        """The seed's dense checkpoint (trained or loaded here, by the runner), the analyses of its states, and
        the measuring model; and how the runner counts the job process's reports."""
        runner = self.runner
        self.base: BaseCheckpoint = runner.base(self.job.seed)
        self.ledger.base = self.base.ledger
        self.measurer = runner.measurer()
        self.reports = self._new_reports()

    def _new_reports(self) -> JobReports:
        runner, p = self.runner, self.protocol
        self.analyses = Analyses(p.analyses, self.base.states, when=self.info.taxonomy.when, regime=self.regime)
        return JobReports(
            train_examples=runner.data.train.num_examples,
            dense_flops=self.measurer.flops_dense,
            analyses=self.analyses,
            test_top1=self.measurer.test_top1 if p.evaluation.test_curves else None,
            on_epoch=runner.events.epoch,
            limit=runner.limit,
        )

    def run_method(self) -> None:
        """The method's part of the job, in a job process of its own."""
        runner, job = self.runner, self.job
        task = JobTask(
            environment=Environment.here(),
            job=job,
            base_dir=runner.protocol.source.parent if runner.protocol.source else None,
            device=str(runner.device),
            data=runner.job_data(),
            states=runner.base_states(job.seed),
            snapshots=self.protocol.evaluation.test_curves or self.analyses.per_epoch,
            resume=self._resume(),
            group=job_group(runner.device),
            limit=runner.limit,
        )
        limits = Limits(
            timeout=runner.protocol.runtime.job_timeout,
            memory=runner.protocol.runtime.job_memory,
            max_message=64 * 2**20 + 4 * sum(t.numel() * t.element_size() for t in self.base.states["final"].values()),
        )
        try:
            result = run_child("job", runner.payload(task), self._on_message, limits)
        except ChildFailed as exc:
            raise JobFailed(str(exc)) from None
        self.curves = self.reports.curves
        self.ledger.pruning, self.ledger.retrain = self.reports.ledger.pruning, self.reports.ledger.retrain
        if result.kind == "failed":
            raise JobFailed(str(result.header.get("reason", "the job failed"))[:5000])
        self._take_result(result)

    # ---- checkpoints: a job killed while it retrains goes on from its last epoch ---------------------------
    @property
    def progress_key(self) -> str:
        """What the job's checkpoints are kept under: the protocol, the job, its dense model, the method."""
        what = {
            "protocol": self.runner.protocol.hash,
            "job": self.job.id,
            "base": self.base.sha256,
            "method": self.info.model_dump(mode="json"),
            "trainer": TRAINER_VERSION,
        }
        return f"job-{content_hash(what)[:32]}"

    def _resume(self) -> tuple[dict[str, Any], bytes] | None:
        """The checkpoint an interrupted run of this job left: its reports are counted again (quietly), and what
        the job process needs to go on is handed to it."""
        self.messages: list[dict[str, Any]] = []
        saved = self.runner.progress.load(self.progress_key)
        self.runner.track_checkpoint(self.progress_key)
        if saved is None:
            return None
        on_epoch, self.reports.on_epoch = self.reports.on_epoch, lambda *args: None
        try:
            for m in saved["messages"]:
                self.reports.on_message(Message(m["kind"], m["header"], m["tensors"]))
        except (BadMessage, KeyError, TypeError):
            warnings.warn(
                f"{self.job.id}: its checkpoint's reports cannot be read; starting the job over", stacklevel=2
            )
            self.reports = self._new_reports()
            return None
        finally:
            self.reports.on_epoch = on_epoch
        self.messages = list(saved["messages"])
        header = saved["child"]["header"]
        self.runner.events.job_resumed(self.job, int(header.get("epochs_done", 0)))
        return header, saved["child"]["state"].numpy().tobytes()

    def _on_message(self, message: Message) -> None:
        if message.kind == "checkpoint":
            blob = message.tensors.get("state", {}).get("blob")
            if blob is None:
                raise BadMessage("a checkpoint without its state")
            payload = {"messages": self.messages, "child": {"header": message.header, "state": blob}}
            key = self.progress_key
            self.runner.write(
                self.runner.progress.path(key), functools.partial(self.runner.progress.save, key, payload)
            )
            return
        self.reports.on_message(message)
        self.messages.append({"kind": message.kind, "header": message.header, "tensors": message.tensors})

    def _take_result(self, result: Message) -> None:
        header = result.header
        final = result.tensors.get("final")
        if final is None:
            raise JobFailed("the job's process returned no final weights")
        try:
            taxonomy = Taxonomy.model_validate(header.get("taxonomy"))
        except ValidationError:
            raise JobFailed("the job's process returned no valid taxonomy") from None
        if taxonomy != self.info.taxonomy:
            self.reasons.append("the method's taxonomy in its job differs from the one it was planned with")
        asked = header.get("asked_epochs")
        if asked is not None and (isinstance(asked, bool) or not isinstance(asked, int) or asked < 0):
            raise JobFailed("the job's process returned an invalid number of retraining epochs")
        try:
            self.recipe_name, self.retrain_spec = self.protocol.retraining_recipe(self.regime, asked)
        except ValueError as exc:
            raise JobFailed(f"no retraining recipe for {self.info.name}: {exc}") from None
        notes = header.get("notes")
        self.notes = notes if isinstance(notes, dict) else {}
        violations = header.get("violations")
        if isinstance(violations, list):
            self.reasons.extend(one_line(str(v)) for v in violations[:50])
        self.final = final

    def check_recipe(self) -> None:
        """Retraining ran exactly its recipe: one run of it, as many epochs as it has."""
        runs = self.reports.retrain_specs
        if runs != [self.retrain_spec]:
            self.reasons.append(
                f"retraining ran {len(runs)} time(s) with recipe(s) other than the one the job's regime and epochs "
                f"give ({self.recipe_name}, {self.retrain_spec.epochs} epochs)"
                if runs
                else "the job's process reported no retraining"
            )
        if self.ledger.retrain.steps != sum(self._steps(s) for s in runs):
            self.reasons.append("the retraining ledger does not add up to its recipe")
        self.reasons.extend(self.reports.violations)

    def measured_weights(self) -> dict[str, Any] | None:
        """The final weights the metrics were measured on (the architecture's entries); None when there are
        none (a failed job, weights that could not be measured)."""
        if self.final is None or "weights_sha256" not in self.measured:
            return None
        return {k: self.final[k] for k in self.measurer.keys}

    def _steps(self, spec: TrainingSpec) -> int:
        steps = spec.epochs * -(-self.runner.data.train.num_examples // spec.batch_size)
        return steps if self.runner.limit is None else min(steps, self.runner.limit)

    def measure(self) -> None:
        """Accuracy, sparsity (counted from the final weights) and cost, by the runner's own code."""
        assert self.final is not None
        base = self.base
        m: Measured = self.measurer.measure(
            self.final,
            self.job.sparsity,
            mixed_precision=self.retrain_spec.mixed_precision,
            granularity=self.info.taxonomy.granularity,
        )
        self.reasons.extend(m.problems)
        self.compacted, self.not_compacted = m.compacted, "; ".join(m.warnings) or None
        for line in m.warnings:
            warnings.warn(f"{self.job.id}: {line}", stacklevel=2)
        self.measured["analyses"] = self.analyses.finish(self.curves, self.retrain_spec)
        self.measured["base"] = BaseModelRecord(
            checkpoint_sha256=base.sha256,
            key=base.key,
            pretrained_sha256=self.runner.protocol.base.sha256,
            test_top1=base.test["top1"],
            test_top5=base.test["top5"],
            val_top1=base.val_top1,
        )
        if m.test is None or m.val is None:
            return  # nothing of the architecture's to measure: the problems say why
        self.measured |= {
            "sparsity": m.sparsity,
            "cost": m.cost,
            "metrics": Metrics(
                test_top1=m.test.top1,
                test_top5=m.test.top5,
                test_loss=m.test.loss,
                val_top1=m.val.top1,
                val_loss=m.val.loss,
                test_examples=self._test_examples(),
            ),
            "weights_sha256": weights_sha256({k: self.final[k] for k in self.measurer.keys}),  # measured_weights
        }

    def measure_efficiency(self) -> None:
        """Latency, throughput and memory of the pruned model beside its dense base model (the protocol's
        `efficiency:` section), once the accuracy is measured; what cannot be timed says why."""
        timing = self.runner.efficiency()
        if timing is None or "metrics" not in self.measured:
            return
        dense = self.measurer.dense_model(self.base.states["final"])
        record = timing.record(
            self.measurer.model,
            dense,
            granularity=self.info.taxonomy.granularity,
            compacted=self.compacted,
            why=self.not_compacted,
        )
        if record.not_measured:
            warnings.warn(f"{self.job.id}: efficiency not measured: {record.not_measured}", stacklevel=2)
        self.measured["efficiency"] = record

    def _test_examples(self) -> int | None:
        """Examples the test accuracy was measured on: the test split's, or a smoke run's batches of it."""
        test = self.runner.data.test
        if test is None:
            return None
        limit = self.runner.limit
        evaluated = limit * self.protocol.data.eval_batch_size if limit is not None else test.num_examples
        return min(test.num_examples, evaluated)

    def audit(self) -> None:
        """The fairness rules: sparsity on target within tolerance, the budget and comparison setup."""
        sparsity = self.measured.get("sparsity")
        if sparsity is not None and off_target(sparsity.achieved, sparsity.target, sparsity.tolerance):
            self.reasons.append(
                f"achieved sparsity {sparsity.achieved:.4f} is off the target {sparsity.target:g} by more than "
                f"the tolerance {sparsity.tolerance:g}"
            )
        budget = audit_budget(
            self.protocol,
            self.job.stated_budget,
            self.ledger,
            self.reports.pruning_specs,
            self.measurer.flops_dense,
            self.runner.data.train.num_examples,
            retrain_used=self.retrain_spec,
            recipe=self.recipe_name,
        )
        if self.runner.limit is not None:
            # A smoke run trains a few batches a stage, not the budget: what it spent says nothing of the method.
            budget = budget.model_copy(update={"violations": []})
        self.reasons.extend(budget.violations)
        self.measured["budget"] = budget

    def record(self, status: Status, started: datetime, duration: float) -> ResultRecord:
        job, p, info, spec = self.job, self.protocol, self.info, self.retrain_spec
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
                name=info.name,
                label=job.method_key,
                version=info.version,
                source=info.source,
                config=info.config,
                taxonomy=info.taxonomy.model_dump(),
                citation=info.citation,
                notes=self.notes,
            ),
            seed=job.seed,
            target_sparsity=job.sparsity,
            status=status,
            reasons=self.reasons,
            retraining=retraining_record(self.regime, self.recipe_name, spec),
            ledger=self.ledger,
            curves=self.curves,
            provenance=self.runner.provenance.of_job(started, datetime.now(timezone.utc), duration),
            limit=self.runner.limit,
            **self.measured,
        )


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
