"""`prunebench launch slurm`: the grid as a SLURM job array of workers, submitted through submitit.

Each array task is a worker (a `Runner` on the shared results directory and cache): it claims jobs until none is
left, so the array may be smaller than the grid, and a task that SLURM preempts, times out or requeues loses at
most the epoch in flight: the new run of the task takes its own leases over at once (SLURM_RESTART_COUNT is
higher) and resumes the job from its checkpoint in the cache. Before a time limit SLURM signals the task
(submitit's `signal_delay_s`); submitit then requeues it (`checkpoint`). Every launch is recorded in the run's
`launches/`, which `prunebench status` reads to show the SLURM state of its tasks.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prunebench.errors import PrunebenchError
from prunebench.results import write_atomic

if TYPE_CHECKING:
    from prunebench.run import RunRequest  # imported when a task runs: `status` reads launches without torch


@dataclass(frozen=True)
class SlurmLaunch:
    """What a launch asks SLURM for, and what its workers run."""

    protocol: Path
    results: Path
    overrides: list[str] = field(default_factory=list)  # the protocol's command-line overrides
    cache: Path | None = None
    partition: str | None = None
    time_limit: str = "24:00:00"
    gpus_per_job: int = 0
    cpus_per_job: int = 1
    processes_per_job: int = 1  # DDP ranks of each task (one per GPU): each job trains on all of them
    workers: int = 1  # array tasks
    array_parallelism: int | None = None
    filters: dict[str, Any] = field(default_factory=dict)  # methods, sparsities, seeds, variants
    log: list[str] = field(default_factory=list)  # experiment trackers every task logs its jobs to (`--log`)
    signal_delay_s: int = 120

    @property
    def device(self) -> str:
        return "cuda" if self.gpus_per_job > 0 else "cpu"

    def request(self) -> RunRequest:
        """The run every task of the array makes."""
        from prunebench.run import RunRequest

        f = self.filters
        return RunRequest(
            protocol=self.protocol,
            overrides=tuple(self.overrides),
            results=self.results,
            cache=self.cache,
            device=self.device,
            methods=_tuple(f.get("methods")),
            sparsities=_tuple(f.get("sparsities")),
            seeds=_tuple(f.get("seeds")),
            variants=_tuple(f.get("variants")),
            log=tuple(self.log),
        )


def minutes(limit: str) -> int:
    """A SLURM time limit (`MM`, `HH:MM:SS`, `D-HH:MM:SS`, `D-HH`) in minutes, as submitit takes it."""
    match = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", limit.strip())
    if match is None:
        raise PrunebenchError(f"--time: {limit!r} is not a SLURM time limit (HH:MM:SS, D-HH:MM:SS or minutes)")
    days, a, b, c = (int(x) if x is not None else None for x in match.groups())
    if days is None and b is None:
        total = a or 0  # plain minutes
    elif days is not None and b is None:
        total = days * 1440 + (a or 0) * 60  # D-HH
    else:
        hours, mins, secs = (a, b, c) if c is not None else (0, a, b)
        total = (days or 0) * 1440 + (hours or 0) * 60 + (mins or 0) + (1 if secs else 0)
    if total < 1:
        raise PrunebenchError(f"--time: {limit!r} is less than a minute")
    return total


class Worker:
    """One array task: a runner on the shared results directory, until no job is left to claim. Checkpointable:
    on preemption or timeout submitit requeues it as it is (what it did is in the results and the cache)."""

    def __init__(self, launch: SlurmLaunch) -> None:
        self.launch = launch

    def __call__(self) -> dict[str, int]:
        from prunebench.errors import Interrupted
        from prunebench.run import RunnerEvents, prepare
        from prunebench.run.ranks import leave_runners
        from prunebench.run.scheduling.signals import terminations_interrupt

        launch = self.launch
        if launch.processes_per_job > 1:
            from submitit.helpers import TorchDistributedEnvironment

            # MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE, LOCAL_RANK for the runners' group (prunebench.run.ranks).
            TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
        execution = prepare(launch.request())
        runner = execution.runner
        events = (
            RunnerEvents()
            if runner.rank != 0
            else RunnerEvents(
                job_started=lambda job, i, n: print(f"{job.id}: starting", flush=True),
                job_resumed=lambda job, done: print(
                    f"{job.id}: resumed from its checkpoint after epoch {done}", flush=True
                ),
                base_resumed=lambda seed, done: print(
                    f"dense model of seed {seed}: resumed after epoch {done}", flush=True
                ),
                job_finished=lambda job, record: print(f"{job.id}: {record.status}", flush=True),
                skipped=lambda job, why: None,
            )
        )
        try:
            # SLURM sends SIGTERM to every process of a task it requeues or preempts (submitit would let it pass):
            # the job in flight ends now, without a record, its checkpoint kept for the task's next run.
            with terminations_interrupt((signal.SIGTERM,)):
                ran = execution.run(events)
                leave_runners()
        except Interrupted as exc:
            print(f"interrupted by {exc.signal_name}: the next run of this task resumes", flush=True)
            return {"ran": len(runner.completed), "failed": 0, "interrupted": 1}
        return {"ran": len(ran), "failed": sum(r.status == "failed" for r in ran)}

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(Worker(self.launch))


def launch_slurm(launch: SlurmLaunch, run_dir: Path) -> str:
    """Submit the array; its SLURM job id. Errors of SLURM itself (no controller, no such partition) are one line."""
    if shutil.which("sbatch") is None:
        raise PrunebenchError("launch slurm: sbatch is not on PATH (is this a SLURM login node?)")
    import submitit

    folder = run_dir / "slurm"
    executor = submitit.SlurmExecutor(folder=folder / "%j", max_num_timeout=100)
    params: dict[str, Any] = {
        "time": minutes(launch.time_limit),
        "cpus_per_task": launch.cpus_per_job,
        "ntasks_per_node": launch.processes_per_job,
        "job_name": f"prunebench-{run_dir.name}",
        "signal_delay_s": launch.signal_delay_s,
        "additional_parameters": {"requeue": True},
    }
    if launch.partition:
        params["partition"] = launch.partition
    if launch.gpus_per_job:
        params["gpus_per_node"] = launch.gpus_per_job
    if launch.array_parallelism:
        params["array_parallelism"] = launch.array_parallelism
    executor.update_parameters(**params)
    check_partition(launch.partition)
    with _stderr_captured() as captured:
        try:
            with executor.batch():
                jobs = [executor.submit(Worker(launch)) for _ in range(launch.workers)]
        except (subprocess.CalledProcessError, submitit.core.utils.FailedJobError, OSError, RuntimeError) as exc:
            text = captured() + "\n" + str(getattr(exc, "output", None) or exc)
            raise PrunebenchError(f"launch slurm: sbatch refused the array: {_reason(text)}") from None
    array_id = jobs[0].job_id.split("_")[0]
    record = {"scheduler": "slurm", "job_id": array_id, "tasks": launch.workers, "submitted": time.time()}
    record["launch"] = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(launch).items()}
    write_atomic(run_dir / "launches" / f"slurm-{array_id}.json", json.dumps(record, indent=2))
    return array_id


def check_partition(partition: str | None) -> None:
    """The controller answers, and the partition (when one is named) is one of its partitions: one line if not."""
    try:
        done = subprocess.run(["sinfo", "-h", "-o", "%R"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PrunebenchError(f"launch slurm: cannot ask SLURM for its partitions ({exc.__class__.__name__})") from None
    if done.returncode != 0:
        raise PrunebenchError(f"launch slurm: SLURM does not answer: {_reason(done.stderr or done.stdout)}")
    known = sorted({line.strip() for line in done.stdout.splitlines() if line.strip()})
    if partition is not None and partition not in known:
        raise PrunebenchError(
            f"--partition: {partition!r} is not a partition of this cluster (it has {', '.join(known) or 'none'})"
        )


def _reason(text: str) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return next((line for line in lines if "error" in line.lower()), lines[-1] if lines else "no reason given")[:400]


@contextmanager
def _stderr_captured() -> Iterator[Callable[[], str]]:
    """What sbatch writes to stderr (submitit lets it through), read into the one error line instead."""
    with tempfile.TemporaryFile() as sink:
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)

        def read() -> str:
            sink.seek(0)
            return sink.read().decode(errors="replace")

        try:
            yield read
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def launches(run_dir: Path) -> list[dict[str, Any]]:
    out = []
    for path in sorted((run_dir / "launches").glob("slurm-*.json")):
        try:
            out.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return out


def slurm_states(job_id: str) -> dict[str, str]:
    """The state of each task of a SLURM array (`squeue` for those still queued or running, else `sacct`); an
    `error` entry when SLURM cannot be asked."""
    states: dict[str, str] = {}
    try:
        queued = subprocess.run(
            ["squeue", "-h", "-r", "-t", "all", "-j", job_id, "-o", "%i %T"], capture_output=True, text=True, timeout=30
        )
        for line in queued.stdout.splitlines():
            task, _, state = line.strip().partition(" ")
            states[task] = state
        done = subprocess.run(
            ["sacct", "-n", "-X", "-P", "-j", job_id, "-o", "JobID,State"], capture_output=True, text=True, timeout=30
        )
        for line in done.stdout.splitlines():
            task, _, state = line.strip().partition("|")
            if task and task not in states:
                states[task] = state.split()[0] if state else "?"
        if not states and queued.returncode != 0:
            states["error"] = (queued.stderr.strip().splitlines() or ["squeue failed"])[-1][:200]
    except (OSError, subprocess.TimeoutExpired) as exc:
        states["error"] = f"cannot ask SLURM ({exc.__class__.__name__})"
    return states


def _tuple(values: list[Any] | None) -> tuple[Any, ...] | None:
    return tuple(values) if values is not None else None
