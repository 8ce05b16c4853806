"""What a job's record file says of it: done, failed, corrupt, altered, unverified or pending (the one reading of a
record's state that scheduling, `status` and the command line share)."""

from __future__ import annotations

from pathlib import Path

from prunebench.results import IntegrityKey, load_checked, record_domain, record_sealed
from prunebench.run.jobs import Job


def job_status(job: Job, run_dir: Path, key: IntegrityKey | None) -> str:
    """done, failed, corrupt (not a valid record), altered (changed after the runner wrote it: its digest does not
    match), unverified (its MAC does not verify with `key`, the run's integrity key) or pending.

    Only a record the runner sealed counts as done or failed: a job's code can write any file, and a digest is a
    plain sha256 it can recompute, so a record without a MAC that verifies is one the runner cannot tell from a
    forgery (the record of a later job written by a job's code, or its own record rewritten). Records written
    before records had a MAC (or with another cache's key) are therefore re-run once, with a warning: the
    price of not trusting what could have been forged; the re-run writes them sealed."""
    path = job.path(run_dir)
    if not path.exists():
        return "pending"
    try:
        record, intact = load_checked(path)
    except ValueError:
        return "corrupt"
    if intact is False:
        return "altered"
    if not intact or not record_sealed(record, key, record_domain(run_dir.name, job.id)):
        return "unverified"
    return "failed" if record.status == "failed" else "done"


def record_mtime(job: Job, run_dir: Path) -> float | None:
    """When the job's record was last written; None when there is none."""
    try:
        return job.path(run_dir).stat().st_mtime
    except OSError:
        return None
