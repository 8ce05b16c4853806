"""The order of a run's jobs: skip what is done, claim a job before running it, leave a job another worker holds
(and come back to it), wait while a job's dense model is being trained elsewhere, keep what ran.

Every job is independent and idempotent: its record is written atomically when it ends, a re-run skips jobs
whose record is there, and a run killed at any moment loses at most the job in flight. On several ranks
(torchrun) rank 0 decides and every rank runs the job; rank 0 writes.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from prunebench.engine import distributed as ddp
from prunebench.results import ResultRecord, RunDirectory
from prunebench.run.checkpoints import StageCheckpoints
from prunebench.run.dense import BaseBusy, DenseModels
from prunebench.run.events import RunnerEvents
from prunebench.run.job import JobRun
from prunebench.run.jobs import Job
from prunebench.run.leases import Claims
from prunebench.run.scheduling.records import RecordKeeper, agreed
from prunebench.run.scheduling.state import job_status, record_mtime
from prunebench.run.writing import RunWriter


@dataclass(frozen=True)
class Choices:
    """What the user chose of a run's order: re-run finished jobs (`--force`), re-run failed ones."""

    force: bool = False
    retry_failed: bool = False

    def runs(self, status: str) -> bool:
        """Whether a job whose record is in `status` (prunebench.run.scheduling.state) is run: every job with
        `--force`; else all but the done ones and, unless retried, the failed ones."""
        return self.force or not (status == "done" or (status == "failed" and not self.retry_failed))


class Scheduler:
    """Runs the jobs of one run directory in order, claiming each; `start` makes a job's run once its dense model
    is there."""

    def __init__(
        self,
        directory: RunDirectory,
        *,
        dense: DenseModels,
        start: Callable[[Job], JobRun],
        keeper: RecordKeeper,
        checkpoints: StageCheckpoints,
        writer: RunWriter,
        events: RunnerEvents,
        choices: Choices,
    ) -> None:
        self.directory = directory
        self.dense, self.start, self.keeper = dense, start, keeper
        self.checkpoints, self.writer, self.events, self.choices = checkpoints, writer, events, choices
        self.key = keeper.key  # the run's integrity key: what it trusts of the files is what it sealed
        # Leases of jobs; the dense models' are the service's.
        self.claims = Claims(directory.path / "claims", key=self.key)
        self.rank = ddp.rank()
        # How often a worker with nothing to do looks again (a look reads a few files): soon, so that no core idles.
        self.poll_s = min(0.5, self.claims.ttl / 8)

    def pending(self, jobs: Sequence[Job]) -> list[Job]:
        """The jobs to run: all with `--force`, else those without a record (and failed ones when retried)."""
        if self.choices.force:
            return list(jobs)
        out = []
        for job in jobs:
            status = job_status(job, self.directory.path, self.key)
            if not self.choices.runs(status):
                self.events.skipped(job, status)
                continue
            if status == "corrupt":
                warnings.warn(f"{job.path(self.directory.path)} is not a valid result; it will be re-run", stacklevel=2)
            elif status == "altered":
                warnings.warn(
                    f"{job.path(self.directory.path)} was changed after the run wrote it (its digest does not match "
                    "its content); it will be re-run",
                    stacklevel=2,
                )
            elif status == "unverified":
                # Written by something other than a runner of this cache (a job's code, a forger), or before
                # records were sealed, or with another cache's key: not told apart from a forgery, so re-run once.
                warnings.warn(
                    f"{job.path(self.directory.path)} is not sealed by this cache's runners (its MAC does not verify: "
                    "forged, written by a job's code, with another cache, or before records were sealed); it will be "
                    "re-run",
                    stacklevel=2,
                )
            out.append(job)
        return out

    def run(self, todo: Sequence[Job]) -> None:
        """Run every job of `todo` (already found pending) that no other worker finishes first."""
        # What was there when the run started: with --force those are re-run once, not again after another
        # worker wrote them.
        before = {job.id: record_mtime(job, self.directory.path) for job in todo}
        remaining = list(todo)
        started = 0
        try:
            while remaining:
                progressed = False
                for job in list(remaining):
                    outcome = self._try(job, before[job.id], started, len(todo))
                    if outcome == "busy":
                        continue
                    remaining.remove(job)
                    progressed = True
                    started += outcome == "ran"
                if remaining and not progressed:
                    time.sleep(self.poll_s)  # every job left is another worker's, or waits for its dense model
        finally:
            self.claims.release_all()
            self.dense.claims.release_all()
            self.claims.remove_folder_if_empty()

    def _try(self, job: Job, before: float | None, index: int, total: int) -> str:
        """ran, elsewhere (another worker finished it) or busy (claimed, or its dense model is being trained)."""
        decision = ddp.broadcast(self._decide(job, before) if self.rank == 0 else None)
        if decision != "run":
            return str(decision)
        try:
            try:
                self.dense.get(job.seed)
            except BaseBusy:
                return "busy"
            self.events.job_started(job, index, total)
            run = self.start(job)
            record = agreed(run.run())
            if self.rank != 0:
                return "ran"
            if self.claims.lost(job.id):
                # A lease can look lost because a worker took the job over (it then writes a sealed record), or
                # because the job's own code removed or rewrote it: the record there is kept only when it is
                # sealed and written since this run started, else this run's record replaces it.
                if self._finished_elsewhere(job, before):
                    warnings.warn(
                        f"{job.id}: another worker took this job over (its lease went stale); its record is theirs",
                        stacklevel=2,
                    )
                    return "elsewhere"
                warnings.warn(
                    f"{job.id}: its lease was lost and {job.path(self.directory.path)} holds no record sealed by a "
                    "worker of this cache; writing the one this run measured",
                    stacklevel=2,
                )
            self._keep(job, run, record)
            return "ran"
        finally:
            if self.rank == 0:
                self.claims.release(job.id)

    def _keep(self, job: Job, run: JobRun, record: ResultRecord) -> None:
        record = self.keeper.keep(
            job, record, run.measured_weights(), lambda: self.dense.keep_copy(job.seed, self.directory.dense_dir)
        )
        self.checkpoints.written()
        self.keeper.track(record)
        self.events.job_finished(job, record)
        self.writer.completed.append(record)

    def _decide(self, job: Job, before: float | None) -> str:
        """elsewhere, busy, or run (with the job's lease held)."""
        if self._finished_elsewhere(job, before):
            self.events.skipped(job, "done by another worker")
            return "elsewhere"
        if self.claims.claim(job.id) is None:
            return "busy"
        if self._finished_elsewhere(job, before):  # finished between the check and the claim
            self.claims.release(job.id)
            self.events.skipped(job, "done by another worker")
            return "elsewhere"
        return "run"

    def _finished_elsewhere(self, job: Job, before: float | None) -> bool:
        """Another worker wrote the job's record since this run started."""
        now = record_mtime(job, self.directory.path)
        if now is None or now == before:
            return False
        return job_status(job, self.directory.path, self.key) in ("done", "failed")
