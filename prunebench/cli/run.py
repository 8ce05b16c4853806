"""`prunebench run` and `prunebench validate`: a protocol's grid, and the protocol checked and resolved."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from prunebench.cli.app import app, out, say
from prunebench.cli.options import MethodsFilter, Overrides, SparsitiesFilter, VariantsFilter, shard, split
from prunebench.cli.progress import RunProgress
from prunebench.errors import Interrupted, PrunebenchError
from prunebench.protocol import load_protocol, resolved_yaml
from prunebench.run.signals import terminations_interrupt

if TYPE_CHECKING:
    from prunebench.run import Job, Runner


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
            help="Workers on this machine sharing the grid: a number, or auto (one per visible GPU on CUDA, else "
            "one). On the CPU the cores are split between them."
        ),
    ] = "auto",
) -> None:
    """Run every method of a protocol: dense base models once per seed, then prune, retrain, evaluate."""
    # The same run, as each worker process or each rank runs it.
    command = ["run", str(protocol), *(overrides or []), "--results", str(results), "--device", device]
    command += ["--workers", "1"]
    for flag, value in [
        ("--cache", cache),
        ("--methods", methods),
        ("--sparsities", sparsities),
        ("--seeds", seeds),
        ("--shard", shard_of),
        ("--variants", variants),
        ("--limit", limit),
    ]:
        command += [flag, str(value)] if value is not None else []
    for path in dense_from or []:
        command += ["--dense-from", str(path)]
    for name in log or []:
        command += ["--log", name]
    for flag, on in [
        ("--force", force),
        ("--retry-failed", retry_failed),
        ("--save-models", save_models),
        ("--update-references", update_references),
        ("--keep-checkpoints", keep_checkpoints),
        ("--dry-run", dry_run),
    ]:
        command += [flag] if on else []
    from prunebench.forkserver import start

    start()  # the job processes' fork server imports torch while this process does
    from prunebench.report.summary import plan_table, run_summary
    from prunebench.run import Runner, plan

    runner = Runner(
        load_protocol(protocol, overrides or ()),
        results_dir=results,
        cache_dir=cache,
        device=device,
        force=force,
        retry_failed=retry_failed,
        save_models=save_models,
        dense_from=dense_from,
        threads=threads,
        update_references=update_references,
        keep_checkpoints=keep_checkpoints,
        limit=limit,
    )
    runner.validate()
    proto = runner.protocol  # methods given by path carry their registered name as label from here on
    if log:  # a tracker that is not installed is an error before any work
        from prunebench.trackers import make_trackers

        runner.trackers = make_trackers(log, runner.run_dir, proto.name, proto.hash)
    jobs = plan(
        proto,
        methods=split(methods),
        sparsities=split(sparsities, float),
        seeds=split(seeds, int),
        shard=shard(shard_of),
        variants=split(variants),
    )
    if dry_run:
        out.print(plan_table(runner, jobs))
        return
    from prunebench.run.ranks import check_nproc, launched, leave_runners

    if nproc != 1 and not launched():  # checked here, its ranks started by torchrun, which runs this command again
        check_nproc(nproc, device)
        if workers not in ("auto", "1"):
            raise PrunebenchError("--nproc and --workers: each job on several processes, or several jobs at once")
        torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
        extra = ["--threads", str(threads)] if threads is not None else []
        code = subprocess.run([*torchrun, "-m", "prunebench", *command, *extra]).returncode
        if code == 0 and any(runner.status_of(job) == "failed" for job in jobs):
            code = 1  # the ranks leave failed jobs to the records (torchrun would take exit code 1 for a crash)
        raise typer.Exit(code)

    if not jobs:
        raise PrunebenchError(
            "no job to run: the filters select nothing of the protocol's grid"
            + (f" (--shard {shard_of} takes every n-th of the jobs the other filters leave)" if shard_of else "")
        )
    from prunebench.run.workers import resolve_workers

    count = resolve_workers(workers, device)
    if count > 1:
        _run_workers(runner, jobs, command, count, device, threads)
        return
    if runner.rank != 0:  # one rank of several: rank 0 shows the progress and writes
        runner.run(jobs)
        leave_runners()
        return
    progress = RunProgress(out, len(jobs))
    runner.events = progress.events()
    try:
        with progress.live(), terminations_interrupt():
            ran = runner.run(jobs)
    except (KeyboardInterrupt, Interrupted) as exc:
        name, code = (exc.signal_name, exc.exit_code) if isinstance(exc, Interrupted) else ("SIGINT", 130)
        say(
            f"interrupted by {name}: the {len(runner.completed)} job(s) this run finished are kept in "
            f"{runner.run_dir}; the job in flight was not written. Run the same command again to resume."
        )
        raise typer.Exit(code) from None
    leave_runners()
    out.print(run_summary(runner.run_dir))
    out.print(progress.summary(ran, runner.run_dir), markup=False, highlight=False, soft_wrap=True)
    if any(r.status == "failed" for r in ran) and not launched():
        raise typer.Exit(1)


def _run_workers(
    runner: Runner, jobs: list[Job], command: list[str], count: int, device: str, threads: int | None
) -> None:
    """`--workers N`: N worker processes share the grid through their claims; this process shows how far they
    are and the summary once they are done."""
    from prunebench.report.summary import run_summary
    from prunebench.results import guard_references
    from prunebench.run.workers import start_workers, wait

    guard_references(runner.directory.path.parent, update=runner.update_references)
    logs = runner.run_dir / "workers"
    workers = start_workers(command, count, logs=logs, device=device, threads=threads)
    say(f"{count} workers on {len(jobs)} job(s); their output is in {logs}/")
    seen = -1

    def show() -> None:  # every few seconds
        nonlocal seen
        done = sum(job.path(runner.run_dir).exists() for job in jobs)  # not read: the workers need the cores
        if done != seen:
            seen = done
            say(f"{done}/{len(jobs)} job(s) done")

    try:
        with terminations_interrupt():
            codes = wait(workers, show, poll_s=2.0)
    except (KeyboardInterrupt, Interrupted) as exc:
        name, code = (exc.signal_name, exc.exit_code) if isinstance(exc, Interrupted) else ("SIGINT", 130)
        say(
            f"interrupted by {name}: the workers stopped, every job they finished is kept in {runner.run_dir}. "
            "Run the same command again to resume."
        )
        raise typer.Exit(code) from None
    out.print(run_summary(runner.run_dir))
    failed = [job.id for job in jobs if runner.status_of(job) == "failed"]
    pending = [job.id for job in jobs if runner.status_of(job) == "pending"]
    bad = [f"worker {w.index} exited with code {c} (see {w.log})" for w, c in zip(workers, codes, strict=True) if c]
    for line in bad + [f"{len(failed)} job(s) failed: {', '.join(failed[:5])}"] * bool(failed):
        say(line)
    if pending:
        say(f"{len(pending)} job(s) not run: {', '.join(pending[:5])}; run the same command again to resume")
    if failed or pending or bad:
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
    from prunebench.run import Runner

    runner = Runner(load_protocol(protocol, overrides or ()), results_dir=Path("results"), device="cpu")
    runner.validate()
    proto = runner.protocol
    if quiet:
        out.print(proto.hash)
        return
    out.print(resolved_yaml(proto), markup=False, highlight=False, end="")
    for v in proto.variant_plan().variants:  # what each retraining variant expands to, and what it runs
        runs = ", ".join(m if v.runs_as[m] == v.name else f"{m} (= {v.runs_as[m] or 'protocol'})" for m in v.methods)
        out.print(
            f"# retraining variant {v.name}: {v.description}; runs {runs}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    for item in proto.overrides:
        out.print(f"# overridden on the command line: {item}", markup=False, highlight=False, soft_wrap=True)
    out.print(f"# content hash: {proto.hash}", markup=False, highlight=False)
