"""The runner: validates a protocol before anything runs, shares the dense checkpoints, runs the jobs of a
plan, resumes, writes.

Every job is independent and idempotent: its result file is written atomically when it ends, a
re-run skips jobs whose file is there, and a run killed at any moment loses at most the job in
flight. The dense base model of a seed is trained once, here, cached by the hash of what determines it,
verified by the hash of its weights, and shared by every method. A method's code never runs in this process:
each job's runs in a job process of its own (prunebench.run.isolation), and so does loading the methods.
"""

from __future__ import annotations

import functools
import io
import pickle
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from prunebench.data import DATASETS, DataBundle, check_data, load_data
from prunebench.engine import Engine, EngineObserver, EpochReport, Snapshot
from prunebench.engine import distributed as ddp
from prunebench.errors import FieldError, ResultsError
from prunebench.masks import prunable_parameters
from prunebench.methods import GRANULARITY_ORDER, label_methods, needs_labels
from prunebench.models import build_model, layer_macs
from prunebench.protocol import Protocol, TrainingSpec
from prunebench.results import (
    EpochRecord,
    ResultRecord,
    RunDirectory,
    describe_os_error,
    ensure_writable,
    guard_references,
    load_result,
    save_result,
    write_atomic,
)
from prunebench.run import isolation
from prunebench.run.cache import BaseCheckpoint, DenseCache, default_cache_dir
from prunebench.run.claims import Claims
from prunebench.run.dense import BaseBusy, pretrained_dense, train_dense
from prunebench.run.describe import describe
from prunebench.run.efficiency import EfficiencyMeasurement
from prunebench.run.job import JobRun
from prunebench.run.measure import Measurer
from prunebench.run.plan import Job
from prunebench.run.pretrained import load_into, read_pretrained
from prunebench.run.progress import Progress
from prunebench.run.provenance import RunProvenance, resolve_device, resolve_threads
from prunebench.run.ranks import join_runners
from prunebench.run.setup import build_engine, fresh_model, seeded_model
from prunebench.run.tasks import JobTask, MethodInfo
from prunebench.trackers import Tracker

EpochCallback = Callable[[str, int, int, EpochRecord], None]
REFERENCES = Path("results")  # where the committed references live, from the repository's root


def shipped_dense(references: Path = REFERENCES) -> list[Path]:
    """The dense/ folders of the committed references' run directories (none outside a checkout)."""
    return sorted(p for p in references.glob("*/dense") if p.is_dir())


@dataclass
class RunnerEvents:
    """Callbacks for a progress display; all optional."""

    job_started: Callable[[Job, int, int], None] = lambda job, i, n: None
    job_finished: Callable[[Job, ResultRecord], None] = lambda job, record: None
    base_started: Callable[[int, int], None] = lambda seed, epochs: None
    base_loaded: Callable[[int, Path], None] = lambda seed, path: None
    base_resumed: Callable[[int, int], None] = lambda seed, epochs_done: None
    job_resumed: Callable[[Job, int], None] = lambda job, epochs_done: None
    epoch: EpochCallback = lambda stage, epoch, total, record: None
    skipped: Callable[[Job, str], None] = lambda job, why: None


