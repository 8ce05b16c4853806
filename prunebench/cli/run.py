"""`prunebench run` and `prunebench validate`: a protocol's grid, and the protocol checked and resolved."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from prunebench.cli.app import app, out, say
from prunebench.cli.options import MethodsFilter, Overrides, SparsitiesFilter, VariantsFilter, shard, split
from prunebench.cli.progress import RunProgress
from prunebench.errors import Interrupted, PrunebenchError

if TYPE_CHECKING:
    from rich.table import Table

    from prunebench.run import Execution, RunRequest


@app.command()
def run(
    protocol: Annotated[Path, typer.Argument(help="Protocol YAML file.")],
    overrides: Overrides = None,
    results: Annotated[
        Path, typer.Option(help="Results directory (results/ holds the committed references: not written).")
    ] = Path("runs"),
    cache: Annotated[
        Path | None, typer.Option(help="Checkpoint cache (default $PRUNEBENCH_CACHE or ~/.cache/prunebench).")
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    methods: MethodsFilter = None,
    sparsities: SparsitiesFilter = None,
    seeds: Annotated[str | None, typer.Option(help="Only these seeds (comma-separated).")] = None,
    shard_of: Annotated[str | None, typer.Option("--shard", help="Run every n-th job: i/n, for array jobs.")] = None,
    variants: VariantsFilter = None,
    force: Annotated[bool, typer.Option("--force", help="Re-run jobs that already have results.")] = False,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Re-run jobs that failed.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan; train nothing.")] = False,
    save_models: Annotated[
        bool,
        typer.Option(
            "--save-models",
            help="Keep each job's final weights (models/, for `check --verify`) and the dense models (dense/).",
        ),
    ] = False,
    dense_from: Annotated[
        list[Path] | None,
        typer.Option(
            metavar="DIR",
            help="Take the dense base models from this folder when they are there (default: the references' "
            "results/*/dense/); repeatable.",
        ),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(help="torch CPU threads (default: the protocol's runtime.threads, else 1 on the CPU)."),
    ] = None,
    update_references: Annotated[
        bool, typer.Option("--update-references", help="Allow writing into the committed references' folder.")
    ] = False,
    keep_checkpoints: Annotated[
        bool,
        typer.Option(
            "--keep-checkpoints", help="Keep each stage's per-epoch checkpoints (cache progress/) after its job ends."
        ),
    ] = False,
    nproc: Annotated[
        int,
        typer.Option(
            help="Processes each job trains on with DistributedDataParallel (one per GPU): starts torchrun, as "
            "`torchrun --nproc-per-node N -m prunebench run ...` does."
        ),
    ] = 1,
    limit: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="A smoke run, for testing only: every stage trains N batches and every evaluation runs N. Its "
            "results go to a run directory of their own and are never ranked.",
        ),
    ] = None,
    log: Annotated[
        list[str] | None,
        typer.Option(
            "--log",
            help="Log every job to an experiment tracker: tensorboard, mlflow or wandb (repeatable; each an "
            "optional extra). Local stores go in the run directory.",
        ),
    ] = None,
    workers: Annotated[
        str,
        typer.Option(
            envvar="PRUNEBENCH_WORKERS",
            help="Workers on this machine sharing the grid: a number, or auto (one per visible GPU on CUDA; on the "
            "CPU one per core at --threads each, one for a protocol with an efficiency section). On the CPU the "
            "cores are split between them. Default: $PRUNEBENCH_WORKERS, else auto.",
        ),
    ] = "auto",
    in_process: Annotated[
        bool,
        typer.Option(
            "--in-process",
            help="Debug a method: run its code in this process (breakpoints work), one job at a time. Its results "
            "go to a run directory of their own, are marked, and are never ranked.",
        ),
    ] = False,
) -> None:
    """Run every method of a protocol: dense base models once per seed, then prune, retrain, evaluate."""
    from prunebench.forkserver import start

    # The job processes' fork server imports torch while this process does; confined by the operating system
    # where it allows, but for DDP ranks, which talk over the network (one line says when it is not).
    start(
        unconfined="--nproc: DDP ranks talk over the network" if nproc != 1 else "--in-process" if in_process else None
    )
    from prunebench.report.summary import run_summary
    from prunebench.run import RunRequest, prepare
    from prunebench.run.ranks import check_nproc, launched, leave_runners
    from prunebench.run.scheduling.workers import QUIET_MACHINE, WORKER_ENV, resolve_workers

    request = RunRequest(
        protocol=protocol,
        overrides=tuple(overrides or ()),
        results=results,
        cache=cache,
        device=device,
        methods=_tuple(split(methods)),
        sparsities=_tuple(split(sparsities, float)),
        seeds=_tuple(split(seeds, int)),
        shard=shard(shard_of),
        variants=_tuple(split(variants)),
        force=force,
        retry_failed=retry_failed,
        save_models=save_models,
        dense_from=tuple(dense_from) if dense_from is not None else None,
        threads=threads,
        update_references=update_references,
        keep_checkpoints=keep_checkpoints,
        limit=limit,
        in_process=in_process,
        log=tuple(log or ()),
    )
    execution = prepare(request)
    if dry_run:
        out.print(_plan_table(execution))
        return
    if nproc != 1 and not launched():  # checked here, its ranks started by torchrun, which runs this command again
        check_nproc(nproc, device)
        if workers not in ("auto", "1"):
            raise PrunebenchError("--nproc and --workers: each job on several processes, or several jobs at once")
        _say_unconfined()
        _run_ranks(execution, request, nproc)
    runner = execution.runner
    quiet = QUIET_MACHINE if runner.protocol.efficiency is not None else None
    count = resolve_workers(
        workers,
        "cuda" if runner.device.type == "cuda" else "cpu",
        threads=runner.threads,
        jobs=runner.pending_count(execution.jobs),  # a grid already done needs no worker beside this process
        quiet=quiet if not in_process else "--in-process",
    )
    if workers == "auto" and quiet is not None and count == 1 and not in_process and not launched():
        say(f"prunebench: one worker: {quiet}")
    if in_process and count > 1:
        raise PrunebenchError("--in-process runs the method's code in this process: one worker (--workers 1)")
    if not in_process and not launched():  # once a run: the workers' own lines go to their logs
        _say_unconfined()
    if count > 1:
        _run_workers(execution, request, count)
        return
    if runner.rank != 0:  # one rank of several: rank 0 shows the progress and writes
        execution.run()
        leave_runners()
        return
    progress = RunProgress(out, len(execution.jobs))

    def kept() -> str:
        finished = len(runner.completed)
        return (
            f"the {finished} job(s) this run finished are kept in {runner.run_dir}; the job in flight was not written"
        )

    with _interrupts_end_the_run(kept), progress.live():
        ran = execution.run(progress.events())
    leave_runners()
    if WORKER_ENV not in os.environ:  # a worker's launcher prints the summary once every worker has ended
        out.print(run_summary(runner.run_dir))
    out.print(progress.summary(ran, runner.run_dir), markup=False, highlight=False, soft_wrap=True)
    if any(r.status == "failed" for r in ran) and not launched():
        raise typer.Exit(1)


def _say_unconfined() -> None:
    from prunebench.forkserver import unconfined_line

    line = unconfined_line()
    if line is not None:
        say(line)


def _tuple(values: list[Any] | None) -> tuple[Any, ...] | None:
    return tuple(values) if values is not None else None


@contextmanager
def _interrupts_end_the_run(kept: str | Callable[[], str]) -> Iterator[None]:
    """Ctrl-C, SIGTERM or SIGUSR1: one line saying what is kept (`kept`, or what it returns then), and the
    signal's exit code."""
    from prunebench.run.scheduling.signals import terminations_interrupt

    try:
        with terminations_interrupt():
            yield
    except (KeyboardInterrupt, Interrupted) as exc:
        name, code = (exc.signal_name, exc.exit_code) if isinstance(exc, Interrupted) else ("SIGINT", 130)
        say(f"interrupted by {name}: {kept() if callable(kept) else kept}. Run the same command again to resume.")
        raise typer.Exit(code) from None


