"""Exact counts of a model with channel groups removed (prunebench.methods.channels), without building it.

Removing channels only shrinks the coupled layers' weights along their channel dims, so every count follows from
how many output and input channels each coupled layer keeps. A conv/linear layer whose weight has `o` of its
`O` output rows and `i` of its `I` input columns left keeps `o * i * k` weights (k: the elements of one row and
column, the kernel), `o` biases and `o * i / (O * I)` of its MACs (MACs scale with output and input channels at
fixed spatial size; a depthwise convolution's single input column never moves); a BatchNorm keeps its
parameters of the channels left. That is what physical compaction (prunebench.efficiency.compact) leaves and what
the runner counts from the compacted module: the parameters of every module, the conv and linear MACs
(prunebench.models.layer_macs). A test checks the counts against compaction on ResNets, VGG and MobileNetV2.

The zeroed prunable weights are counted the same way: every element of a removed channel's slices of a prunable
weight is zero, each element once (a filter and an input column of one weight overlap in k elements).
"""

from __future__ import annotations

from dataclasses import dataclass

from prunebench.methods.coupling import ChannelGroups


@dataclass(frozen=True)
class Counts:
    """A model's conv/linear MACs per example, its parameters, and the zeros among its prunable weights."""

    macs: int
    params: int
    zeros: int


class Tally:
    """The counts of `groups`' model as channel groups are removed one by one (`remove`); starts dense."""

    def __init__(self, groups: ChannelGroups) -> None:
        self.groups = groups
        self.out = {m: shape[0] for m, (shape, _, _) in groups.layers.items()}
        self.inp = {m: shape[1] if len(shape) > 1 else 1 for m, (shape, _, _) in groups.layers.items()}
        self.unit: dict[str, int] = {}
        self.kernel: dict[str, int] = {}
        for m, (shape, macs, _) in groups.layers.items():
            full = self.out[m] * self.inp[m]
            if macs % full:
                raise ValueError(f"{m}: {macs} MACs are not a multiple of its {full} output x input channels")
            self.unit[m] = macs // full
            numel = 1
            for n in shape:
                numel *= n
            self.kernel[m] = numel // full
        self.removed: set[tuple[int, int]] = set()
        self.macs, self.params, self.zeros = groups.dense_macs, groups.dense_params, 0

    @property
    def counts(self) -> Counts:
        return Counts(self.macs, self.params, self.zeros)

    def remove(self, coupling: int, channel: int) -> None:
        """Take channel `channel` of coupling number `coupling` out, with all its slices."""
        if (coupling, channel) in self.removed:
            raise ValueError(f"channel {channel} of coupling {coupling} is removed already")
        macs, params, zeros, out, inp = self._effect(coupling, channel)
        self.removed.add((coupling, channel))
        self.macs, self.params, self.zeros = self.macs - macs, self.params - params, self.zeros + zeros
        self.out.update(out)
        self.inp.update(inp)

    def added_zeros(self, coupling: int, channel: int) -> int:
        """The prunable weights removing `channel` of `coupling` would zero now (nothing is removed)."""
        return self._effect(coupling, channel)[2]

    def cost(self, kind: str) -> int:
        """The current MACs (`flops_reduction`) or parameters (`params_reduction`)."""
        return self.macs if kind == "flops_reduction" else self.params

    def saved(self, coupling: int, channel: int, kind: str) -> int:
        """The MACs or parameters (`kind`, as in `reduction`) removing `channel` of `coupling` would take away now
        (nothing is removed)."""
        macs, params, *_ = self._effect(coupling, channel)
        return macs if kind == "flops_reduction" else params

    def _effect(self, coupling: int, channel: int) -> tuple[int, int, int, dict[str, int], dict[str, int]]:
        """(MACs and parameters removing the channel takes away, zeros it adds, the layers' channels left)."""
        macs = params = zeros = 0
        out: dict[str, int] = {}
        inp: dict[str, int] = {}
        for s in self.groups.couplings[coupling].slices:
            if s.kind == "norm":
                params += self.groups.norms[s.module]
                continue
            m, n = s.module, len(s.positions[channel])
            o, i = out.get(m, self.out[m]), inp.get(m, self.inp[m])
            other = i if s.kind == "out" else o  # the channels of the dim not cut
            macs += self.unit[m] * other * n
            weights = self.kernel[m] * other * n
            params += weights + (n if s.kind == "out" and self.groups.layers[m][2] else 0)
            zeros += weights if s.prunable else 0
            if s.kind == "out":
                out[m] = o - n
            else:
                inp[m] = i - n
        return macs, params, zeros, out, inp

    def reduction(self, kind: str) -> float:
        """Dense over current FLOPs (`flops_reduction`) or parameters (`params_reduction`)."""
        if kind == "flops_reduction":
            return self.groups.dense_macs / self.macs if self.macs else float("inf")
        return self.groups.dense_params / self.params if self.params else float("inf")

    def sparsity(self) -> float:
        """The zeroed fraction of the prunable weights."""
        return self.zeros / sum(self.groups.prunable.values())
