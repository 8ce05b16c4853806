"""What a coupling of channels is made of (prunebench.methods.channels finds them): the slices of parameters
that go with each channel, the coupling, and a model's couplings with what exact counting of the compacted model
needs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

SliceKind = Literal["out", "in", "norm"]


@dataclass(frozen=True)
class Slice:
    """One parameter's part in a coupling. `kind`: `out`, a filter of a layer that writes the channels (the
    weight's dim 0); `in`, the input-channel columns of a layer that reads them (dim 1; several per channel after
    a flattening); `norm`, a BatchNorm's entries (its weight, `param`). `positions[c]`: the indices along that
    dim that belong to the coupling's channel c. `follows`: of a `norm`, the writer whose output it normalizes
    (every coupled BatchNorm follows one directly)."""

    module: str
    param: str
    kind: SliceKind
    positions: tuple[tuple[int, ...], ...]
    prunable: bool
    depthwise: bool = False  # a depthwise convolution's filters (its input and output channels are one)
    follows: str | None = None

    @property
    def dim(self) -> int:
        return 1 if self.kind == "in" else 0


@dataclass(frozen=True)
class Coupling:
    """`size` channels, each removable with its slices; `root`: the layer Torch-Pruning roots the group at."""

    root: str
    size: int
    slices: tuple[Slice, ...]


@dataclass
class ChannelGroups:
    """The couplings of a model, what was left out and why, and what exact counting needs: the dense model's
    parameters and conv/linear MACs per example (counted as the runner counts a compacted model), each coupled
    conv/linear layer's weight shape, MACs and bias, each coupled BatchNorm's parameters per channel."""

    couplings: list[Coupling]
    excluded: dict[str, str]
    prunable: dict[str, int]  # prunable weight -> its number of elements
    dense_params: int
    dense_macs: int
    layers: dict[str, tuple[tuple[int, ...], int, bool]] = field(default_factory=dict)  # shape, MACs, has bias
    norms: dict[str, int] = field(default_factory=dict)  # BatchNorm -> parameters per channel
