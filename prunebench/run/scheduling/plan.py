"""The plan of a run: its protocol's grid, with every method given by path labelled by its registered name, and
each sanity ablation planned for the methods it applies to (known from their descriptions)."""

from __future__ import annotations

from collections.abc import Sequence

from prunebench.protocol import Protocol
from prunebench.protocol.sanity import Applicability, applicability
from prunebench.run.jobs import Job, grid
from prunebench.run.sandbox.describe import describe, labelled
from prunebench.run.sandbox.tasks import MethodInfo


def sanity_table(protocol: Protocol, methods: Sequence[MethodInfo] | None = None) -> Applicability | None:
    """Which sanity ablations apply to which method, and why not (prunebench.protocol.sanity); None for a protocol
    without them. `methods`: the protocol's methods as described (described here when not given)."""
    ablations = protocol.variant_plan().ablations
    if not ablations:
        return None
    infos = list(methods) if methods is not None else describe(protocol)
    return applicability(
        ablations, {m.key: (info.taxonomy, info.scored) for m, info in zip(protocol.methods, infos, strict=True)}
    )


def plan(
    protocol: Protocol,
    *,
    methods: Sequence[str] | None = None,
    sparsities: Sequence[float] | None = None,
    seeds: Sequence[int] | None = None,
    shard: tuple[int, int] | None = None,
    variants: Sequence[str] | None = None,
    described: Sequence[MethodInfo] | None = None,
) -> list[Job]:
    """The jobs of the grid, optionally filtered (filters may only narrow the protocol's grid); see `grid`.
    Methods given by path are labelled first (a job process loads them: plans that need no label start none); a
    protocol with sanity ablations has its methods described (`described`, when the caller has them already)."""
    labelled_protocol = labelled(protocol)
    return grid(
        labelled_protocol,
        methods=methods,
        sparsities=sparsities,
        seeds=seeds,
        shard=shard,
        variants=variants,
        sanity=sanity_table(labelled_protocol, described),
    )
