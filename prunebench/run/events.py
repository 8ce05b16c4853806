"""What a run reports as it goes, for a progress display: callbacks, all optional."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from prunebench.engine import EngineObserver, EpochReport, Snapshot
from prunebench.results import EpochRecord, ResultRecord
from prunebench.run.jobs import Job

EpochCallback = Callable[[str, int, int, EpochRecord], None]


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


class EpochsShown(EngineObserver):
    """Dense base training's epochs, for the progress display."""

    def __init__(self, events: RunnerEvents) -> None:
        self.events = events

    def epoch_ended(self, report: EpochReport, snapshot: Snapshot | None) -> None:
        self.events.epoch(report.stage, report.record.epoch, report.total_epochs, report.record)
