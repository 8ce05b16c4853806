"""One job, as named steps read top to bottom: set up, run the method in a job process, measure, audit, record.

The method's code runs only in the job's process (prunebench.run.sandbox.steps); this process, the runner's, counts
the ledger from that process's reports, measures the final weights it returns with its own code, and
applies the fairness rules. A job whose process fails, in any way, is recorded as failed with the reason,
and the grid goes on.
"""

from __future__ import annotations

import functools
import math
import time
import warnings
from collections.abc import Collection
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError
from torch import Tensor

from prunebench.analyses import Analyses
from prunebench.errors import JobFailed, PrunebenchError, one_line
from prunebench.fairness import audit_budget, near_chance, off_target, uses_dense_model
from prunebench.methods import Taxonomy
from prunebench.models import model_files
from prunebench.protocol import RecipeError, TrainingSpec
from prunebench.results import (
    BaseModelRecord,
    EpochRecord,
    LanguageRecord,
    Ledger,
    MethodRecord,
    Metrics,
    ProtocolRef,
    ResultRecord,
    Status,
)
from prunebench.run.dense import held_states, weights_sha256
from prunebench.run.job.environment import JobEnvironment
from prunebench.run.job.notes import cap_notes
from prunebench.run.job.record import retraining_record, variant_record
from prunebench.run.job.reports import JobReports
from prunebench.run.job.resume import ReportLog, checkpoint_key
from prunebench.run.jobs import Job
from prunebench.run.measurement import Measured
from prunebench.run.measurement.targets import cost_target_miss, cost_target_record
from prunebench.run.ranks import job_group
from prunebench.run.sandbox import ChildFailed, Environment, JobTask, Limits, Message, MethodInfo, run_job
from prunebench.run.sandbox.inprocess import run_job_in_process
from prunebench.run.sandbox.method_process import MethodTask, method_process_wanted
from prunebench.run.setup import reinitialized


