"""The records of what was measured of a job's pruned model as hardware runs it (docs/efficiency.md):
its physical compaction (structured methods), and its measured latency, throughput and memory beside its
dense base model's, on a named device."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from prunebench.results.base import Amount, Count, Rate, Record

Kernel = Literal["dense", "compacted", "semi_structured"]


class CompactionRecord(Record):
    """The pruned model with its zero channels physically removed (Torch-Pruning's dependency graph)."""

    channels_removed: Count = Field(description="Output channels removed, over all layers and coupled groups.")
    params: Count = Field(description="Parameters of the compacted module.")
    macs: Amount = Field(description="Conv and linear MACs per example of the compacted module.")
    max_abs_diff: Amount = Field(
        description="Largest absolute difference between the masked and the compacted model's outputs on a test "
        "batch: float arithmetic in another order, nothing more."
    )


class Timing(Record):
    batch_size: Count
    median_s: Amount = Field(description="Seconds per batch: the median over every timed block of every round.")
    iqr_s: Amount = Field(description="Interquartile range of those seconds.")
    throughput: Amount = Field(description="Examples per second at the median.")
    peak_memory_bytes: Count | None = Field(
        None, description="Peak bytes allocated during one forward pass beyond what was allocated before it."
    )


class ModelEfficiency(Record):
    kernel: Kernel = Field(
        description="dense: dense kernels over the weights, zeros included; compacted: the physically compacted "
        "model; semi_structured: 2:4 sparse kernels."
    )
    params: Count = Field(description="Parameters of the module timed.")
    macs: Amount = Field(description="Conv and linear MACs per example of the module timed, zeros included.")
    weight_bytes: Count = Field(description="Bytes of its parameters and buffers as stored.")
    timings: list[Timing]


class Speedup(Record):
    batch_size: Count
    median: Rate = Field(description="Median over the paired rounds of dense seconds / pruned seconds.")
    low: Rate = Field(description="The smallest round's ratio.")
    high: Rate = Field(description="The largest round's ratio.")


class EfficiencyRecord(Record):
    device: str = Field(description="Where it was timed: cpu, cuda:0.")
    device_name: str = Field(description="The processor or GPU model.")
    threads: Count = Field(description="torch's CPU threads while timing.")
    torch: str
    compiled: bool = Field(description="Both models were torch.compile'd.")
    rounds: Count = Field(0, description="Paired rounds: dense, then pruned, at every batch size.")
    sparse_kernel: str | None = Field(
        None, description="The sparse kernel that ran, or why none was available for this method here."
    )
    pruned: ModelEfficiency | None = None
    dense: ModelEfficiency | None = None
    speedup: list[Speedup] = Field(default_factory=list)
    not_measured: str | None = Field(
        None, description="Why nothing was timed (the job keeps its accuracy result); none: it was."
    )
