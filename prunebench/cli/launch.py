"""`prunebench launch slurm`: a protocol's grid as a SLURM job array of workers (prunebench.launch)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer

from prunebench.cli.app import app, out
from prunebench.cli.options import MethodsFilter, Overrides, SparsitiesFilter, VariantsFilter, split
from prunebench.errors import PrunebenchError

launch_app = typer.Typer(help="Run a protocol's grid on a cluster.", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(launch_app, name="launch")


@launch_app.command()
def slurm(
    protocol: Annotated[Path, typer.Argument(help="Protocol YAML file.")],
    overrides: Overrides = None,
    results: Annotated[Path, typer.Option(help="Results directory, on a file system every node sees.")] = Path("runs"),
    cache: Annotated[Path | None, typer.Option(help="Checkpoint cache, on a file system every node sees.")] = None,
    partition: Annotated[str | None, typer.Option(help="SLURM partition (default: the cluster's).")] = None,
    time_limit: Annotated[str, typer.Option("--time", help="Time limit of each task (HH:MM:SS, D-HH:MM:SS).")] = (
        "24:00:00"
    ),
    gpus_per_job: Annotated[int, typer.Option(help="GPUs of each task (0: on the CPU).")] = 0,
    cpus_per_job: Annotated[int, typer.Option(help="CPU cores of each process of a task.")] = 1,
    processes_per_job: Annotated[
        int | None,
        typer.Option(help="Processes of each task, each job trained on all of them with DDP (default: one per GPU)."),
    ] = None,
    workers: Annotated[int | None, typer.Option(help="Array tasks (default: one per job of the grid).")] = None,
    array_parallelism: Annotated[int | None, typer.Option(help="At most this many tasks at once.")] = None,
    methods: MethodsFilter = None,
    sparsities: SparsitiesFilter = None,
    seeds: Annotated[str | None, typer.Option(help="Only these seeds (comma-separated).")] = None,
    variants: VariantsFilter = None,
    log: Annotated[
        list[str] | None,
        typer.Option("--log", help="Log every job to a tracker: tensorboard, mlflow or wandb (repeatable)."),
    ] = None,
) -> None:
    """Submit the grid as a SLURM job array of workers that share the results directory; print the job id."""
    from prunebench.forkserver import start

    start()
    from prunebench.launch import SlurmLaunch, launch_slurm
    from prunebench.results import ensure_writable, guard_references
    from prunebench.run import RunRequest, prepare

    filters = {
        "methods": split(methods),
        "sparsities": split(sparsities, float),
        "seeds": split(seeds, int),
        "variants": split(variants),
    }
    # The run each task will make, prepared here once (validated, its trackers made, its plan drawn) so that
    # what would fail in every task fails now, in one line.
    request = RunRequest(
        protocol=protocol,
        overrides=tuple(overrides or ()),
        results=results,
        cache=cache,
        device="cpu",
        log=tuple(log or ()),
        **{k: tuple(v) if v is not None else None for k, v in filters.items()},
    )
    execution = prepare(request)
    runner, jobs = execution.runner, execution.jobs
    for flag, value in [("--workers", workers), ("--array-parallelism", array_parallelism)]:
        if value is not None and value < 1:
            raise PrunebenchError(f"{flag} must be at least 1 (got {value})")
    processes = processes_per_job if processes_per_job is not None else max(1, gpus_per_job)
    if processes < 1 or (gpus_per_job and processes != gpus_per_job):
        raise PrunebenchError("--processes-per-job must be at least 1, and one per GPU when the task has GPUs")
    if gpus_per_job < 0 or cpus_per_job < 1:
        raise PrunebenchError("--gpus-per-job must be at least 0 and --cpus-per-job at least 1")
    guard_references(runner.directory.path.parent, update=False)
    ensure_writable(runner.run_dir, "--results")
    launch = SlurmLaunch(
        protocol=protocol.resolve(),
        overrides=list(overrides or []),
        results=results.resolve(),
        cache=cache.resolve() if cache is not None else None,
        partition=partition,
        time_limit=time_limit,
        gpus_per_job=gpus_per_job,
        cpus_per_job=cpus_per_job,
        processes_per_job=processes,
        workers=workers or len(jobs),
        array_parallelism=array_parallelism,
        filters=filters,
        log=list(log or []),
    )
    job_id = launch_slurm(launch, runner.run_dir.resolve())
    out.print(
        f"submitted SLURM array {job_id}: {launch.workers} worker(s) for {len(jobs)} job(s); "
        f"`prunebench status {' '.join([str(protocol), *map(shlex.quote, overrides or [])])} --results {results}` "
        "shows where it stands",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
