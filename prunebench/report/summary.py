"""Tables for people: the plan of a run and the summary that closes it."""

from __future__ import annotations

import statistics
import warnings
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

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


def _mean_std(values: list[float]) -> str:
    if not values:
        return "-"
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * mean:.2f} ± {100 * std:.2f}"


def run_summary(run_dir: Path) -> Table:
    """Test top-1 (mean ± std over seeds, %) per method and sparsity, for one protocol's results. Only results
    with status ok are averaged, as `compare` ranks only those; a cell with others says which."""
    accuracy: dict[tuple[str, float], list[float]] = defaultdict(list)
    statuses: dict[tuple[str, float], list[str]] = defaultdict(list)
    dense: dict[int, float] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResultFileWarning)
        records = [x.record for x in load_records([run_dir])] if run_dir.exists() else []
    for r in records:
        # A retraining variant's results are another row: never averaged with the protocol's own recipe.
        label = r.method.label if r.variant is None else f"{r.method.label} @ {r.variant.name}"
        key = (label, r.target_sparsity)
        statuses[key].append(r.status)
        if r.metrics is not None and r.status == "ok":
            accuracy[key].append(r.metrics.test_top1)
        if r.base is not None:
            dense[r.seed] = r.base.test_top1
    sparsities = sorted({s for _, s in statuses})
    methods = sorted({m for m, _ in statuses})
    table = Table(title=f"Test top-1 % (mean ± std over seeds): {run_dir.name}")
    table.add_column("method")
    for s in sparsities:
        table.add_column(f"sparsity {s:g}", justify="right")
    table.add_row("dense base model", *[_mean_std(list(dense.values()))] * len(sparsities), style="dim")
    for m in methods:
        cells = []
        for s in sparsities:
            st = statuses.get((m, s), [])
            flag = "" if all(x == "ok" for x in st) else " !" + ",".join(sorted({x for x in st if x != "ok"}))
            cells.append(_mean_std(accuracy.get((m, s), [])) + f" (n={len(accuracy.get((m, s), []))})" + flag)
        table.add_row(m, *cells)
    return table
