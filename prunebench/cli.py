"""The command line. Thin: every command's work lives in the modules it calls."""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from prunebench.errors import PrunebenchError
from prunebench.protocol import load_protocol, resolved_yaml

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Fair, reproducible benchmarks of neural-network pruning methods.",
    pretty_exceptions_enable=False,
)
# Piped output (CI logs, files) gets a wide console rather than rich's 80-column default.
out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True)


def _split(values: str | None, cast: type = str) -> list | None:
    if values is None:
        return None
    try:
        return [cast(v.strip()) for v in values.split(",") if v.strip()]
    except ValueError:
        raise PrunebenchError(f"cannot read {values!r} as a comma-separated list of {cast.__name__}") from None


def _shard(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    try:
        index, count = (int(x) for x in value.split("/"))
    except ValueError:
        raise PrunebenchError(f"--shard must look like 0/4 (got {value!r})") from None
    if not 0 <= index < count:
        raise PrunebenchError(f"--shard {value}: the index must be in 0..{count - 1}")
    return index, count


@app.command()
def run(
    protocol: Annotated[Path, typer.Argument(help="Protocol YAML file.")],
    results: Annotated[Path, typer.Option(help="Results directory.")] = Path("results"),
    cache: Annotated[
        Path | None, typer.Option(help="Checkpoint cache (default $PRUNEBENCH_CACHE or ~/.cache/prunebench).")
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    methods: Annotated[str | None, typer.Option(help="Only these methods (comma-separated labels).")] = None,
    sparsities: Annotated[str | None, typer.Option(help="Only these sparsities (comma-separated).")] = None,
    seeds: Annotated[str | None, typer.Option(help="Only these seeds (comma-separated).")] = None,
    shard: Annotated[str | None, typer.Option(help="Run every n-th job: i/n, for array jobs.")] = None,
    variants: Annotated[
        str | None,
        typer.Option(help="Only these retraining variants (comma-separated names; `protocol`: the protocol's recipe)."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Re-run jobs that already have results.")] = False,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Re-run jobs that failed.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan; train nothing.")] = False,
) -> None:
    """Run every method of a protocol: dense base models once per seed, then prune, retrain, evaluate."""
    from prunebench import report
    from prunebench.runner import Runner, RunnerEvents, plan

    proto = load_protocol(protocol)
    jobs = plan(
        proto,
        methods=_split(methods),
        sparsities=_split(sparsities, float),
        seeds=_split(seeds, int),
        shard=_shard(shard),
        variants=_split(variants),
    )
    runner = Runner(proto, results_dir=results, cache_dir=cache, device=device, force=force, retry_failed=retry_failed)
    runner.prepare()
    if dry_run:
        out.print(report.plan_table(runner, jobs))
        return

    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=out,
        transient=False,
    )
    grid = progress.add_task("grid", total=len(jobs))
    stage = progress.add_task("", total=1, visible=False)

    def job_started(job, i, n):  # type: ignore[no-untyped-def]
        progress.update(stage, description=f"  {job.id}", completed=0, total=proto.retrain.epochs, visible=True)

    def job_finished(job, record):  # type: ignore[no-untyped-def]
        progress.advance(grid)
        top1 = f"{record.metrics.test_top1:.4f}" if record.metrics else "-"
        note = "" if record.status == "ok" else f" [{record.status}: {'; '.join(record.reasons)}]"
        progress.console.print(f"{job.id}: test top-1 {top1}{note}", markup=False, highlight=False)

    def base_started(seed, epochs):  # type: ignore[no-untyped-def]
        progress.update(stage, description=f"  dense base model, seed {seed}", completed=0, total=epochs, visible=True)

    def epoch(stage_name, epoch_no, total, record):  # type: ignore[no-untyped-def]
        progress.update(stage, completed=epoch_no, total=max(total, epoch_no))

    def skipped(job, why):  # type: ignore[no-untyped-def]
        progress.advance(grid)

    runner.events = RunnerEvents(
        job_started=job_started, job_finished=job_finished, base_started=base_started, epoch=epoch, skipped=skipped
    )
    start = time.perf_counter()
    with progress:
        ran = runner.run(jobs)
    progress.update(stage, visible=False)
    out.print(report.run_summary(runner.run_dir))
    failed = sum(r.status == "failed" for r in ran)
    out.print(
        f"{len(ran)} job(s) run, {len(jobs) - len(ran)} already done, in {time.perf_counter() - start:.1f} s; "
        f"results in {runner.run_dir}" + (f"; {failed} job(s) FAILED (reasons above)" if failed else "")
    )
    if failed:
        raise typer.Exit(1)


@app.command()
def validate(
    protocol: Annotated[Path, typer.Argument(help="Protocol YAML file.")],
    quiet: Annotated[bool, typer.Option("--quiet", help="Print only the hash.")] = False,
) -> None:
    """Check a protocol (schema, methods and their hyperparameters, data) and print it resolved."""
    from prunebench.runner import Runner

    proto = load_protocol(protocol)
    Runner(proto, results_dir=Path("results"), device="cpu").prepare()
    if not quiet:
        out.print(resolved_yaml(proto), markup=False, highlight=False, end="")
        for v in proto.variant_plan().variants:  # what each retraining variant expands to, and what it runs
            runs = ", ".join(
                m if v.runs_as[m] == v.name else f"{m} (= {v.runs_as[m] or 'protocol'})" for m in v.methods
            )
            out.print(
                f"# retraining variant {v.name}: {v.description}; runs {runs}",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
        out.print(f"# content hash: {proto.hash}", markup=False, highlight=False)
    else:
        out.print(proto.hash)


@app.command("methods")
def list_methods(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Describe every hyperparameter.")] = False,
) -> None:
    """List the registered methods with their taxonomy and hyperparameters."""
    from prunebench.methods import config_table, registered_methods

    table = Table(title="Registered methods", show_lines=verbose)
    for col in ("name", "when", "granularity", "scope", "schedule", "retraining", "hyperparameters", "citation"):
        table.add_column(col)
    for name, loaded in sorted(registered_methods().items()):
        cls = loaded.cls
        t = cls.taxonomy
        rows = config_table(cls)
        hyper = "\n".join(f"{n}={d}" + (f": {desc}" if verbose and desc else "") for n, d, desc in rows) or "-"
        table.add_row(name, t.when, t.granularity, t.scope, t.schedule, t.retraining, hyper, cls.citation)
    out.print(table)


# ---- leaderboards, figures and the regression gate: the work lives in leaderboard, plots, check ----
from typing import TYPE_CHECKING  # noqa: E402

if TYPE_CHECKING:  # imported when used, so that other commands start without scipy and matplotlib
    from prunebench import leaderboard


def _compare_inputs(
    results: list[Path], protocol: str | None, methods: str | None, sparsities: str | None, mix_protocols: bool
) -> leaderboard.Comparison:
    from prunebench.errors import ResultsError
    from prunebench.leaderboard import compare as build
    from prunebench.leaderboard import load_records

    loaded = load_records(results)
    if not loaded:
        raise ResultsError(f"no valid result records in {', '.join(map(str, results))}")
    comparison = build(
        loaded,
        mix_protocols=mix_protocols,
        protocols=_split(protocol),
        methods=_split(methods),
        sparsities=_split(sparsities, float),
    )
    if not comparison.boards:
        raise ResultsError("no results match --protocol/--methods/--sparsities")
    for notice in comparison.notices:
        warnings.warn(notice, stacklevel=1)
    return comparison


def _own_recipe(comparison: leaderboard.Comparison) -> leaderboard.Comparison:
    """The boards of the protocols' own retraining recipes: figures leave retraining variants out."""
    from dataclasses import replace

    return replace(comparison, boards=[b for b in comparison.boards if b.variant is None])


@app.command()
def compare(
    results: Annotated[list[Path], typer.Argument(help="Result files or directories (searched recursively).")],
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            "-f",
            help="rich, markdown, csv, json, latex or html (default: from --output's suffix, else rich).",
        ),
    ] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")] = None,
    plot: Annotated[
        Path | None, typer.Option(help="Also draw accuracy against sparsity into this .png, .pdf or .svg file.")
    ] = None,
    mix_protocols: Annotated[
        bool,
        typer.Option(
            "--mix-protocols", help="Rank results of one protocol name but different setups together (marked)."
        ),
    ] = False,
    protocol: Annotated[str | None, typer.Option(help="Only these protocols (comma-separated names).")] = None,
    methods: Annotated[str | None, typer.Option(help="Only these methods (comma-separated labels).")] = None,
    sparsities: Annotated[str | None, typer.Option(help="Only these target sparsities (comma-separated).")] = None,
) -> None:
    """Leaderboards per protocol and sparsity, with statistics over seeds and a fairness audit.

    Test top-1 mean ± std and 95% CI over seeds, paired difference to the dense model, ties, costs and budget.

    Results with fairness problems are listed apart with the reason, never ranked.
    """
    from prunebench import leaderboard

    comparison = _compare_inputs(results, protocol, methods, sparsities, mix_protocols)
    kind = leaderboard.format_for(fmt, output)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(leaderboard.render(comparison, kind), encoding="utf-8")
        err.print(f"wrote {output} ({kind})", markup=False, highlight=False, soft_wrap=True)
    elif kind == "rich":
        # Piped output has no terminal width to fit; 80 columns would fold the table beyond reading.
        console = out if out.is_terminal else Console(width=max(out.width, 200))
        for table in leaderboard.rich_tables(comparison):
            console.print(table)
    else:
        sys.stdout.write(leaderboard.render(comparison, kind))
    if plot is not None:
        from prunebench import plots  # matplotlib takes a while to import: only when asked for

        plots.plot_accuracy(_own_recipe(comparison), plot)
        err.print(f"wrote {plot}", markup=False, highlight=False, soft_wrap=True)


