"""Keeping a finished job: its record agreed by every rank, its weights and dense model kept when asked
(`--save-models`), the record written atomically, then logged to the experiment trackers."""

from __future__ import annotations

import functools
import io
import warnings
from collections.abc import Callable

import torch

from prunebench.engine import distributed as ddp
from prunebench.results import IntegrityKey, ResultRecord, RunDirectory, record_domain, save_result, write_atomic
from prunebench.run.jobs import Job
from prunebench.run.writing import RunWriter
from prunebench.trackers import Tracker


class RecordKeeper:
    """Writes the records of one run directory (rank 0 only) and what goes with them."""

    def __init__(self, directory: RunDirectory, writer: RunWriter, *, save_models: bool, key: IntegrityKey) -> None:
        self.directory = directory
        self.key = key  # each record is sealed with it: only a sealed record counts as done (scheduling.state)
        self.writer = writer
        self.save_models = save_models  # each job's final weights in models/, the dense ones in dense/
        self.trackers: list[Tracker] = []  # `--log`: each written record goes to them too (prunebench.trackers)

    def keep(
        self,
        job: Job,
        record: ResultRecord,
        weights: dict[str, torch.Tensor] | None,
        keep_dense: Callable[[], None],
    ) -> ResultRecord:
        """Write the job's record (and, with `--save-models`, its measured weights and its dense model first: a
        record never names missing weights); the record as written."""
        if self.save_models:
            keep_dense()
            if weights is not None:
                self._write_weights(job, weights)
                model = self.directory.model_path(job.id).relative_to(self.directory.path).as_posix()
                record = record.model_copy(update={"weights_file": model})
        path = job.path(self.directory.path)
        self.writer.write(path, functools.partial(save_result, path, record, self.seal(job)))
        return record

    def seal(self, job: Job) -> tuple[IntegrityKey, str]:
        """What a job's record is sealed with: the run's key, bound to the run directory and the job."""
        return self.key, record_domain(self.directory.path.name, job.id)

    def _write_weights(self, job: Job, weights: dict[str, torch.Tensor]) -> None:
        path = self.directory.model_path(job.id)
        buffer = io.BytesIO()
        torch.save(weights, buffer)
        self.writer.write(path, functools.partial(write_atomic, path, buffer.getvalue()))

    def track(self, record: ResultRecord) -> None:
        """Log a written record to the trackers; a tracker that fails warns and is left out from then on (the
        record itself is written and stays)."""
        for tracker in list(self.trackers):
            try:
                tracker.log(record)
            except Exception as exc:  # a tracker's failure (its store, its network) is never the run's
                self.trackers.remove(tracker)
                first = " ".join(str(exc).split())[:200] or type(exc).__name__
                warnings.warn(
                    f"--log {type(tracker).__name__}: could not log {record.job_id} ({first}); not logging more",
                    stacklevel=2,
                )


def agreed(record: ResultRecord) -> ResultRecord:
    """On several ranks, the worst of every rank's outcome: the job failed if it failed on any, and broke a rule
    if it did on any (a method that behaves only on rank 0 is judged by every rank), each reason named by its
    rank. On one rank, the record as it is."""
    outcomes = ddp.gather((record.status, record.reasons))
    if len(outcomes) == 1:
        return record
    worst = next((s for s in ("failed", "violation") if any(status == s for status, _ in outcomes)), "ok")
    reasons = [f"rank {r}: {reason}" for r, (status, rs) in enumerate(outcomes) if status == worst for reason in rs]
    return record if worst == "ok" else record.model_copy(update={"status": worst, "reasons": reasons})
