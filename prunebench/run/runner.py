"""The runner: one run of a protocol's jobs on one results directory, put together from the run wing's parts.

It validates the protocol before anything runs, then hands the jobs to the scheduler (prunebench.run.scheduling),
which takes each job's dense model from the dense-model service (prunebench.run.dense) and runs the job in a
frozen environment (prunebench.run.job) whose method code runs in a job process of its own
(prunebench.run.sandbox); the runner's own code measures what comes back (prunebench.run.measurement). The runner
holds the parts; none of them holds the runner.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Sequence
from pathlib import Path

import torch

from prunebench import confine
from prunebench.data import hidden_from_jobs
from prunebench.engine import distributed as ddp
from prunebench.errors import PrunebenchError
from prunebench.methods import label_methods, needs_labels
from prunebench.protocol import Protocol
from prunebench.protocol.sections import expand_path
from prunebench.results import IntegrityKey, ResultRecord, RunDirectory, ensure_writable, guard_references
from prunebench.run.checkpoints import StageCheckpoints
from prunebench.run.dense import BaseCheckpoint, DenseCache, DenseModels, default_cache_dir
from prunebench.run.events import RunnerEvents
from prunebench.run.job import JobRun, RunResources
from prunebench.run.jobs import Job
from prunebench.run.provenance import resolve_device, resolve_threads
from prunebench.run.ranks import join_runners
from prunebench.run.sandbox import MethodInfo, describe, warm_up
from prunebench.run.scheduling import Choices, RecordKeeper, Scheduler, job_status
from prunebench.run.scheduling.plan import sanity_table
from prunebench.run.validation import validate
from prunebench.run.writing import RunWriter
from prunebench.trackers import Tracker

REFERENCES = Path("results")  # where the committed references live, from the repository's root


def shipped_dense(references: Path = REFERENCES) -> list[Path]:
    """The dense/ folders of the committed references' run directories (none outside a checkout)."""
    return sorted(p for p in references.glob("*/dense") if p.is_dir())


def _dense_files(protocol: Protocol, shipped: Sequence[Path]) -> list[Path]:
    """Dense models on disk that a job process must not read: a job gets the states its method may start from in
    memory (a method that prunes before training never gets the trained weights), so the committed references'
    dense models and the user's base.checkpoint are hidden from it like the cache."""
    found = list(shipped)
    if protocol.base.checkpoint is not None:
        with contextlib.suppress(PrunebenchError):  # an unset variable: validation says so
            found.append(expand_path(protocol.base.checkpoint, ("base", "checkpoint"), "the dense checkpoint"))
    return found


def run_name(protocol: Protocol, *, limit: int | None = None, in_process: bool = False) -> str:
    """The run directory's name: a smoke run (`--limit N`) and a run of method code in the runner's process
    (`--in-process`) have directories, and dense models, of their own: they never mix with a run."""
    return protocol.run_name + (f"-limit{limit}" if limit else "") + ("-in-process" if in_process else "")


