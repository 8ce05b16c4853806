"""What a job's zeros leave connected (prunebench.connectivity, docs/analyses.md): layers left without a kept
weight, layers and blocks cut off from every input-output path, and a network in which no path survives."""

from __future__ import annotations

from pydantic import Field

from prunebench.results.base import Record


class ConnectivityRecord(Record):
    collapsed: list[str] = Field(
        default_factory=list,
        description="Prunable weights with no kept weight at all: layer collapse (Tanaka et al. 2020).",
    )
    cut_off: list[str] = Field(
        default_factory=list,
        description="Prunable weights with kept weights none of which lies on a path from the input to the output.",
    )
    cut_blocks: list[str] = Field(
        default_factory=list,
        description="Blocks (the smallest module holding two or more prunable layers: a residual block) with a "
        "collapsed or cut-off layer while the network stays connected: their other branch (a shortcut) carries it.",
    )
    disconnected: bool | None = Field(
        None,
        description="No path from the input to the output survives: SynFlow's objective on |W|·mask (float64, "
        "BatchNorm as the identity) is exactly 0, and every kept weight is ineffective. None: not computed.",
    )
    not_computed: str | None = Field(
        None,
        exclude_if=lambda why: why is None,
        description="Why effective sparsity and disconnection were not computed (a network that is no product of "
        "weights along paths: attention, gates).",
    )