def _plan_table(execution: Execution) -> Table:
    """The plan of a `--dry-run`, from the run's files (nothing is trained or loaded)."""
    from prunebench.report.summary import PlanRow, plan_table

    runner = execution.runner
    rows = []
    for job in execution.jobs:
        status = runner.status_of(job)
        rows.append(
            PlanRow(
                method=job.method_key,
                variant=job.variant,
                sparsity=job.sparsity,
                seed=job.seed,
                status="re-run (--force)" if runner.force and status != "pending" else status,
                path=job.path(runner.run_dir),
            )
        )
    dense = {seed: runner.cache.has(seed) for seed in sorted({job.seed for job in execution.jobs})}
    return plan_table(runner.protocol, rows, runner.run_dir, dense)


def _run_ranks(execution: Execution, request: RunRequest, nproc: int) -> None:
    """`--nproc N`: the same run on N ranks, started by torchrun (each rank runs this command again)."""
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
    code = subprocess.run([*torchrun, "-m", "prunebench", *request.argv()]).returncode
    runner = execution.runner
    if code == 0 and any(runner.status_of(job) == "failed" for job in execution.jobs):
        code = 1  # the ranks leave failed jobs to the records (torchrun would take exit code 1 for a crash)
    raise typer.Exit(code)


def _run_workers(execution: Execution, request: RunRequest, count: int) -> None:
    """`--workers N`: N worker processes share the grid through their claims; this process shows how far they
    are and the summary once they are done."""
    from prunebench.report.summary import run_summary
    from prunebench.results import guard_references
    from prunebench.run.scheduling.workers import run_workers

    run_dir = execution.runner.run_dir
    guard_references(run_dir.parent, update=request.update_references)
    command = request.argv(threads=False)  # each worker gets its share of the cores
    with _interrupts_end_the_run(f"the workers stopped, every job they finished is kept in {run_dir}"):
        outcome = run_workers(
            command,
            execution.jobs,
            run_dir,
            count,
            device=request.device,
            threads=request.threads,
            say=say,
            key=execution.runner.key,
        )
    out.print(run_summary(run_dir))
    for line in outcome.problems():
        say(line)
    if outcome.problems():
        raise typer.Exit(1)