class Runner:
    def __init__(
        self,
        protocol: Protocol,
        *,
        results_dir: Path,
        cache_dir: Path | None = None,
        device: str = "auto",
        force: bool = False,
        retry_failed: bool = False,
        events: RunnerEvents | None = None,
        save_models: bool = False,
        dense_from: Sequence[Path] | None = None,
        threads: int | None = None,
        update_references: bool = False,
        keep_checkpoints: bool = False,
        limit: int | None = None,
        in_process: bool = False,
    ) -> None:
        # Methods given by path get their registered name as label: their results never land in a path. Their
        # names come from a job process: this process never imports a method's code.
        self._methods: list[MethodInfo] | None = None
        # The dense models the committed references ship (results/*/dense/): a run starts from them when they
        # are this protocol's, so that its methods prune the references' very weights (verified when loaded).
        shipped = shipped_dense() if dense_from is None else list(dense_from)
        # What no job process may see (where they are confined): this run's files, the cache, the files of the
        # data sets (prunebench.data.hidden_from_jobs), the dense models on disk.
        confine.hide(results_dir, cache_dir if cache_dir is not None else default_cache_dir())
        confine.hide(*hidden_from_jobs(protocol.data), *_dense_files(protocol, shipped))
        if needs_labels(protocol):
            protocol = label_methods(protocol, [info.name for info in describe(protocol)])
        self.protocol = protocol
        self.limit, self.in_process = limit, in_process
        self.directory = RunDirectory.of(results_dir, run_name(protocol, limit=limit, in_process=in_process))
        cache_root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        # The key of what this run trusts later (prunebench.results.integrity): read into this process only. Job
        # processes fork from the fork server, which was started by exec (at the top of the command, before this):
        # they never hold it. (`--in-process` runs a method's code here, next to it: its results are never ranked.)
        self.key = IntegrityKey.of_cache(cache_root)
        assert self.key is not None
        self.cache = DenseCache(
            cache_root,
            protocol,
            shipped=shipped if limit is None and not in_process else [],
            limit=limit,
            key=self.key,
        )
        self.update_references = update_references
        self.device = join_runners(resolve_device(device))  # on several ranks (torchrun): their group, their GPU
        self.rank = ddp.rank()
        self.threads = resolve_threads(threads if threads is not None else protocol.runtime.threads, self.device)
        torch.set_num_threads(self.threads)  # this process's, and each job process's (it replays them)
        self.choices = Choices(force=force, retry_failed=retry_failed)
        self.writer = RunWriter(self.run_dir)
        # Checkpoints of stages in flight (prunebench.run.checkpoints); removed once what they led to is written.
        self.checkpoints = StageCheckpoints(self.cache.root, keep=keep_checkpoints, key=self.key)
        self.resources = RunResources(protocol, self.device, limit=limit, rank=self.rank, in_process=in_process)
        self.keeper = RecordKeeper(self.directory, self.writer, save_models=save_models, key=self.key)
        self._events = events or RunnerEvents()
        self.dense = DenseModels(
            protocol,
            self.cache,
            data=lambda: self.resources.data,
            device=self.device,
            limit=limit,
            checkpoints=self.checkpoints,
            writer=self.writer,
            events=self._events,
            dense_asked=dense_from is not None,
        )
        self._validated = False

    @property
    def run_dir(self) -> Path:
        return self.directory.path

    @property
    def events(self) -> RunnerEvents:
        return self._events

    @events.setter
    def events(self, events: RunnerEvents) -> None:  # a progress display, attached once the plan is known
        self._events = self.dense.events = events

    @property
    def trackers(self) -> list[Tracker]:
        return self.keeper.trackers

    @trackers.setter
    def trackers(self, trackers: list[Tracker]) -> None:
        self.keeper.trackers = trackers

    @property
    def completed(self) -> list[ResultRecord]:
        """The records this run has written so far."""
        return self.writer.completed

    @property
    def force(self) -> bool:
        return self.choices.force

    def validate(self) -> None:
        """Check everything a run needs (data, model, methods, their configs) before touching results; raises
        ProtocolError naming the file and line of the offending field. Idempotent: validates once."""
        if not self._validated:
            self._methods = validate(self.protocol)
            self._validated = True

    @property
    def methods(self) -> list[MethodInfo]:
        """The protocol's methods as their job processes described them (after `validate`)."""
        self.validate()
        assert self._methods is not None
        return self._methods

    def status_of(self, job: Job) -> str:
        """done, failed, corrupt, altered, unverified or pending (prunebench.run.scheduling.state)."""
        return job_status(job, self.run_dir, self.key)

    def pending_count(self, jobs: Sequence[Job]) -> int:
        """How many of `jobs` a run would run now (as the scheduler decides, without its warnings)."""
        return len(jobs) if self.choices.force else sum(self.choices.runs(self.status_of(job)) for job in jobs)

    def base(self, seed: int) -> BaseCheckpoint:
        """The dense model of a seed (prunebench.run.dense.service)."""
        return self.dense.get(seed)

    def run(self, jobs: Sequence[Job]) -> list[ResultRecord]:
        """Run the jobs that are not done yet, writing each record as it ends; returns the records of this run
        (also in `self.completed` while it runs). Folders that cannot be written are reported before any work."""
        self.validate()
        guard_references(self.directory.path.parent, update=self.update_references)
        scheduler = self._scheduler()
        todo = scheduler.pending(jobs) if self.rank == 0 else []
        ids = set(ddp.broadcast([job.id for job in todo]))  # every rank runs what rank 0 found to do
        todo = [job for job in jobs if job.id in ids]
        self.writer.completed.clear()
        if not todo:
            return []
        warm_up()
        ensure_writable(self.run_dir, "--results")
        ensure_writable(self.cache.folder, "--cache")
        ensure_writable(scheduler.claims.folder, "--results (its claims/ folder)")
        self.directory.remove_stale_temporaries()
        self.cache.remove_stale_temporaries()
        self.checkpoints.remove_stale_temporaries()
        if self.rank == 0:
            resolved = self.protocol.model_dump(mode="json")
            write = functools.partial(
                self.directory.write_protocol,
                self.protocol.hash,
                resolved,
                self.protocol.overrides,
                sanity_table(self.protocol, self.methods),
            )
            self.writer.write(self.directory.protocol_file, write)
        scheduler.run(todo)
        return list(self.completed)

    def job_run(self, job: Job) -> JobRun:
        """A job of the plan, ready to run in its environment (its seed's dense model made or loaded first)."""
        env = self.resources.environment(
            self.dense.get(job.seed),
            functools.partial(self.dense.states, job.seed),
            checkpoints=self.checkpoints,
            writer=self.writer,
            events=self.events,
        )
        return JobRun(env, job, self.methods[job.method_index])

    def _scheduler(self) -> Scheduler:
        return Scheduler(
            self.directory,
            dense=self.dense,
            start=self.job_run,
            keeper=self.keeper,
            checkpoints=self.checkpoints,
            writer=self.writer,
            events=self.events,
            choices=self.choices,
        )