class _Progress(EngineObserver):
    """Dense base training's epochs, for the progress display."""

    def __init__(self, events: RunnerEvents) -> None:
        self.events = events

    def epoch_ended(self, report: EpochReport, snapshot: Snapshot | None) -> None:
        self.events.epoch(report.stage, report.record.epoch, report.total_epochs, report.record)


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
    ) -> None:
        # Methods given by path get their registered name as label: their results never land in a path. Their
        # names come from a job process: this process never imports a method's code.
        self._methods: list[MethodInfo] | None = None
        if needs_labels(protocol):
            self._methods = describe(protocol)
            protocol = label_methods(protocol, [info.name for info in self._methods])
        self.protocol = protocol
        # A smoke run (`--limit N`) has a run directory and dense models of its own: it never mixes with a run.
        self.limit = limit
        self.directory = RunDirectory.of(results_dir, protocol.run_name + (f"-limit{limit}" if limit else ""))
        # The dense models the committed references ship (results/*/dense/): a run starts from them when they
        # are this protocol's, so that its methods prune the references' very weights (verified when loaded).
        shipped = shipped_dense() if dense_from is None else list(dense_from)
        self.cache = DenseCache(
            Path(cache_dir) if cache_dir is not None else default_cache_dir(),
            protocol,
            shipped=shipped if limit is None else [],
            limit=limit,
        )
        self.update_references = update_references
        self._dense_asked = dense_from is not None
        self.save_models = save_models  # each job's final weights in models/, the dense ones in dense/
        self.device = join_runners(resolve_device(device))  # on several ranks (torchrun): their group, their GPU
        self.rank = ddp.rank()
        self.threads = resolve_threads(threads if threads is not None else protocol.runtime.threads, self.device)
        torch.set_num_threads(self.threads)  # this process's, and each job process's (it replays them)
        self.force = force
        self.retry_failed = retry_failed
        self.events = events or RunnerEvents()
        self._validated = False
        self._data: DataBundle | None = None
        self._payloads: dict[str, bytes] = {}  # what every job process gets, pickled once per run
        self._measurer: Measurer | None = None
        self._efficiency: EfficiencyMeasurement | None = None
        self._bases: dict[int, BaseCheckpoint] = {}
        self._provenance: RunProvenance | None = None
        self.completed: list[ResultRecord] = []  # the records this run has written so far
        self.trackers: list[Tracker] = []  # `--log`: each written record goes to them too (prunebench.trackers)
        # Leases (prunebench.run.claims): of jobs in the run's claims/, of dense models beside them in the cache.
        self.claims = Claims(self.run_dir / "claims")
        self.base_claims = Claims(self.cache.folder)
        # How often a worker with nothing to do looks again (a look reads a few files): soon, so that no core idles.
        self.poll_s = min(0.5, self.claims.ttl / 8)
        # Checkpoints of stages in flight (prunebench.run.progress); removed once what they led to is written.
        self.progress = Progress(self.cache.root)
        self.keep_checkpoints = keep_checkpoints
        self._finished_stages: list[str] = []  # how often a worker with nothing to do looks again

    @property
    def run_dir(self) -> Path:
        return self.directory.path

    # ---- validation before anything runs ------------------------------------------------------
    def validate(self) -> None:
        """Check everything a run needs (data, model, methods, their configs) before touching results; raises
        ProtocolError naming the file and line of the offending field. Idempotent: validates once."""
        if self._validated:
            return
        p = self.protocol
        try:
            check_data(p.data)
            # Build the model once on the data set's nominal shape: an unknown name, bad arguments or
            # an input it cannot take are reported now, not after hours of training.
            info = DATASETS[p.data.name]
            model = build_model(p.model, num_classes=info.num_classes or 1000, input_shape=info.input_shape)
            # Which weights are prunable, as a job will see them: a rule that leaves none is an error now.
            prunable_parameters(model, p.pruning.prunable, layer_macs(model, info.input_shape).keys())
            if p.base.checkpoint is not None:
                load_into(model, read_pretrained(p.base), p.model.name)
            methods = self._methods if self._methods is not None else describe(p)
            for i, method in enumerate(methods):
                if p.base.checkpoint is not None and method.taxonomy.retraining == "weight_rewinding":
                    raise FieldError(
                        ("methods", i, "name"),
                        f"{method.name} rewinds to an early iterate of base training (weight rewinding); the dense "
                        "model from base.checkpoint has none",
                    )
                granularity = method.taxonomy.granularity
                if GRANULARITY_ORDER[granularity] < GRANULARITY_ORDER[p.pruning.granularity]:
                    raise FieldError(
                        ("methods", i, "name"),
                        f"{method.name} prunes at {granularity} granularity, finer than this protocol's "
                        f"{p.pruning.granularity}",
                    )
        except FieldError as exc:
            raise p.locate(exc) from None
        self._methods = methods
        self._validated = True

    @property
    def methods(self) -> list[MethodInfo]:
        """The protocol's methods as their job processes described them (after `validate`)."""
        self.validate()
        assert self._methods is not None
        return self._methods

    # ---- what is done ---------------------------------------------------------------------------
    def status_of(self, job: Job) -> str:
        """done, failed, corrupt or pending."""
        path = job.path(self.run_dir)
        if not path.exists():
            return "pending"
        try:
            record = load_result(path)
        except ValueError:
            return "corrupt"
        return "failed" if record.status == "failed" else "done"

    def pending(self, jobs: Sequence[Job]) -> list[Job]:
        if self.force:
            return list(jobs)
        out = []
        for job in jobs:
            status = self.status_of(job)
            if status == "done" or (status == "failed" and not self.retry_failed):
                self.events.skipped(job, status)
                continue
            if status == "corrupt":
                warnings.warn(f"{job.path(self.run_dir)} is not a valid result; it will be re-run", stacklevel=2)
            out.append(job)
        return out

    # ---- the run ------------------------------------------------------------------------------
    def run(self, jobs: Sequence[Job]) -> list[ResultRecord]:
        """Run the jobs that are not done yet, writing each record as it ends; returns the records of this run
        (also in `self.completed` while it runs). Folders that cannot be written are reported before any work.

        Each job is claimed first (prunebench.run.claims): a job another worker holds is left to it, and this
        worker comes back to it until it is done or its lease goes stale (then it takes the job over); a job
        whose dense model another worker is training waits while other jobs run."""
        self.validate()
        guard_references(self.directory.path.parent, update=self.update_references)
        todo = self.pending(jobs) if self.rank == 0 else []
        ids = ddp.broadcast([job.id for job in todo])  # every rank runs what rank 0 found to do
        todo = [job for job in jobs if job.id in set(ids)]
        self.completed = []
        if not todo:
            return []
        isolation.warm_up()
        ensure_writable(self.run_dir, "--results")
        ensure_writable(self.cache.folder, "--cache")
        ensure_writable(self.claims.folder, "--results (its claims/ folder)")
        self.directory.remove_stale_temporaries()
        self.cache.remove_stale_temporaries()
        self.progress.remove_stale_temporaries()
        resolved = self.protocol.model_dump(mode="json")
        if self.rank == 0:
            self.write(
                self.directory.protocol_file,
                functools.partial(self.directory.write_protocol, self.protocol.hash, resolved, self.protocol.overrides),
            )
        # What was there when the run started: with --force those are re-run once, not again after another
        # worker wrote them.
        before = {job.id: self._mtime(job) for job in todo}
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
            self.base_claims.release_all()
            self.claims.remove_folder_if_empty()
        return self.completed

    def track_checkpoint(self, key: str) -> None:
        """A stage's checkpoints, to be removed once what the stage led to is written."""
        self._finished_stages.append(key)

    def _stage_written(self) -> None:
        """What a finished stage's checkpoints led to is written: they are removed (unless kept)."""
        for key in self._finished_stages:
            if not self.keep_checkpoints:
                self.progress.remove(key)
        self._finished_stages.clear()

    def _mtime(self, job: Job) -> float | None:
        try:
            return job.path(self.run_dir).stat().st_mtime
        except OSError:
            return None

    def _finished_elsewhere(self, job: Job, before: float | None) -> bool:
        """Another worker wrote the job's record since this run started."""
        now = self._mtime(job)
        return now is not None and now != before and self.status_of(job) in ("done", "failed")

    def _try(self, job: Job, before: float | None, index: int, total: int) -> str:
        """ran, elsewhere (another worker finished it) or busy (claimed, or its dense model is being trained). On
        several ranks, rank 0 decides and every rank runs the job."""
        decision = ddp.broadcast(self._decide(job, before) if self.rank == 0 else None)
        if decision != "run":
            return str(decision)
        try:
            try:
                self.base(job.seed)
            except BaseBusy:
                return "busy"
            self.events.job_started(job, index, total)
            run = JobRun(self, job, self.methods[job.method_index])
            record = self._agreed(run.run())
            if self.rank != 0:
                return "ran"
            if self.claims.lost(job.id):
                warnings.warn(
                    f"{job.id}: another worker took this job over (its lease went stale); its record is theirs",
                    stacklevel=2,
                )
                return "elsewhere"
            if self.save_models and self._save_models(job, run):
                model = self.directory.model_path(job.id).relative_to(self.run_dir).as_posix()
                record = record.model_copy(update={"weights_file": model})
            path = job.path(self.run_dir)
            self.write(path, functools.partial(save_result, path, record))
            self._stage_written()
            self._track(record)
            self.events.job_finished(job, record)
            self.completed.append(record)
            return "ran"
        finally:
            if self.rank == 0:
                self.claims.release(job.id)

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

    def _agreed(self, record: ResultRecord) -> ResultRecord:
        """On several ranks, the worst of every rank's outcome: the job failed if it failed on any, and broke a
        rule if it did on any (a method that behaves only on rank 0 is judged by every rank), each reason named
        by its rank. On one rank, the record as it is."""
        outcomes = ddp.gather((record.status, record.reasons))
        if len(outcomes) == 1:
            return record
        worst = next((s for s in ("failed", "violation") if any(status == s for status, _ in outcomes)), "ok")
        reasons = [f"rank {r}: {reason}" for r, (status, rs) in enumerate(outcomes) if status == worst for reason in rs]
        return record if worst == "ok" else record.model_copy(update={"status": worst, "reasons": reasons})

    def write(self, path: Path, write: Callable[[], None]) -> None:
        """Write a file of the run; a write that fails stops the run with one clear line, every finished
        result kept."""
        try:
            write()
        except OSError as exc:
            raise ResultsError(
                f"cannot write {path} ({describe_os_error(exc)}); the {len(self.completed)} result(s) this run "
                f"finished are kept in {self.run_dir}: fix that and run the same command again to resume"
            ) from None

    def run_job(self, job: Job) -> ResultRecord:
        return JobRun(self, job, self.methods[job.method_index]).run()

    def _track(self, record: ResultRecord) -> None:
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

    def _save_models(self, job: Job, run: JobRun) -> bool:
        """The weights the job was measured on (before its record: a record never names missing weights) and
        the dense checkpoint it started from, as `--save-models` keeps them; whether there were weights to keep."""
        dense = self.directory.dense_dir / self.cache.locate(job.seed)[0].name
        if not dense.exists() and job.seed in self._bases:
            self.write(dense, functools.partial(self.cache.save, job.seed, self._bases[job.seed], dense))
        weights = run.measured_weights()
        if weights is None:
            return False
        path = self.directory.model_path(job.id)
        buffer = io.BytesIO()
        torch.save(weights, buffer)
        self.write(path, functools.partial(write_atomic, path, buffer.getvalue()))
        return True

    # ---- what a job process gets --------------------------------------------------------------
    def job_data(self) -> bytes:
        """The data set without its test split, pickled once: every job process gets it."""
        if "data" not in self._payloads:
            self._payloads["data"] = pickle.dumps(self.data.without_test(), protocol=pickle.HIGHEST_PROTOCOL)
        return self._payloads["data"]

    def base_states(self, seed: int) -> bytes:
        """The saved states of a seed's dense model (initialization, rewind point, final), pickled once."""
        key = f"states-{seed}"
        if key not in self._payloads:
            self._payloads[key] = pickle.dumps(self.base(seed).states, protocol=pickle.HIGHEST_PROTOCOL)
        return self._payloads[key]

    def measurer(self) -> Measurer:
        """The model of the protocol's architecture the runner measures every job's weights with."""
        if self._measurer is None:
            self._measurer = Measurer(self.protocol, self.data, self.device, limit=self.limit)
        return self._measurer

    def efficiency(self) -> EfficiencyMeasurement | None:
        """How the runner times jobs (the protocol's `efficiency:` section); None: it does not. On several
        ranks only rank 0 times, so that no rank's timing runs beside another's."""
        spec = self.protocol.efficiency
        if spec is None or self.rank != 0 or self.data.test is None:
            return None
        if self._efficiency is None:
            self._efficiency = EfficiencyMeasurement(spec, test=self.data.test, device=self.device)
        return self._efficiency

    def payload(self, task: JobTask) -> bytes:
        return pickle.dumps(task, protocol=pickle.HIGHEST_PROTOCOL)

    @property
    def provenance(self) -> RunProvenance:
        """What every record of this run shares (the code revision is looked up once per run)."""
        if self._provenance is None:
            self._provenance = RunProvenance.now(self.device, tuple(self.protocol.overrides))
        return self._provenance

    # ---- what jobs are built from -------------------------------------------------------------
    @property
    def data(self) -> DataBundle:
        if self._data is None:
            try:
                self._data = load_data(self.protocol.data)
            except FieldError as exc:
                raise self.protocol.locate(exc) from None
        return self._data

    def fresh_model(self) -> torch.nn.Module:
        """The protocol's architecture, initialized from torch's current RNG state."""
        return fresh_model(self.protocol, self.data)

    def build_model(self, seed: int) -> torch.nn.Module:
        """The protocol's architecture at the initialization of `seed`."""
        return seeded_model(self.protocol, self.data, seed)

    def engine(
        self,
        model: torch.nn.Module,
        seed: int,
        saved: dict[str, dict[str, torch.Tensor]],
        retrain: TrainingSpec | None = None,
    ) -> Engine:
        return build_engine(
            self.protocol,
            model,
            self.data,
            device=self.device,
            seed=seed,
            saved=saved,
            retrain=retrain,
            observer=_Progress(self.events),
            limit=self.limit,
        )

    def base(self, seed: int) -> BaseCheckpoint:
        """The dense model of a seed: from the cache when its weights verify, else trained now by this worker
        once it holds the seed's lease; BaseBusy while another worker trains it. On several ranks rank 0 decides,
        every rank trains, rank 0 writes."""
        if seed not in self._bases:
            path = self.cache.locate(seed)[0]
            source = ddp.broadcast(self._base_source(seed) if self.rank == 0 else None)
            if source == "busy":
                raise BaseBusy(seed)
            try:
                found = self.cache.find(seed) if source == "load" else None
                if found is None:
                    self._warn_not_shipped(seed)
                    base = pretrained_dense(self, seed) if self.protocol.base.checkpoint else train_dense(self, seed)
                    if self.rank == 0:
                        self.write(path, functools.partial(self.cache.save, seed, base))
                        self._stage_written()
                    found = base, path
                elif self.rank == 0:
                    self.events.base_loaded(seed, found[1])
            finally:
                if self.rank == 0:
                    self.base_claims.release(path.stem)
            self._bases[seed] = found[0]
        return self._bases[seed]

    def _base_source(self, seed: int) -> str:
        """load (a verified checkpoint is there), busy (another worker trains it) or train (its lease held)."""
        if self.cache.find(seed) is not None:
            return "load"
        if self.base_claims.claim(self.cache.locate(seed)[0].stem) is None:
            return "busy"
        return "load" if self.cache.find(seed) is not None else "train"  # trained meanwhile by another worker

    def _warn_not_shipped(self, seed: int) -> None:
        if self._dense_asked:
            warnings.warn(
                f"--dense-from: no dense model of seed {seed} for this protocol in "
                f"{', '.join(map(str, self.cache.shipped))}; training it",
                stacklevel=3,
            )
