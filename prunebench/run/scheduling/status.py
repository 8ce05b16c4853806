"""Where a run stands (`prunebench status`): each job done, failed, claimed (by whom, since when, how fresh its
lease is), stale (its holder stopped renewing, or its lease is not sealed: the next worker takes it over), pending,
corrupt, altered, or unverified (a record not sealed with the cache's key: re-run by the next run); each seed's dense
model cached, being trained, or still to train. Read from the files alone: it runs nothing and changes
nothing, so it can be asked of a results directory other workers are writing."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from prunebench.protocol import Protocol
from prunebench.results import IntegrityKey, RunDirectory, ephemeral_key, load_result
from prunebench.run.dense import DenseCache
from prunebench.run.jobs import Job
from prunebench.run.leases import Claims, Holder
from prunebench.run.scheduling.state import job_status


@dataclass(frozen=True)
class JobState:
    job_id: str
    state: str  # done, violation, failed, corrupt, altered, unverified, claimed, stale, pending
    holder: Holder | None = None


@dataclass(frozen=True)
class DenseState:
    seed: int
    state: str  # cached, shipped, training, stale, missing
    where: str = ""
    holder: Holder | None = None


@dataclass(frozen=True)
class RunFiles:
    """The files a run keeps, read only: its run directory with the jobs' records and leases, and the cache with
    the dense models and theirs."""

    directory: RunDirectory
    cache: DenseCache
    key: IntegrityKey | None  # the cache's integrity key; None when it has none (nothing then verifies)

    @classmethod
    def of(cls, protocol: Protocol, results: Path, cache: Path, shipped: Sequence[Path], name: str) -> RunFiles:
        key = IntegrityKey.of_cache(cache, create=False)
        return cls(RunDirectory.of(results, name), DenseCache(cache, protocol, shipped=shipped, key=key), key)

    @property
    def run_dir(self) -> Path:
        return self.directory.path


def job_states(run: RunFiles, jobs: Sequence[Job]) -> list[JobState]:
    claims = Claims(run.run_dir / "claims", key=run.key or ephemeral_key())
    out = []
    for job in jobs:
        state = job_status(job, run.run_dir, run.key)
        if state == "done":
            state = "violation" if load_result(job.path(run.run_dir)).status == "violation" else "done"
        holder = None
        if state == "pending":
            holder = claims.holder(job.id)
            if holder is not None:
                state = "stale" if holder.stale else "claimed"
        out.append(JobState(job.id, state, holder))
    return out


def dense_states(run: RunFiles, seeds: Sequence[int]) -> list[DenseState]:
    claims = Claims(run.cache.folder, key=run.cache.key)
    out = []
    for seed in seeds:
        path, _ = run.cache.locate(seed)
        shipped = [folder / path.name for folder in run.cache.shipped if (folder / path.name).exists()]
        holder = claims.holder(path.stem)
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