class JobRun:
    """The state of one job while it runs; `run()` takes the steps in order and returns its record."""

    def __init__(self, env: JobEnvironment, job: Job, info: MethodInfo) -> None:
        self.env = env
        self.job = job
        self.protocol = job.protocol  # for a retraining variant's job: the protocol with the variant's recipe
        self.info = info
        self.method_process = method_process_wanted(info.step_code, in_process=env.in_process)
        self.regime = info.taxonomy.retraining
        self.ledger = Ledger()
        self.curves: list[EpochRecord] = []
        self.reasons: list[str] = []
        self.measured: dict[str, Any] = {}
        self.notes: dict[str, Any] = {}
        self.notes_cut: str | None = None  # what cap_notes cut of the method's notes
        self.final: dict[str, Any] | None = None
        # The regime's recipe at the protocol's epochs; replaced when the method asks for other epochs. A regime
        # without one (validation refuses it for the protocol's own recipe) fails the job with the reason; the
        # protocol's recipe stands in only to describe that failed job.
        self.no_recipe: str | None = None
        try:
            self.recipe_name, self.retrain_spec = self.protocol.retraining_recipe(self.regime)
        except RecipeError as exc:
            self.no_recipe = f"no retraining recipe for {info.name}: {exc}"
            self.recipe_name, self.retrain_spec = "retrain", self.protocol.retrain

    def run(self) -> ResultRecord:
        started, t0 = datetime.now(timezone.utc), time.perf_counter()
        try:
            if self.no_recipe is not None:
                raise JobFailed(self.no_recipe)
            self.set_up()
            self.run_method()
            self.check_recipe()
            self.check_kept_weights()
            self.measure()
            self.measure_efficiency()
            self.measure_evaluations()
            self.audit()
            status: Status = "violation" if self.reasons else "ok"
        except JobFailed as exc:
            status, self.reasons = "failed", [one_line(str(exc))]
        return self.record(status, started, time.perf_counter() - t0)

    # ---- the steps ------------------------------------------------------------------------------------
    def set_up(self) -> None:
        """The seed's dense checkpoint (made or loaded by the run before the job), the analyses of its states, and
        the measuring model; and how the runner counts the job process's reports."""
        self.base = self.env.base
        self.ledger.base = self.base.ledger
        self.measurer = self.env.measurer
        self.log = ReportLog(checkpoint_key(self.env, self.job, self.info), self.env, self.job, self._new_reports)

    @property
    def reports(self) -> JobReports:
        """How the runner counted the job process's reports (prunebench.run.job.reports)."""
        return self.log.reports

    def _new_reports(self) -> JobReports:
        env, p = self.env, self.protocol
        self.analyses = Analyses(p.analyses, self.base.states, when=self.info.taxonomy.when, regime=self.regime)
        return JobReports(
            train_examples=env.data.train.num_examples,
            dense_flops=self.measurer.flops_dense,
            analyses=self.analyses,
            test_top1=self.measurer.test_top1 if p.evaluation.test_curves else None,
            on_epoch=env.events.epoch,
            limit=env.limit,
        )

    def run_method(self) -> None:
        """The method's part of the job, in a job process of its own."""
        env, job = self.env, self.job
        base_dir = env.protocol.source.parent if env.protocol.source else None
        task = JobTask(
            environment=Environment.here(base_dir, (job.method_spec,), model_files(job.protocol.model)),
            job=job,
            base_dir=base_dir,
            device=str(env.device),
            data=env.job_data,
            states=env.base_states(self.info.taxonomy.when),
            snapshots=self.protocol.evaluation.test_curves or self.analyses.per_epoch,
            resume=self.log.resume(),
            group=job_group(env.device),
            limit=env.limit,
            taxonomy=self.info.taxonomy,
        )
        method = None
        if self.method_process:
            data = env.data
            # The method's process reads no data at all: the data root is hidden from it even where the engine's
            # process reads its batches from there (a data set streamed from disk).
            environment = replace(task.environment, hidden=(*task.environment.hidden, *self._data_root()))
            seen = job.as_method_sees_it()  # an ablation the engine makes is not the method's to know of
            method = MethodTask(environment, seen, base_dir, task.device, data.num_classes, data.input_shape)
        limits = Limits(
            timeout=env.protocol.runtime.job_timeout,
            memory=env.protocol.runtime.job_memory,
            max_message=64 * 2**20 + 4 * sum(t.numel() * t.element_size() for t in self.base.states["final"].values()),
        )
        try:
            if env.in_process:  # for a debugger: the records say so and are never ranked
                result = run_job_in_process(task, self.log.on_message, limits.max_message)
            else:
                result = run_job(task, self.log.on_message, limits, method)
        except ChildFailed as exc:
            raise JobFailed(str(exc)) from None
        self.curves = self.reports.curves
        self.ledger.pruning, self.ledger.retrain = self.reports.ledger.pruning, self.reports.ledger.retrain
        if result.kind == "failed":
            raise JobFailed(str(result.header.get("reason", "the job failed"))[:5000])
        self._take_result(result)

    def _data_root(self) -> tuple[str, ...]:
        try:
            root = self.protocol.data.resolved_root()
        except PrunebenchError:  # no root (an unset variable): nothing to hide
            return ()
        return (str(root),) if root is not None else ()

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
        except RecipeError as exc:
            raise JobFailed(f"no retraining recipe for {self.info.name}: {exc}") from None
        notes = header.get("notes")
        self.notes, self.notes_cut = cap_notes(notes if isinstance(notes, dict) else {})
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

    def check_kept_weights(self) -> None:
        """A method that trains nothing while pruning changes no weight it keeps: retraining starts, wherever its
        masks keep a weight, from a state its job held, bit for bit (the one it started from, or one it loaded:
        the initialization, the rewind point); so do the other parameters and buffers (but a filter method's,
        whose pruned filters take their channels' entries with them). Checked on the model the job's process
        reported at the start of retraining, against the runner's own copy of the dense model's states: one
        comparison a job. Retraining from a fresh draw (scratch) has nothing to compare with."""
        if self.regime == "scratch" or self.reports.pruning_specs or not self.reports.retrain_specs:
            return
        start = self.reports.retraining_start
        if start is None:
            self.reasons.append("the job's process did not report the weights retraining started from")
            return
        held = held_states(self.base.states, self.info.taxonomy.when)
        if self.job.ablation == "reinit":  # the engine's fresh draw in place of what the regime would start from
            held = {"reinit": reinitialized(self.protocol, self.env.data, self.job.seed)}
        filters = self.info.taxonomy.granularity == "filter"
        # Prunable weights the engine's solver rewrote are the engine's work; every other entry must be untouched.
        prunable = set(self.measurer.params)
        keys = [key for key in self.measurer.keys if key not in self.reports.reconstructed & prunable]
        differences = {
            name: kept_differences(start, state, keys, prunable, filters=filters) for name, state in held.items()
        }
        if all(differences.values()):
            origin = "init" if self.info.taxonomy.when == "before_training" else "final"
            origin = "reinit" if "reinit" in held else origin
            found = differences.get(origin) or next(iter(differences.values()))
            more = f" and {len(found) - 1} more" if len(found) > 1 else ""
            self.reasons.append(
                f"retraining started from weights that are none of the states the job held where its masks keep "
                f"them ({found[0]}{more} differ from the {origin} state it started from), though the method "
                "trained nothing while pruning: kept weights were changed off the books"
            )

    def measured_weights(self) -> dict[str, Any] | None:
        """The final weights the metrics were measured on (the architecture's entries); None when there are
        none (a failed job, weights that could not be measured)."""
        if self.final is None or "weights_sha256" not in self.measured:
            return None
        return {k: self.final[k] for k in self.measurer.keys}

    def _steps(self, spec: TrainingSpec) -> int:
        steps = spec.epochs * -(-self.env.data.train.num_examples // spec.batch_size)
        return steps if self.env.limit is None else min(steps, self.env.limit)

    def measure(self) -> None:
        """Accuracy, sparsity (counted from the final weights) and cost, by the runner's own code."""
        assert self.final is not None
        base = self.base
        target = self.job.target
        m: Measured = self.measurer.measure(
            self.final,
            None if target.is_cost else target.value,
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
            pretrained_sha256=self.env.protocol.base.sha256,
            test_top1=base.test["top1"],
            test_top5=base.test["top5"],
            val_top1=base.val_top1,
            test_perplexity=math.exp(base.test["loss"]) if self.protocol.task == "causal_lm" else None,
        )
        if m.test is None or m.val is None:
            return  # nothing of the architecture's to measure: the problems say why
        if target.is_cost:
            self.measured["target"] = cost_target_record(target, self.protocol.pruning.target_tolerance, m.cost)
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
                **self._perplexities(m),
                **self._chance(m.test.top1),
            ),
            "weights_sha256": weights_sha256({k: self.final[k] for k in self.measurer.keys}),  # measured_weights
        }

    def _language(self) -> LanguageRecord | None:
        text, calibration = self.env.data.text, self.protocol.pruning.calibration
        if text is None:
            return None
        import tokenizers
        import transformers

        drawn = None
        if calibration is not None:
            drawn = calibration.model_dump(mode="json", exclude={"files"}) | {"files_sha256": text.calibration_sha256}
            drawn["seqlen"] = calibration.seqlen or self.env.data.input_shape[0]
        files = model_files(self.protocol.model)
        return LanguageRecord(
            model_sha256=directory_sha256(files[0]) if files else None,
            tokenizer_sha256=text.tokenizer_sha256,
            data_sha256=text.data_sha256,
            calibration=drawn,
            transformers=transformers.__version__,
            tokenizers=tokenizers.__version__,
        )

    def _perplexities(self, m: Measured) -> dict[str, float]:
        """A causal LM's test and validation perplexity: exp of the mean token loss, the references' definition."""
        if self.protocol.task != "causal_lm" or m.test is None or m.val is None:
            return {}
        return {"test_perplexity": math.exp(m.test.loss), "val_perplexity": math.exp(m.val.loss)}

    def _chance(self, top1: float) -> dict[str, Any]:
        """A classifier's chance top-1 (1 / classes), and whether its test top-1 is degenerate: within the protocol's
        evaluation.chance_margin of chance (prunebench.fairness.near_chance). Nothing for a causal LM."""
        if self.protocol.task != "classification":
            return {}
        chance = 1.0 / self.env.data.num_classes
        margin = self.protocol.evaluation.chance_margin
        return {"chance": chance, "degenerate": None if margin is None else near_chance(top1, chance, margin)}

    def measure_efficiency(self) -> None:
        """Latency, throughput and memory of the pruned model beside its dense base model (the protocol's
        `efficiency:` section), once the accuracy is measured; what cannot be timed says why."""
        timing = self.env.efficiency
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

    def measure_evaluations(self) -> None:
        """The optional evaluations the protocol asks for (robustness, calibration, forgetting) of the pruned model
        beside its dense base model, once the accuracy is measured."""
        evaluations = self.env.evaluations
        if evaluations is None or "metrics" not in self.measured:
            return
        self.measured["evaluation"] = evaluations.record(
            self.measurer.model,
            lambda: self.measurer.dense_model(self.base.states["final"]),
            self.base.sha256,
            mixed_precision=self.retrain_spec.mixed_precision,
        )

    def _test_examples(self) -> int | None:
        """Examples the test accuracy was measured on: the test split's, or a smoke run's batches of it."""
        test = self.env.data.test
        if test is None:
            return None
        limit = self.env.limit
        evaluated = limit * self.protocol.data.eval_batch_size if limit is not None else test.num_examples
        return min(test.num_examples, evaluated)

    def audit(self) -> None:
        """The fairness rules: sparsity on target within tolerance, the budget and comparison setup."""
        sparsity = self.measured.get("sparsity")
        if (
            sparsity is not None
            and sparsity.target is not None
            and off_target(sparsity.achieved, sparsity.target, sparsity.tolerance)
        ):
            self.reasons.append(
                f"achieved sparsity {sparsity.achieved:.4f} is off the target {sparsity.target:g} by more than "
                f"the tolerance {sparsity.tolerance:g}"
            )
        cost = self.measured.get("target")
        if cost is not None and not cost.met:
            self.reasons.append(cost_target_miss(cost, self.not_compacted))
        budget = audit_budget(
            self.protocol,
            self.job.stated_budget,
            self.ledger,
            self.reports.pruning_specs,
            self.measurer.flops_dense,
            self.env.data.train.num_examples,
            retrain_used=self.retrain_spec,
            recipe=self.recipe_name,
            dense_model=uses_dense_model(self.info.taxonomy.when),
        )
        if self.env.limit is not None:
            # A smoke run trains a few batches a stage, not the budget: what it spent says nothing of the method.
            budget = budget.model_copy(update={"violations": []})
        self.reasons.extend(budget.violations)
        self.measured["budget"] = budget

    def record(self, status: Status, started: datetime, duration: float) -> ResultRecord:
        job, p, info, spec = self.job, self.protocol, self.info, self.retrain_spec
        source = self.env.protocol.source
        return ResultRecord(
            job_id=job.id,
            task=p.task,
            language=self._language(),
            protocol=ProtocolRef(
                name=p.name,
                hash=self.env.protocol.hash,  # the protocol's own hash, also for a variant's job
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
                notes_cut=self.notes_cut,
            ),
            seed=job.seed,
            target_sparsity=None if job.target.is_cost else job.sparsity,
            target=self.measured.pop("target", None)
            or (cost_target_record(job.target, p.pruning.target_tolerance, None) if job.target.is_cost else None),
            status=status,
            reasons=self.reasons,
            retraining=retraining_record(self.regime, self.recipe_name, spec),
            ledger=self.ledger,
            curves=self.curves,
            provenance=self.env.provenance.of_job(
                started, datetime.now(timezone.utc), duration, method_process=self.method_process
            ),
            limit=self.env.limit,
            **self.measured,
        )