@app.command()
def check(
    results: Annotated[list[Path], typer.Argument(help="The submitted results (files or directories).")],
    reference: Annotated[
        list[Path],
        typer.Option("--reference", "-r", help="Reference results (repeatable), e.g. the committed results/."),
    ],
    floor: Annotated[
        float, typer.Option(help="Smallest tolerated drop of mean test top-1, in percentage points.")
    ] = 100 * 0.005,
    sigmas: Annotated[
        float, typer.Option(help="Tolerance in standard errors of the difference (from the reference's seed spread).")
    ] = 2.0,
    markdown: Annotated[
        Path | None, typer.Option(help="Also write the markdown summary (for a pull-request comment) here.")
    ] = None,
    require_reference: Annotated[
        bool, typer.Option("--require-reference", help="Fail for results the reference has nothing to compare with.")
    ] = False,
) -> None:
    """CI regression gate of submitted results against reference results.

    Exit 0: within tolerance and fair; 1: a regression or a broken fairness rule; 2: unusable input.

    The markdown summary is appended to $GITHUB_STEP_SUMMARY when that is set.
    """
    import os

    from prunebench.check import check_markdown, check_table, check_text, run_check

    report = run_check(results, reference, floor=floor / 100, sigmas=sigmas, require_reference=require_reference)
    console = out if out.is_terminal else Console(width=max(out.width, 200))  # CI logs are not terminals
    console.print(check_table(report))
    for line in check_text(report):
        style = "bold red" if line.startswith("FAIL") else None
        console.print(line, markup=False, highlight=False, style=style, soft_wrap=True)
    text = check_markdown(report)
    if markdown is not None:
        markdown.parent.mkdir(parents=True, exist_ok=True)
        markdown.write_text(text, encoding="utf-8")
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as f:
            f.write(text + "\n")
    if report.exit_code:
        raise typer.Exit(report.exit_code)


