"""Writing a run's files: a write that fails stops the run with one clear line, every finished result kept."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from prunebench.errors import ResultsError
from prunebench.results import ResultRecord, describe_os_error


class RunWriter:
    """Writes the files of one run directory and keeps the records it wrote, so that an error can say what is
    kept."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.completed: list[ResultRecord] = []  # the records this run has written so far

    def write(self, path: Path, write: Callable[[], None]) -> None:
        """Run `write` (which writes `path`); an OSError becomes a ResultsError naming the file and what is kept."""
        try:
            write()
        except OSError as exc:
            raise ResultsError(
                f"cannot write {path} ({describe_os_error(exc)}); the {len(self.completed)} result(s) this run "
                f"finished are kept in {self.run_dir}: fix that and run the same command again to resume"
            ) from None
