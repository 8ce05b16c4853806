"""The plan of a run: its protocol's grid, with every method given by path labelled by its registered name."""

from __future__ import annotations

from collections.abc import Sequence

from prunebench.protocol import Protocol
from prunebench.run.jobs import Job, grid
from prunebench.run.sandbox.describe import labelled


def plan(
    protocol: Protocol,
    *,
    methods: Sequence[str] | None = None,
    sparsities: Sequence[float] | None = None,
    seeds: Sequence[int] | None = None,
    shard: tuple[int, int] | None = None,
    variants: Sequence[str] | None = None,
) -> list[Job]:
    """The jobs of the grid, optionally filtered (filters may only narrow the protocol's grid); see `grid`.
    Methods given by path are labelled first (a job process loads them: plans that need no label start none)."""
    return grid(labelled(protocol), methods=methods, sparsities=sparsities, seeds=seeds, shard=shard, variants=variants)