plot_app = typer.Typer(no_args_is_help=True, help="Figures from result records (.png, .pdf or .svg).")
app.add_typer(plot_app, name="plot")


@plot_app.command("accuracy")
def plot_accuracy(
    results: Annotated[list[Path], typer.Argument(help="Result files or directories.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Figure file: .png, .pdf or .svg.")],
    mix_protocols: Annotated[bool, typer.Option("--mix-protocols", help="As in `compare`.")] = False,
    protocol: Annotated[str | None, typer.Option(help="Only these protocols (comma-separated names).")] = None,
    methods: Annotated[str | None, typer.Option(help="Only these methods (comma-separated labels).")] = None,
    sparsities: Annotated[str | None, typer.Option(help="Only these target sparsities (comma-separated).")] = None,
) -> None:
    """Test top-1 against weights remaining (log axis) per method; the figure of `compare --plot`.

    Error bars are ± one standard deviation over seeds; the dense model is a line with its band.
    """
    from prunebench import plots

    plots.plot_accuracy(_own_recipe(_compare_inputs(results, protocol, methods, sparsities, mix_protocols)), output)
    err.print(f"wrote {output}", markup=False, highlight=False, soft_wrap=True)


@plot_app.command("curves")
def plot_curves(
    results: Annotated[list[Path], typer.Argument(help="Result files or directories.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Figure file: .png, .pdf or .svg.")],
    metrics: Annotated[
        str,
        typer.Option(help="Comma-separated: val_top1, train_loss, train_top1, val_loss, test_top1, lr, sparsity."),
    ] = "val_top1,train_loss,lr",
    stages: Annotated[str, typer.Option(help="Stages to draw, in order (comma-separated).")] = "pruning,retrain",
    variant: Annotated[
        str, typer.Option(help="The retraining variant whose curves to draw (`protocol`: the protocol's recipe).")
    ] = "protocol",
    protocol: Annotated[str | None, typer.Option(help="Only these protocols (comma-separated names).")] = None,
    methods: Annotated[str | None, typer.Option(help="Only these methods (comma-separated labels).")] = None,
    sparsities: Annotated[str | None, typer.Option(help="Only these target sparsities (comma-separated).")] = None,
) -> None:
    """Per-epoch curves of the result records: a panel per metric, a line per method and sparsity.

    Lines are means over seeds, bands run from the minimum to the maximum.
    """
    from prunebench import plots
    from prunebench.errors import ResultsError
    from prunebench.leaderboard import load_records

    loaded = load_records(results, curves=True)
    if not loaded:
        raise ResultsError(f"no valid result records in {', '.join(map(str, results))}")
    # One retraining recipe per figure: a variant's curves are never averaged with the protocol's own.
    loaded = [x for x in loaded if (x.record.variant.name if x.record.variant else "protocol") == variant]
    if not loaded:
        raise ResultsError(f"no result records of retraining variant {variant!r}")
    plots.plot_curves(
        loaded,
        output,
        metrics=_split(metrics) or [],
        stages=_split(stages) or [],
        protocols=_split(protocol),
        methods=_split(methods),
        sparsities=_split(sparsities, float),
    )
    err.print(f"wrote {output}", markup=False, highlight=False, soft_wrap=True)


