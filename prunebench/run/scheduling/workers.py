"""Several workers on one machine (`prunebench run P --workers N`): N `prunebench run` processes on the same
results directory and cache, which share the grid through their claims (prunebench.run.leases), so no job runs
twice and a seed's dense model is trained once.

On the CPU the cores are split between them (`--threads`); on CUDA each gets a GPU of its own
(`CUDA_VISIBLE_DEVICES`). Each writes its output to `<run dir>/workers/<i>.log`. A worker that fails takes
nothing down: its claims go stale and the others take its jobs over.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from prunebench.errors import PrunebenchError
from prunebench.results import IntegrityKey
from prunebench.run.jobs import Job
from prunebench.run.provenance import cpu_count
from prunebench.run.scheduling.state import job_status


def visible_gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


# Set in each worker's environment (its index): a worker leaves the run's summary to the launcher.
WORKER_ENV = "PRUNEBENCH_WORKER"

# Why `--workers auto` keeps one worker on the CPU, when it does (None: it need not).
QUIET_MACHINE = "the protocol's efficiency section times every job's model, which needs a quiet machine"


def resolve_workers(value: str, device: str, *, threads: int, jobs: int, quiet: str | None = None) -> int:
    """`--workers`: a number, or auto: one per visible GPU when the run is on CUDA; on the CPU as many as its
    cores hold at `threads` each (both cores of a 2-core machine at one thread), never more than the `jobs`, and
    one where `quiet` says why (a run that times its models). Jobs are independent and each trains at the run's
    threads, so their records are the same whatever the count."""
    if value == "auto":
        gpus = visible_gpus() if device in ("auto", "cuda") else 0
        if gpus or quiet is not None:
            return max(1, gpus)
        return max(1, min(cpu_count() // max(1, threads), jobs))
    try:
        count = int(value)
    except ValueError:
        raise PrunebenchError(f"--workers must be a number or auto (got {value!r})") from None
    if count < 1:
        raise PrunebenchError(f"--workers must be at least 1 (got {count})")
    return count


@dataclass
class Worker:
    index: int
    process: subprocess.Popen[bytes]
    log: Path


def start_workers(command: Sequence[str], count: int, *, logs: Path, device: str, threads: int | None) -> list[Worker]:
    """Start `count` copies of `command` (a `prunebench run` command line without --workers)."""
    gpus = visible_gpus() if device in ("auto", "cuda") else 0
    each = threads if threads is not None else max(1, cpu_count() // count)
    logs.mkdir(parents=True, exist_ok=True)
    workers = []
    for i in range(count):
        env = {**os.environ, "OMP_NUM_THREADS": str(each), WORKER_ENV: str(i)}
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = str(i % gpus)
        log = logs / f"{i}.log"
        with open(log, "ab") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "prunebench", *command, "--threads", str(each)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,  # Ctrl-C reaches the launcher, which ends each worker as it should end
            )
        workers.append(Worker(i, process, log))
    return workers


def wait(workers: Sequence[Worker], on_poll: Callable[[], None] = lambda: None, poll_s: float = 1.0) -> list[int]:
    """Wait for every worker, calling `on_poll` every `poll_s`; their exit codes, as soon as the last has ended.
    Ctrl-C or SIGTERM here is passed on as SIGTERM (each worker then stops as a run on SIGTERM does, keeping what
    finished) and re-raised once they have ended."""
    try:
        polled = -poll_s
        while any(w.process.poll() is None for w in workers):
            if time.monotonic() - polled >= poll_s:
                polled = time.monotonic()
                on_poll()
            time.sleep(0.05)  # cheap (a waitpid each), and the run ends within 50 ms of its last worker
    except BaseException:
        stop(workers)
        raise
    on_poll()
    return [w.process.returncode for w in workers]


def stop(workers: Sequence[Worker], grace_s: float = 60.0) -> None:
    for w in workers:
        if w.process.poll() is None:
            with contextlib.suppress(OSError):
                w.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for w in workers:
        try:
            w.process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                os.killpg(w.process.pid, signal.SIGKILL)
            w.process.wait()


@dataclass(frozen=True)
class WorkersOutcome:
    """What N local workers left: each one's exit code, and the jobs that failed or were not run."""

    workers: list[Worker]
    codes: list[int]
    failed: list[str]
    pending: list[str]

    def problems(self) -> list[str]:
        """One line for each thing that went wrong, in the order a user reads them."""
        codes = zip(self.workers, self.codes, strict=True)
        lines = [f"worker {w.index} exited with code {c} (see {w.log})" for w, c in codes if c]
        if self.failed:
            lines.append(f"{len(self.failed)} job(s) failed: {', '.join(self.failed[:5])}")
        if self.pending:
            lines.append(
                f"{len(self.pending)} job(s) not run: {', '.join(self.pending[:5])}; run the same command again to "
                "resume"
            )
        return lines


def run_workers(
    command: Sequence[str],
    jobs: Sequence[Job],
    run_dir: Path,
    count: int,
    *,
    device: str,
    threads: int | None,
    say: Callable[[str], None],
    key: IntegrityKey,
) -> WorkersOutcome:
    """Start `count` workers on the jobs (`command`: the run's own command line, RunRequest.argv), say how many
    jobs are done as it changes, and wait for them (interrupts: see `wait`)."""
    logs = run_dir / "workers"
    workers = start_workers(command, count, logs=logs, device=device, threads=threads)
    say(f"{count} workers on {len(jobs)} job(s); their output is in {logs}/")
    seen = -1

    def show() -> None:  # every few seconds
        nonlocal seen
        done = sum(job.path(run_dir).exists() for job in jobs)  # not read: the workers need the cores
        if done != seen:
            seen = done
            say(f"{done}/{len(jobs)} job(s) done")

    codes = wait(workers, show, poll_s=2.0)
    states = {job.id: job_status(job, run_dir, key) for job in jobs}
    return WorkersOutcome(
        workers,
        codes,
        failed=[job_id for job_id, state in states.items() if state == "failed"],
        pending=[job_id for job_id, state in states.items() if state not in ("done", "failed")],
    )