@app.command()
def validate(
    protocol: Annotated[Path, typer.Argument(help="Protocol YAML file.")],
    overrides: Overrides = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="Print only the hash.")] = False,
) -> None:
    """Check a protocol (schema, methods and their hyperparameters, data) and print it resolved."""
    from prunebench.forkserver import start

    start()  # methods are loaded in a job process, never here
    from prunebench.protocol import load_protocol, resolved_yaml
    from prunebench.run.sandbox import labelled
    from prunebench.run.scheduling.plan import sanity_table
    from prunebench.run.validation import validate as check

    proto = labelled(load_protocol(protocol, overrides or ()))
    described = check(proto)
    if quiet:
        out.print(proto.hash)
        return
    out.print(resolved_yaml(proto), markup=False, highlight=False, end="")
    table = sanity_table(proto, described) or {}
    for v in proto.variant_plan().variants:  # what each retraining variant expands to, and what it runs
        runs = ", ".join(m if v.runs_as[m] == v.name else f"{m} (= {v.runs_as[m] or 'protocol'})" for m in v.methods)
        if v.kind == "sanity":
            runs = ", ".join(m for m in v.methods if table[m][v.name] is None) or "nothing"
            runs += "".join(f"; not {m} ({table[m][v.name]})" for m in v.methods if table[m][v.name] is not None)
        out.print(
            f"# {'sanity ablation' if v.kind == 'sanity' else 'retraining variant'} {v.name}: {v.description}; "
            f"runs {runs}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    for item in proto.overrides:
        out.print(f"# overridden on the command line: {item}", markup=False, highlight=False, soft_wrap=True)
    out.print(f"# content hash: {proto.hash}", markup=False, highlight=False)