@functools.cache
def directory_sha256(directory: Path) -> str:
    """A local model directory's digest, once per runner process (a 7B model's 13 GB take a while)."""
    from prunebench.language import model_sha256

    return model_sha256(directory)


def kept_differences(
    start: dict[str, dict[str, Any]],
    state: dict[str, Any],
    keys: Collection[str],
    prunable: Collection[str],
    *,
    filters: bool,
) -> list[str]:
    """The entries `keys` of the architecture whose value in the model a job reported at the start of retraining
    (a Snapshot's tensors: state, masks) differs from `state`: a prunable weight where its mask keeps it, any
    other entry whole (but not for a filter method, whose pruned filters zero their channels' entries). An entry
    that is missing or malformed differs."""
    reported, masks = start.get("state"), start.get("masks")
    if not isinstance(reported, dict) or not isinstance(masks, dict):
        return ["the reported model"]
    differ = []
    for name in keys:
        value, reference = reported.get(name), state.get(name)
        if not isinstance(value, Tensor) or not isinstance(reference, Tensor) or value.shape != reference.shape:
            differ.append(name)
        elif name in prunable:
            keep = masks.get(name)
            if (
                not isinstance(keep, Tensor)
                or keep.dtype != torch.bool
                or keep.shape != value.shape
                or not torch.equal(value.cpu()[keep.cpu()], reference.cpu()[keep.cpu()])
            ):
                differ.append(name)
        elif not filters and not torch.equal(value.cpu(), reference.cpu()):
            differ.append(name)
    return differ
