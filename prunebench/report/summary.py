"""Tables for people: the plan of a run and the summary that closes it."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Group
from rich.table import Table

from prunebench.results import ResultFileWarning, load_records

if TYPE_CHECKING:
    from prunebench.run import Job, Runner


def plan_table(runner: Runner, jobs: list[Job]) -> Table:
    p = runner.protocol
    seeds = sorted({j.seed for j in jobs})
    cached = {s: runner.cache.has(s) for s in seeds}
    table = Table(
        title=f"Plan of {p.name} (hash {p.hash[:10]}, setup {p.comparison}) -> {runner.run_dir}",
        caption=(
            f"dense base models: {', '.join(f'seed {s} ' + ('cached' if cached[s] else 'to train') for s in seeds)}; "
            f"base {p.base.epochs} epochs, pruning budget {p.budget.pruning_epochs:g} epochs, "
            f"retraining {p.retrain.epochs} epochs ({p.retrain.optimizer.name} lr {p.retrain.optimizer.lr:g}, "
            f"{p.retrain.schedule.name})"
            + (f"; retraining variants: {', '.join(p.variant_plan().names)}" if p.variant_plan() else "")
        ),
    )
    for col in ("job", "method", "sparsity", "seed", "status", "result file"):
        table.add_column(col)
    for i, job in enumerate(jobs):
        status = "re-run (--force)" if runner.force and runner.status_of(job) != "pending" else runner.status_of(job)
        table.add_row(
            str(i + 1),
            job.method_key if job.variant is None else f"{job.method_key} @ {job.variant}",
            f"{job.sparsity:g}",
            str(job.seed),
            status,
            str(job.path(runner.run_dir)),
        )
    return table


def run_summary(run_dir: Path) -> Group:
    """The paper's table (prunebench.report.pivot) of each board of one run: what `compare` ranks, the same
    numbers and marks."""
    from prunebench.report.compare import compare
    from prunebench.report.pivot import pivot, pivot_table

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResultFileWarning)
        loaded = load_records([run_dir]) if run_dir.exists() else []
    return Group(*(pivot_table(pivot(b)) for b in compare(loaded).boards))
