"""Where a run stands (`prunebench status`): each job done, failed, claimed (by whom, since when, how fresh its
lease is), stale (its holder stopped renewing: the next worker takes it over) or pending; each seed's dense
model cached, being trained, or still to train. Read from the files alone: it runs nothing and changes
nothing, so it can be asked of a results directory other workers are writing."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from prunebench.results import load_result
from prunebench.run.claims import Holder
from prunebench.run.plan import Job
from prunebench.run.runner import Runner


@dataclass(frozen=True)
class JobState:
    job_id: str
    state: str  # done, violation, failed, corrupt, claimed, stale, pending
    holder: Holder | None = None


@dataclass(frozen=True)
class DenseState:
    seed: int
    state: str  # cached, shipped, training, stale, missing
    where: str = ""
    holder: Holder | None = None


def job_states(runner: Runner, jobs: Sequence[Job]) -> list[JobState]:
    out = []
    for job in jobs:
        state = runner.status_of(job)
        if state == "done":
            state = "violation" if load_result(job.path(runner.run_dir)).status == "violation" else "done"
        holder = None
        if state == "pending":
            holder = runner.claims.holder(job.id)
            if holder is not None:
                state = "stale" if holder.stale else "claimed"
        out.append(JobState(job.id, state, holder))
    return out


def dense_states(runner: Runner, seeds: Sequence[int]) -> list[DenseState]:
    out = []
    for seed in seeds:
        path, _ = runner.cache.locate(seed)
        shipped = [folder / path.name for folder in runner.cache.shipped if (folder / path.name).exists()]
        holder = runner.base_claims.holder(path.stem)
        if shipped:
            out.append(DenseState(seed, "shipped", str(shipped[0])))
        elif path.exists():
            out.append(DenseState(seed, "cached", str(path)))
        elif holder is not None:
            out.append(DenseState(seed, "stale" if holder.stale else "training", str(path), holder))
        else:
            out.append(DenseState(seed, "missing", str(path)))
    return out


def describe_holder(holder: Holder | None) -> str:
    """Who holds a lease, since when, and how fresh it is, in words."""
    if holder is None:
        return ""
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.since))
    return f"{holder.owner}, since {since}, lease renewed {holder.heartbeat_age:.0f} s ago"
