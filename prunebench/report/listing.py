"""`prunebench ls`: the run directories under some folders, from their files: each one's protocol, hash, how
many of its jobs are done, failed or shown apart, how many remain, and when its results were written."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prunebench.protocol import Protocol
from prunebench.report.load import sanity_table
from prunebench.results import PROTOCOL_FILE, load_records
from prunebench.results.store import read_protocol_file

MAX_DEPTH = 3  # run directories lie at most this far below a folder given


@dataclass
class RunListing:
    path: Path
    protocol: str
    hash: str
    expected: int | None  # the jobs its protocol plans (its own recipe and every retraining variant)
    status: Counter[str] = field(default_factory=Counter)  # ok, violation, failed
    first: str | None = None  # when its earliest and latest results finished (UTC, ISO 8601)
    last: str | None = None
    smoke: int = 0  # results of `run --limit` runs (smoke runs), never results

    @property
    def written(self) -> int:
        return sum(self.status.values())

    @property
    def pending(self) -> int | None:
        return None if self.expected is None else max(0, self.expected - self.written)


def run_directories(paths: Sequence[Path]) -> list[Path]:
    """Folders holding a protocol.json, at most MAX_DEPTH below the paths given, each once, sorted."""
    found: set[Path] = set()
    for root in paths:
        # os.walk, not Path.glob: a folder that a running worker removes meanwhile (its empty claims/) is skipped,
        # where glob (Python < 3.13) raises FileNotFoundError. Symbolic links are followed, as glob's `*` does;
        # the depth bounds the walk.
        for directory, subdirs, names in os.walk(root, followlinks=True):
            folder = Path(directory)
            if PROTOCOL_FILE in names and (folder / PROTOCOL_FILE).is_file():
                found.add(folder)
            if len(folder.relative_to(root).parts) >= MAX_DEPTH:
                subdirs.clear()
    return sorted(found)


def planned_jobs(protocol: Protocol, sanity: Any = None) -> int:
    """The jobs a run of `protocol` plans; a sanity ablation's for the methods protocol.json's `sanity` table says it
    applies to (without the table: for every method)."""
    cells = len(protocol.pruning.sparsities) * len(protocol.seeds)
    table = sanity_table(sanity)

    def planned(ablation: str, label: str) -> bool:
        return table is None or (label in table and table[label].get(ablation, "") is None)

    # A variant's job that another variant (or the protocol's recipe) already runs is not run twice.
    variant_jobs = sum(
        1
        for v in protocol.variant_plan().variants
        for m in v.methods
        if v.runs_as[m] == v.name and (v.kind != "sanity" or planned(v.name, m))
    )
    return cells * (len(protocol.methods) + variant_jobs)


def list_runs(paths: Sequence[Path]) -> list[RunListing]:
    out = []
    for directory in run_directories(paths):
        content = read_protocol_file(directory / PROTOCOL_FILE) or {}
        dump = content.get("protocol") if isinstance(content.get("protocol"), dict) else {}
        try:
            protocol: Protocol | None = Protocol.model_validate(dump)
        except (ValueError, TypeError):
            protocol = None  # another version's protocol.json: listed, not planned
        listing = RunListing(
            path=directory,
            protocol=str(dump.get("name", "?")),
            hash=str(content.get("hash", "?")),
            expected=planned_jobs(protocol, content.get("sanity")) if protocol is not None else None,
        )
        finished = []
        for loaded in load_records([directory]):
            r = loaded.record
            listing.status[r.status] += 1
            listing.smoke += int(r.limit is not None)
            finished.append(r.provenance.finished_at)
        if finished:
            listing.first, listing.last = min(finished), max(finished)
        out.append(listing)
    return out
