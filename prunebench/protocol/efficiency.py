"""The `efficiency:` section: how the runner measures the speed and memory of every job's pruned model.

Measuring is opt-in: a protocol without the section measures nothing and pays nothing. With it, after a job's
accuracy is measured the runner times the pruned model and its dense base model in the same process, on the
same device and threads (docs/efficiency.md). The section changes what a record holds, not what is trained:
hashed when set, and outside the comparison setup, so results with and without it stay comparable.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator

from prunebench.protocol.base import StrictModel

MAX_TIMED_BATCH = 4096


class EfficiencySpec(StrictModel):
    batch_sizes: list[Annotated[int, Field(ge=1, le=MAX_TIMED_BATCH)]] = Field(
        default_factory=lambda: [1, 64],
        min_length=1,
        max_length=8,
        description="Batch sizes inference is timed at: latency per batch, throughput in examples per second.",
    )
    threads: int = Field(
        1, ge=1, le=256, description="torch's CPU threads while timing (on a GPU: the host's threads)."
    )
    compile: bool = Field(
        False, description="Time `torch.compile`d models (both the pruned and the dense one); off: eager."
    )
    min_run_time: float = Field(
        0.1,
        gt=0,
        le=60,
        description="Seconds of timed runs per model, batch size and round (torch.utils.benchmark's "
        "blocked_autorange, after a warm-up).",
    )
    rounds: int = Field(
        3,
        ge=1,
        le=50,
        description="Paired rounds: each times the dense model, then the pruned one. A speedup's spread is the "
        "range of its rounds' ratios, so a machine that slows down in the middle shows as spread, not as speed.",
    )

    @field_validator("batch_sizes")
    @classmethod
    def _distinct(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v):
            raise ValueError("batch sizes must not repeat")
        return sorted(v)
