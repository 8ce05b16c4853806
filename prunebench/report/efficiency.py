"""The measured-efficiency columns of a leaderboard row (docs/efficiency.md): the speedup measured over the
dense base model at each batch size, with its spread, beside the FLOPs reduction counted; and the note that
names the devices they were measured on.

Over seeds: a batch size's speedup is the mean of the seeds' medians; its spread runs from the lowest round's
ratio of any seed to the highest's. Rows measured on different devices are never averaged together: the row
names every device, and the cell says "mixed devices".
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from prunebench.report.row import Row
from prunebench.results import EfficiencyRecord, ModelEfficiency, ResultSummary

# Said plainly in the cell: a speedup near 1.0 on dense kernels is the measurement, not a failure.
KERNELS = {"dense": "dense kernels", "compacted": "compacted", "semi_structured": "2:4 sparse kernels"}


def where(e: EfficiencyRecord) -> str:
    """The device a record was timed on, as the note names it."""
    compiled = ", compiled" if e.compiled else ""
    return f"{e.device} ({e.device_name}), {e.threads} thread(s), torch {e.torch}{compiled}"


def fill_efficiency(row: Row, records: Sequence[ResultSummary]) -> None:
    measured = [r.efficiency for r in records if r.efficiency is not None]
    if not measured:
        return
    timed = [e for e in measured if e.not_measured is None and e.pruned is not None]
    if not timed:
        row.efficiency_not_measured = measured[0].not_measured
        return
    row.speedup_devices = sorted({where(e) for e in timed})
    row.speedup_kernel = ",".join(sorted({e.pruned.kernel for e in timed if e.pruned is not None}))
    sizes = sorted({s.batch_size for e in timed for s in e.speedup})
    row.speedup_batch_sizes = sizes
    for b in sizes:
        at = [s for e in timed for s in e.speedup if s.batch_size == b]
        row.speedup_median.append(math.fsum(s.median for s in at) / len(at))
        row.speedup_low.append(min(s.low for s in at))
        row.speedup_high.append(max(s.high for s in at))
        row.latency_s.append(_mean_latency([e.pruned for e in timed], b))
        row.dense_latency_s.append(_mean_latency([e.dense for e in timed], b))


def _mean_latency(models: Sequence[ModelEfficiency | None], batch_size: int) -> float:
    values = [t.median_s for m in models if m is not None for t in m.timings if t.batch_size == batch_size]
    return math.fsum(values) / len(values) if values else math.nan


def speedup_cell(row: Row) -> str:
    if row.kind == "dense":
        return "-"
    if not row.speedup_batch_sizes:
        return "not measured" if row.efficiency_not_measured else "-"
    cells = [
        f"b{b} {m:.2f}x [{lo:.2f}\u2013{hi:.2f}]"
        for b, m, lo, hi in zip(
            row.speedup_batch_sizes, row.speedup_median, row.speedup_low, row.speedup_high, strict=True
        )
    ]
    mixed = ", mixed devices" if len(row.speedup_devices) > 1 else ""
    return ", ".join(cells) + f" ({KERNELS.get(row.speedup_kernel or '', row.speedup_kernel)}{mixed})"


def speedup_compact(row: Row) -> str:
    """The terminal's cell: the largest batch size's median only."""
    if row.kind == "dense" or not row.speedup_batch_sizes:
        return speedup_cell(row) if row.kind != "dense" else "-"
    return f"{row.speedup_median[-1]:.2f}x b{row.speedup_batch_sizes[-1]}"


def efficiency_note(rows: Sequence[Row]) -> str | None:
    devices = sorted({d for r in rows for d in r.speedup_devices})
    if not devices:
        return None
    return (
        "speedup (measured): dense over pruned seconds per batch at batch size b, median of paired rounds "
        f"[lowest\u2013highest round], on {'; '.join(devices)}; FLOPs is counted, not measured"
    )
