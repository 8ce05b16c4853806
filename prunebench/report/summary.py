"""Tables for people: the plan of a run and the summary that closes it."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Group
from rich.table import Table

from prunebench.protocol import Protocol
from prunebench.results import ResultFileWarning, load_records


@dataclass(frozen=True)
class PlanRow:
    """One job of a run's plan as the plan table shows it: what it runs, and what the run will do with it
    (`status`: pending, done, failed, corrupt, altered, or "re-run (--force)"), and its result file."""

    method: str  # the method's label
    variant: str | None  # its retraining variant (None: the protocol's own recipe)
    sparsity: float
    seed: int
    status: str
    path: Path


def plan_table(protocol: Protocol, rows: Sequence[PlanRow], run_dir: Path, dense_cached: Mapping[int, bool]) -> Table:
    """The plan of a run into `run_dir`: one line per job, and a caption with each seed's dense base model (cached,
    per `dense_cached`, or to train) and the protocol's training budget."""
    seeds = sorted({r.seed for r in rows})
    dense = ", ".join(f"seed {s} " + ("cached" if dense_cached[s] else "to train") for s in seeds)
    table = Table(
        title=f"Plan of {protocol.name} (hash {protocol.hash[:10]}, setup {protocol.comparison}) -> {run_dir}",
        caption=f"dense base models: {dense}; {_budget(protocol)}",
    )
    target = "sparsity" if protocol.pruning.targets is None else protocol.pruning.target_kind.replace("_", " ")
    for col in ("job", "method", target, "seed", "status", "result file"):
        table.add_column(col)
    for i, row in enumerate(rows):
        method = row.method if row.variant is None else f"{row.method} @ {row.variant}"
        table.add_row(str(i + 1), method, f"{row.sparsity:g}", str(row.seed), row.status, str(row.path))
    return table


def _budget(p: Protocol) -> str:
    """The training a protocol grants, for the plan's caption."""
    return (
        f"base {p.base.epochs} epochs, pruning budget {p.budget.pruning_epochs:g} epochs, "
        f"retraining {p.retrain.epochs} epochs ({p.retrain.optimizer.name} lr {p.retrain.optimizer.lr:g}, "
        f"{p.retrain.schedule.name})"
        + (f"; retraining variants: {', '.join(p.variant_plan().names)}" if p.variant_plan() else "")
    )


def run_summary(run_dir: Path) -> Group:
    """The paper's table (prunebench.report.pivot) of each board of one run: what `compare` ranks, the same
    numbers and marks."""
    from prunebench.report.compare import compare
    from prunebench.report.pivot import pivot, pivot_table

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResultFileWarning)
        loaded = load_records([run_dir]) if run_dir.exists() else []
    return Group(*(pivot_table(pivot(b)) for b in compare(loaded).boards))