def _load_with_curves(results: list[Path]) -> list:  # list[leaderboard.Loaded]
    from prunebench.errors import ResultsError
    from prunebench.leaderboard import load_records

    loaded = load_records(results, curves=True)
    if not loaded:
        raise ResultsError(f"no valid result records in {', '.join(map(str, results))}")
    return loaded


@plot_app.command("shedding")
def plot_shedding(
    results: Annotated[list[Path], typer.Argument(help="Result files or directories.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Figure file: .png, .pdf or .svg.")],
    metrics: Annotated[
        str, typer.Option(help="Comma-separated: shed_fraction, effective_sparsity.")
    ] = "shed_fraction,effective_sparsity",
    variants: Annotated[
        str | None,
        typer.Option(help="Only these retraining variants (comma-separated; `protocol`: the protocol's recipe)."),
    ] = None,
    protocol: Annotated[str | None, typer.Option(help="Only these protocols (comma-separated names).")] = None,
    methods: Annotated[str | None, typer.Option(help="Only these methods (comma-separated labels).")] = None,
    sparsities: Annotated[str | None, typer.Option(help="Only these target sparsities (comma-separated).")] = None,
) -> None:
    """Cascade weight shedding per retraining epoch (needs `analyses: shedding`).

    A panel per metric and target sparsity, a line per method and retraining variant (mean over seeds,
    band: min to max); epoch 0 is the pruned model before retraining.
    """
    from prunebench import plots

    plots.plot_shedding(
        _load_with_curves(results),
        output,
        metrics=_split(metrics) or [],
        protocols=_split(protocol),
        methods=_split(methods),
        sparsities=_split(sparsities, float),
        variants=_split(variants),
    )
    err.print(f"wrote {output}", markup=False, highlight=False, soft_wrap=True)


@plot_app.command("correlation")
def plot_correlation(
    results: Annotated[list[Path], typer.Argument(help="Result files or directories.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Figure file: .png, .pdf or .svg.")],
    variants: Annotated[
        str | None,
        typer.Option(help="Only these retraining variants (comma-separated; `protocol`: the protocol's recipe)."),
    ] = None,
    protocol: Annotated[str | None, typer.Option(help="Only these protocols (comma-separated names).")] = None,
    methods: Annotated[str | None, typer.Option(help="Only these methods (comma-separated labels).")] = None,
    sparsities: Annotated[str | None, typer.Option(help="Only these target sparsities (comma-separated).")] = None,
) -> None:
    """Bars of the weight correlation R_p of the final weights per p, against init, rewind and base.

    Needs `analyses: correlation`. A bar per method (per protocol and method when several protocols are
    given), mean ± std over seeds; the chance level R_p = p is dashed.
    """
    from prunebench import plots

    plots.plot_correlation(
        _load_with_curves(results),
        output,
        protocols=_split(protocol),
        methods=_split(methods),
        sparsities=_split(sparsities, float),
        variants=_split(variants),
    )
    err.print(f"wrote {output}", markup=False, highlight=False, soft_wrap=True)


