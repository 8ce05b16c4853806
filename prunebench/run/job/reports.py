"""What the runner makes of a job process's reports: its own ledger, the recipes the method trained with, the
curves (with the test accuracy and analyses the runner measures itself), progress.

The ledger is counted here, report by report, with the engine's arithmetic (StageLedger.count_step); every
epoch must be one pass over the training split in the steps its recipe has. A process that resets or edits
its engine's ledger changes nothing here; one that reports epochs its recipe does not have is a violation.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from prunebench.analyses import Analyses
from prunebench.protocol import TrainingSpec
from prunebench.results import EpochRecord, Ledger, StageLedger
from prunebench.run.sandbox.messages import BadMessage, Message, number, rewarn

STAGES = ("pruning", "retrain")


class JobReports:
    """Consumes a job process's reports (`on_message`); raises BadMessage for one that is malformed."""

    def __init__(
        self,
        *,
        train_examples: int,
        dense_flops: float,
        analyses: Analyses,
        test_top1: Callable[[dict[str, Any], bool], float | None] | None,
        on_epoch: Callable[[str, int, int, EpochRecord], None],
        limit: int | None = None,
    ) -> None:
        self.train_examples = train_examples
        self.dense_flops = dense_flops
        self.analyses = analyses
        self.test_top1 = test_top1  # evaluates a reported state on the test split (test curves), or None
        self.on_epoch = on_epoch
        self.ledger = Ledger()
        self.pruning_specs: list[TrainingSpec] = []  # recipes the method trained with while pruning
        self.retrain_specs: list[TrainingSpec] = []
        self.curves: list[EpochRecord] = []
        self.violations: list[str] = []
        self._spec: dict[str, TrainingSpec] = {}
        self.limit = limit  # a smoke run's: each training run of a stage stops after this many steps
        self._run_steps: dict[str, int] = {}
        # The model retraining started from ({state, weights, masks}: a Snapshot's tensors), as the job reported it.
        self.retraining_start: dict[str, dict[str, Any]] | None = None
        # The prunable weights the engine's declared solver rewrote while pruning (SparseGPT's reconstruction).
        self.reconstructed: set[str] = set()

    def on_message(self, message: Message) -> None:
        handlers = {"stage": self._stage, "scored": self._scored, "epoch": self._epoch}
        handler = {**handlers, "reconstructed": self._reconstructed}.get(message.kind)
        if handler is None:
            rewarn(message)
            return
        try:
            handler(message)
        except (ValidationError, KeyError, TypeError) as exc:
            raise BadMessage(f"a {message.kind} report that is not valid ({str(exc)[:300]})") from None

    def _stage_ledger(self, header: dict[str, Any]) -> tuple[str, StageLedger]:
        stage = header["stage"]
        if stage not in STAGES:
            raise BadMessage(f"a report of stage {str(stage)[:40]!r}")
        return stage, getattr(self.ledger, stage)

    def _reconstructed(self, message: Message) -> None:
        names = message.header["names"]
        if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
            raise TypeError("names must be a list of parameter names")
        self.reconstructed.update(names)

    def _stage(self, message: Message) -> None:
        stage, ledger = self._stage_ledger(message.header)
        spec = TrainingSpec.model_validate(message.header["spec"])
        ledger.runs += 1
        self._spec[stage] = spec
        self._run_steps[stage] = 0
        (self.pruning_specs if stage == "pruning" else self.retrain_specs).append(spec)
        if stage == "retrain" and "weights" in message.tensors:
            if self.retraining_start is None:  # what the first retraining run starts from (JobRun checks it)
                self.retraining_start = dict(message.tensors)
            self.analyses.start_retraining(message.tensors["weights"], message.tensors["masks"])

    def _scored(self, message: Message) -> None:
        examples = number(message.header, "examples", integer=True)
        flops = number(message.header, "flops")
        if flops > 3 * self.dense_flops * examples * (1 + 1e-9):
            raise BadMessage(f"scoring that cost {flops:g} FLOPs, more than a dense forward and backward pass")
        self.ledger.pruning.count_scoring(examples, flops)

    def _epoch(self, message: Message) -> None:
        header = message.header
        stage, ledger = self._stage_ledger(header)
        spec = self._spec.get(stage)
        if spec is None:
            raise BadMessage(f"an epoch of {stage} before its training started")
        step_examples, step_flops = header["step_examples"], header["step_flops"]
        if (
            not isinstance(step_examples, list)
            or not isinstance(step_flops, list)
            or len(step_examples) != len(step_flops)
        ):
            raise BadMessage("an epoch without its steps")
        steps = math.ceil(self.train_examples / spec.batch_size)
        seen = sum(map(_count, step_examples))
        whole = seen == self.train_examples
        if self.limit is not None and self.limit - self._run_steps[stage] < steps:
            steps, whole = self.limit - self._run_steps[stage], True  # a smoke run's last, partial epoch
        self._run_steps[stage] += len(step_examples)
        if len(step_examples) != steps or not whole:
            self._violate(
                f"the engine reported a {stage} epoch of {len(step_examples)} steps over {seen} examples; its recipe "
                f"has {steps} steps over the {self.train_examples} training examples"
            )
        for n, flops in zip(step_examples, step_flops, strict=True):
            n = _count(n)
            flops = number({"flops": flops}, "flops")
            if flops > 3 * self.dense_flops * n * (1 + 1e-9):
                raise BadMessage(f"a step that cost {flops:g} FLOPs, more than the dense model's")
            ledger.count_step(n, flops)
        ledger.close_epoch(self.train_examples)
        record = EpochRecord.model_validate(header["record"])
        if record.stage != stage:
            raise BadMessage("an epoch record of another stage")
        updates: dict[str, Any] = {"test_top1": None, "analyses": {}}
        if "state" in message.tensors and self.test_top1 is not None:
            updates["test_top1"] = self.test_top1(message.tensors["state"], spec.mixed_precision)
        if self.analyses.per_epoch and "weights" in message.tensors:
            updates["analyses"] = self.analyses(stage, message.tensors["weights"], message.tensors["masks"])
        record = record.model_copy(update=updates)
        self.curves.append(record)
        self.on_epoch(stage, record.epoch, number(header, "total_epochs", integer=True), record)

    def _violate(self, message: str) -> None:
        if message not in self.violations:
            self.violations.append(message)


def _count(n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0 or n > 10**12:
        raise BadMessage(f"a step of {str(n)[:40]} examples")
    return n
