"""What `prunebench run` shows while it runs: on a terminal, a bar for the grid (with the time left, estimated
from the jobs finished) and one for the stage in flight, named; elsewhere (a cluster's log file), one line per
epoch and per job, with a time stamp. Every finished job gets a line either way."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

if TYPE_CHECKING:
    from prunebench.results import EpochRecord, ResultRecord
    from prunebench.run import Job, RunnerEvents

STAGES = {"base": "training", "pruning": "pruning", "retrain": "retraining"}


def duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class RunProgress:
    """The run's display; `events()` are the runner's callbacks, `live()` the context it runs in."""

    def __init__(self, console: Console, total: int) -> None:
        self.console = console
        self.terminal = console.is_terminal
        self.total = total
        self.finished: list[float] = []  # seconds of each job this run finished
        self.done_before = 0
        self.done_elsewhere = 0  # by other workers on the same results directory, while this run ran
        self.failed_before: list[str] = []
        self.todo = 0
        self.job = ""  # the job in flight
        self.base = ""  # the dense model in training
        self._started = time.perf_counter()
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[left]}"),
            console=console,
            transient=False,
        )
        self._grid = self._progress.add_task("grid", total=total, left="")
        self._stage = self._progress.add_task("", total=1, visible=False, left="")

    @contextmanager
    def live(self) -> Iterator[None]:
        if not self.terminal:
            yield
            return
        with self._progress:
            yield
        self._progress.update(self._stage, visible=False)

    def events(self) -> RunnerEvents:
        from prunebench.run import RunnerEvents

        return RunnerEvents(
            job_started=self.job_started,
            job_finished=self.job_finished,
            base_started=self.base_started,
            base_loaded=self.base_loaded,
            epoch=self.epoch,
            skipped=self.skipped,
            base_resumed=self.base_resumed,
            job_resumed=self.job_resumed,
        )

    # ---- the runner's callbacks -----------------------------------------------------------------------
    def job_started(self, job: Job, index: int, count: int) -> None:
        self.todo = count
        self.job = job.id
        self._job_started = time.perf_counter()
        self._show_stage(f"{job.id}: starting", 0, 1)

    def job_finished(self, job: Job, record: ResultRecord) -> None:
        self.finished.append(time.perf_counter() - self._job_started)
        self._progress.advance(self._grid)
        left = self.time_left()
        self._progress.update(self._grid, left=f"about {duration(left)} left" if left is not None else "")
        from prunebench.report.metric import format_value, ranked_value, ranking_metric

        metric, value = ranking_metric(record), ranked_value(record)  # test top-1, or a causal LM's perplexity
        shown = "-" if value is None else (f"{value:.4f}" if metric.percent else format_value(metric, value))
        note = "" if record.status == "ok" else f" [{record.status}: {'; '.join(record.reasons)}]"
        where = f"[{len(self.finished)}/{self.todo}] " if not self.terminal else ""
        eta = f" ({duration(left)} left)" if left is not None and not self.terminal and left > 0 else ""
        self._line(f"{where}{job.id}: {metric.label.removesuffix(' %')} {shown}{note}{eta}")

    def base_started(self, seed: int, epochs: int) -> None:
        self.base = f"dense base model, seed {seed}"
        self._show_stage(f"{self.base}: training", 0, epochs)

    def base_resumed(self, seed: int, epochs_done: int) -> None:
        self._line(f"dense base model, seed {seed}: resumed from its checkpoint after epoch {epochs_done}")

    def job_resumed(self, job: Job, epochs_done: int) -> None:
        self._line(f"{job.id}: resumed from its checkpoint after retraining epoch {epochs_done}")

    def base_loaded(self, seed: int, path: Path) -> None:
        self._line(f"dense base model, seed {seed}: {path}")

    def epoch(self, stage: str, epoch: int, total: int, record: EpochRecord) -> None:
        what = STAGES.get(stage, stage)
        name = self.base if stage == "base" else self.job
        self._show_stage(f"{name}: {what} epoch {epoch}/{max(total, epoch)}", epoch, max(total, epoch))
        if not self.terminal:
            self._line(
                f"{name}: {what} epoch {epoch}/{max(total, epoch)}: train loss {record.train_loss:.4f}, "
                f"val top-1 {record.val_top1:.4f}"
            )

    def skipped(self, job: Job, why: str) -> None:
        self._progress.advance(self._grid)
        if why == "failed":
            self.failed_before.append(job.id)
        elif why == "done by another worker":
            self.done_elsewhere += 1
        else:
            self.done_before += 1

    # ---- helpers --------------------------------------------------------------------------------------
    def time_left(self) -> float | None:
        """The jobs left times the mean of those finished: None before the first one ends."""
        if not self.finished:
            return None
        return (self.todo - len(self.finished)) * sum(self.finished) / len(self.finished)

    def _show_stage(self, description: str, completed: int, total: int) -> None:
        self._progress.update(self._stage, description=f"  {description}", completed=completed, total=total)
        self._progress.update(self._stage, visible=True)

    def _line(self, text: str) -> None:
        stamp = "" if self.terminal else f"{datetime.now():%H:%M:%S} "
        self.console.print(stamp + text, markup=False, highlight=False, soft_wrap=True)

    def summary(self, ran: list[ResultRecord], run_dir: Path) -> str:
        failed = sum(r.status == "failed" for r in ran)
        text = (
            f"{len(ran)} job(s) run, {self.done_before} already done, "
            + (f"{self.done_elsewhere} by other workers, " if self.done_elsewhere else "")
            + "in "
            f"{duration(time.perf_counter() - self._started)}; results in {run_dir}"
        )
        if failed:
            text += f"; {failed} job(s) FAILED (reasons above)"
        if self.failed_before:
            text += (
                f"; {len(self.failed_before)} job(s) failed in an earlier run and were not run again "
                f"({', '.join(self.failed_before[:3])}{' ...' if len(self.failed_before) > 3 else ''}): "
                "--retry-failed runs them"
            )
        return text
