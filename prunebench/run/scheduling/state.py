"""What a job's record file says of it: done, failed, corrupt, altered or pending (the one reading of a record's
state that scheduling, `status` and the command line share)."""

from __future__ import annotations

from pathlib import Path

from prunebench.results import load_checked
from prunebench.run.jobs import Job


def job_status(job: Job, run_dir: Path) -> str:
    """done, failed, corrupt (not a valid record), altered (changed after the runner wrote it: its digest does not
    match) or pending."""
    path = job.path(run_dir)
    if not path.exists():
        return "pending"
    try:
        record, intact = load_checked(path)
    except ValueError:
        return "corrupt"
    # A record without a digest (written before records had one) counts as what it says: otherwise every results
    # folder written before would re-run. The digest catches a record edited by hand, not one whose editor also
    # removed or recomputed it: that takes a keyed digest kept outside the job's reach.
    if intact is False:
        return "altered"
    return "failed" if record.status == "failed" else "done"


def record_mtime(job: Job, run_dir: Path) -> float | None:
    """When the job's record was last written; None when there is none."""
    try:
        return job.path(run_dir).stat().st_mtime
    except OSError:
        return None