@plot_app.command("lr-sweep")
def plot_lr_sweep(
    results: Annotated[list[Path], typer.Argument(help="Result files or directories.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Figure file: .png, .pdf or .svg.")],
    metric: Annotated[str, typer.Option(help="test_top1, val_top1 or trainability.")] = "test_top1",
    protocol: Annotated[str | None, typer.Option(help="Only these protocols (comma-separated names).")] = None,
    methods: Annotated[str | None, typer.Option(help="Only these methods (comma-separated labels).")] = None,
    sparsities: Annotated[str | None, typer.Option(help="Only these target sparsities (comma-separated).")] = None,
) -> None:
    """Final accuracy against the peak retraining LR (log axis), a panel per target sparsity.

    A line per method, and one per retraining-epoch extension (dashed) and named schedule of the
    protocol's `variants:`; mean ± std over seeds. Swap variants are left out.
    """
    from prunebench import plots
    from prunebench.leaderboard import load_records

    loaded = load_records(results)
    if not loaded:
        from prunebench.errors import ResultsError

        raise ResultsError(f"no valid result records in {', '.join(map(str, results))}")
    plots.plot_lr_sweep(
        loaded,
        output,
        metric=metric,
        protocols=_split(protocol),
        methods=_split(methods),
        sparsities=_split(sparsities, float),
    )
    err.print(f"wrote {output}", markup=False, highlight=False, soft_wrap=True)


@app.command()
def swap(
    results: Annotated[list[Path], typer.Argument(help="Result files or directories (searched recursively).")],
    fmt: Annotated[
        str | None, typer.Option("--format", "-f", help="rich, markdown or json (default: from --output's suffix).")
    ] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")] = None,
    protocol: Annotated[str | None, typer.Option(help="Only these protocols (comma-separated names).")] = None,
    sparsities: Annotated[str | None, typer.Option(help="Only these target sparsities (comma-separated).")] = None,
) -> None:
    """The swap test (Wang et al. 2023): A+FT_A, A+FT_B, B+FT_A, B+FT_B of each pair a protocol declares.

    Per recipe, which method wins (paired 95% t-interval of A - B over seeds), and whether the ranking flips.
    """
    from prunebench.errors import ResultsError
    from prunebench.leaderboard import load_records
    from prunebench.variant_report import swap_render, swap_report

    loaded = load_records(results)
    if not loaded:
        raise ResultsError(f"no valid result records in {', '.join(map(str, results))}")
    report = swap_report(loaded, protocols=_split(protocol), sparsities=_split(sparsities, float))
    if not report.results:
        raise ResultsError(
            "no swap test among these results: the protocol needs a `variants: swap:` section, and its run "
            "directory's protocol.json must be among the inputs"
            + (f" ({'; '.join(report.notices)})" if report.notices else "")
        )
    suffixes = {".md": "markdown", ".markdown": "markdown", ".json": "json"}
    kind = fmt or (suffixes.get(output.suffix.lower(), "rich") if output is not None else "rich")
    if kind not in ("rich", "markdown", "json"):
        raise PrunebenchError(f"--format must be rich, markdown or json (got {kind!r})")
    text = swap_render(report, kind)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
        err.print(f"wrote {output} ({kind})", markup=False, highlight=False, soft_wrap=True)
    else:
        sys.stdout.write(text)


def _show_warning(message, category, filename, lineno, file=None, line=None):  # type: ignore[no-untyped-def]
    err.print(f"warning: {message}", markup=False, highlight=False, style="yellow", soft_wrap=True)


def main() -> None:
    """Entry point: user errors become one line on stderr and exit code 2, never a traceback."""
    warnings.showwarning = _show_warning
    try:
        code = app(standalone_mode=False)
    except PrunebenchError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("aborted")
        sys.exit(130)
    except Exception as exc:
        # Typer vendors its own copy of click's exception classes in recent releases, so usage
        # errors (a missing argument, an unknown option) and Ctrl-C are recognised by shape.
        if type(exc).__name__ == "Abort":
            err.print("aborted")
            sys.exit(130)
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):
            exc.show()
            sys.exit(2)
        raise
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
