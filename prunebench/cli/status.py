"""`prunebench status`: where a run stands, from its files (and the SLURM jobs that work on it)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from prunebench.cli.app import app, out
from prunebench.cli.options import MethodsFilter, Overrides, SparsitiesFilter, VariantsFilter, split

ORDER = ("done", "violation", "failed", "corrupt", "altered", "unverified", "claimed", "stale", "pending")


@app.command()
def status(
    protocol: Annotated[Path, typer.Argument(help="Protocol YAML file.")],
    overrides: Overrides = None,
    results: Annotated[Path, typer.Option(help="Results directory the workers write.")] = Path("runs"),
    cache: Annotated[
        Path | None, typer.Option(help="Checkpoint cache (default $PRUNEBENCH_CACHE or ~/.cache/prunebench).")
    ] = None,
    methods: MethodsFilter = None,
    sparsities: SparsitiesFilter = None,
    seeds: Annotated[str | None, typer.Option(help="Only these seeds (comma-separated).")] = None,
    variants: VariantsFilter = None,
    every_job: Annotated[bool, typer.Option("--all", help="List done jobs too, not only the others.")] = False,
) -> None:
    """Each job of a run: done, failed, claimed (by whom, since when), stale or pending; the dense models, and the
    SLURM state of the arrays launched on it."""
    from prunebench.forkserver import start

    start()
    from prunebench.protocol import load_protocol
    from prunebench.run import default_cache_dir, plan
    from prunebench.run.runner import run_name, shipped_dense
    from prunebench.run.sandbox import labelled
    from prunebench.run.scheduling.status import RunFiles, dense_states, describe_holder, job_states

    proto = labelled(load_protocol(protocol, overrides or ()))
    run = RunFiles.of(proto, results, cache or default_cache_dir(), shipped_dense(), run_name(proto))
    jobs = plan(
        proto,
        methods=split(methods),
        sparsities=split(sparsities, float),
        seeds=split(seeds, int),
        variants=split(variants),
    )
    states = job_states(run, jobs)
    counts = Counter(s.state for s in states)
    out.print(
        f"{run.run_dir}: {len(states)} job(s): " + ", ".join(f"{counts[k]} {k}" for k in ORDER if counts[k]),
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    dense = Table("seed", "dense model", "file", "by", title="dense base models", title_justify="left")
    for d in dense_states(run, sorted({job.seed for job in jobs})):
        dense.add_row(str(d.seed), d.state, d.where, describe_holder(d.holder))
    out.print(dense)
    table = Table("job", "state", "by", title="jobs", title_justify="left")
    for s in sorted(states, key=lambda s: ORDER.index(s.state)):
        if every_job or s.state not in ("done", "violation"):
            table.add_row(s.job_id, s.state, describe_holder(s.holder))
    if table.row_count:
        out.print(table)
    from prunebench.launch import launches, slurm_states

    for launched in launches(run.run_dir):
        tasks = slurm_states(str(launched["job_id"]))
        summary = Counter(tasks.values())
        text = ", ".join(f"{n} {state}" for state, n in sorted(summary.items())) if tasks else "unknown to SLURM"
        if "error" in tasks:
            text = tasks["error"]
        out.print(
            f"SLURM array {launched['job_id']} ({launched['tasks']} task(s)): {text}", markup=False, highlight=False
        )
