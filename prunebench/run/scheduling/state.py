"""What a job's record file says of it: done, failed, corrupt or pending (the one reading of a record's state that
scheduling, `status` and the command line share)."""

from __future__ import annotations

from pathlib import Path

from prunebench.results import load_result
from prunebench.run.jobs import Job


def job_status(job: Job, run_dir: Path) -> str:
    """done, failed, corrupt or pending."""
    path = job.path(run_dir)
    if not path.exists():
        return "pending"
    try:
        record = load_result(path)
    except ValueError:
        return "corrupt"
    return "failed" if record.status == "failed" else "done"


def record_mtime(job: Job, run_dir: Path) -> float | None:
    """When the job's record was last written; None when there is none."""
    try:
        return job.path(run_dir).stat().st_mtime
    except OSError:
        return None
