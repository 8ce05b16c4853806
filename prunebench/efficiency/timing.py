"""Timing and peak memory of a model's inference, by torch's own tools: `torch.utils.benchmark` on the CPU
(a warm-up, then `blocked_autorange`: blocks of runs long enough that the timer's own cost vanishes), CUDA
events on a GPU; the peak memory from torch's profiler on the CPU and its allocator statistics on a GPU.

A time is seconds per batch: the median of the timed blocks, and their interquartile range as its spread.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from prunebench.efficiency._imports import quietly

WARMUP_RUNS = 3


@dataclass
class Times:
    """Seconds per batch of every timed block, pooled over rounds."""

    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def iqr(self) -> float:
        if len(self.samples) < 2:
            return 0.0
        q = statistics.quantiles(self.samples, n=4, method="inclusive")
        return q[2] - q[0]


def time_forward(model: nn.Module, batch: Tensor, *, min_run_time: float, threads: int) -> list[float]:
    """Seconds per forward pass of `model` on `batch` (inference mode): one sample per timed block."""
    run = _forward(model, batch)
    if batch.device.type == "cuda":
        return _cuda_times(run, min_run_time)
    benchmark = quietly("torch.utils.benchmark")
    timer = benchmark.Timer(stmt="run()", globals={"run": run}, num_threads=threads)
    timer.timeit(WARMUP_RUNS)
    measurement = timer.blocked_autorange(min_run_time=min_run_time)
    return [t / measurement.number_per_run for t in measurement.raw_times]


def _forward(model: nn.Module, batch: Tensor) -> Callable[[], None]:
    def run() -> None:
        with torch.inference_mode():
            model(batch)

    return run


def _cuda_times(run: Callable[[], None], min_run_time: float) -> list[float]:
    """CUDA events around each run, after a warm-up; the device is synchronized before reading them."""
    for _ in range(WARMUP_RUNS):
        run()
    torch.cuda.synchronize()
    samples: list[float] = []
    spent = 0.0
    while spent < min_run_time or len(samples) < 5:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        run()
        end.record()
        end.synchronize()
        samples.append(start.elapsed_time(end) / 1000)
        spent += samples[-1]
    return samples


def peak_memory(model: nn.Module, batch: Tensor) -> int | None:
    """Bytes allocated at the peak of one forward pass beyond what was allocated before it: activations and
    workspace (the weights are counted apart). None where torch cannot tell."""
    run = _forward(model, batch)
    run()  # a warm-up, so one-time allocations are not counted
    if batch.device.type == "cuda":
        torch.cuda.synchronize(batch.device)
        before = torch.cuda.memory_allocated(batch.device)
        torch.cuda.reset_peak_memory_stats(batch.device)
        run()
        torch.cuda.synchronize(batch.device)
        return max(0, torch.cuda.max_memory_allocated(batch.device) - before)
    if batch.device.type != "cpu":
        return None
    from torch.profiler import ProfilerActivity, profile

    with _quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        run()
    # Allocation (positive) and release (negative) events in the order they happened: their running sum's
    # largest value is the peak above the start.
    events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events() if e.name() == "[memory]")
    level = peak = 0
    for _, nbytes in events:
        level += nbytes
        peak = max(peak, level)
    return peak


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """The profiler's C++ side prints start and stop lines to file descriptor 2: they are not the user's."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def weight_bytes(model: nn.Module) -> int:
    """Bytes of the model's parameters and buffers as stored (a sparse kernel's compressed form included)."""
    total = 0
    for t in [*model.parameters(), *model.buffers()]:
        packed = getattr(t, "packed", None)  # SparseSemiStructuredTensor: values and metadata
        meta = getattr(t, "meta", None)
        if isinstance(packed, Tensor):
            total += packed.numel() * packed.element_size()
            total += meta.numel() * meta.element_size() if isinstance(meta, Tensor) else 0
        else:
            total += t.numel() * t.element_size()
    return total
