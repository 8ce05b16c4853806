"""`prunebench compare` and `prunebench swap`: leaderboards, and the swap test, from result records."""

from __future__ import annotations

import sys
import warnings
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from prunebench.cli.app import app, out, say, wide
from prunebench.cli.options import (
    MethodsFilter,
    MixProtocols,
    OutputFile,
    ProtocolFilter,
    ResultPaths,
    ShowEvaluations,
    SparsitiesFilter,
    split,
    write_text,
)
from prunebench.errors import ResultsError, printable

if TYPE_CHECKING:
    from prunebench.report import Comparison


def comparison_of(
    results: list[Path],
    protocol: str | None,
    methods: str | None,
    sparsities: str | None,
    mix_protocols: bool,
    against: str | None = None,
    show: str | None = None,
) -> Comparison:
    """The leaderboards of the records under `results`, filtered, with the optional evaluations `show` names; an
    error when nothing is left."""
    from prunebench.report import compare
    from prunebench.results import load_or_fail

    comparison = compare(
        load_or_fail(results),
        mix_protocols=mix_protocols,
        protocols=split(protocol),
        methods=split(methods),
        sparsities=split(sparsities, float),
        against=against,
        show=split(show) or (),
    )
    if not comparison.boards:
        raise ResultsError("no results match --protocol/--methods/--sparsities")
    for notice in comparison.notices:
        warnings.warn(notice, stacklevel=1)
    return comparison


def own_recipe(comparison: Comparison) -> Comparison:
    """The boards of the protocols' own retraining recipes: figures leave retraining variants out."""
    return replace(comparison, boards=[b for b in comparison.boards if b.variant is None])


@app.command()
def compare(
    results: ResultPaths,
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            "-f",
            help="rich, markdown, csv, json, latex or html (default: from --output's suffix, else rich).",
        ),
    ] = None,
    output: OutputFile = None,
    plot: Annotated[
        Path | None,
        typer.Option(help="Also draw accuracy against sparsity into this .png, .pdf or .svg file.", metavar="FILE"),
    ] = None,
    table: Annotated[
        str,
        typer.Option(
            help="board: the full leaderboard; pivot: the paper's method x sparsity table (mean ± std, the best of "
            "each column bold, = for the methods tied with it). LaTeX is always the pivot.",
        ),
    ] = "board",
    mix_protocols: MixProtocols = False,
    protocol: ProtocolFilter = None,
    methods: MethodsFilter = None,
    sparsities: SparsitiesFilter = None,
    against: Annotated[
        str | None,
        typer.Option(
            metavar="VARIANT",
            help="Compare every retraining variant's board with this variant's (paired by seed) instead of with "
            "the protocol's own recipe.",
        ),
    ] = None,
    show: ShowEvaluations = None,
) -> None:
    """Leaderboards per protocol and sparsity, with statistics over seeds and a fairness audit.

    Test top-1 (a causal LM's perplexity) mean ± std and 95% CI over seeds, paired difference to the dense model,
    ties, costs and budget.

    Results with fairness problems are listed apart with the reason, never ranked.
    """
    from prunebench.report import format_for, render, rich_tables
    from prunebench.report.render import check_figure_path

    kind = format_for(fmt, output)  # a bad --output or --plot fails before anything is read or written
    if plot is not None:
        check_figure_path(plot)
    if show and kind == "latex":
        raise ResultsError("--show: LaTeX is the paper's pivot table alone; show the evaluations in another format")
    comparison = comparison_of(results, protocol, methods, sparsities, mix_protocols, against, show)
    if output is not None:
        write_text(output, render(comparison, kind, table))
        say(f"wrote {output} ({kind})")
    elif kind == "rich":
        from prunebench.report.pivot import pivot, pivot_table

        console = out if out.is_terminal else wide()  # a log has no width: the tables' own, up to 200 columns
        if table == "pivot":
            from prunebench.report.render.terminal import evaluations_table

            for board in comparison.boards:
                console.print(pivot_table(pivot(board)))
                if board.evaluations:
                    console.print(evaluations_table(board))
        else:
            for t in rich_tables(comparison):
                console.print(t)
    else:  # markdown, LaTeX, HTML or CSV on the terminal: the files' strings made printable there too
        sys.stdout.write(printable(render(comparison, kind, table)))
    if plot is not None:
        from prunebench.report import plots  # matplotlib takes a while to import: only when asked for

        plots.plot_accuracy(own_recipe(comparison), plot)
        say(f"wrote {plot}")


@app.command()
def swap(
    results: ResultPaths,
    fmt: Annotated[
        str | None, typer.Option("--format", "-f", help="rich, markdown or json (default: from --output's suffix).")
    ] = None,
    output: OutputFile = None,
    protocol: ProtocolFilter = None,
    sparsities: SparsitiesFilter = None,
) -> None:
    """The swap test (Wang et al. 2023): A+FT_A, A+FT_B, B+FT_A, B+FT_B of each pair a protocol declares.

    Per recipe, which method wins (paired 95% t-interval of A - B over seeds), and whether the ranking flips.
    """
    from prunebench.report import SWAP_FORMATS, format_for, swap_render, swap_report
    from prunebench.results import load_or_fail

    kind = format_for(fmt, output, SWAP_FORMATS)  # a bad --output fails before anything is read or written
    report = swap_report(load_or_fail(results), protocols=split(protocol), sparsities=split(sparsities, float))
    if not report.results:
        raise ResultsError(
            "no swap test among these results: the protocol needs a `variants: swap:` section, and its run "
            "directory's protocol.json must be among the inputs"
            + (f" ({'; '.join(report.notices)})" if report.notices else "")
        )
    text = swap_render(report, kind)
    if output is not None:
        write_text(output, text)
        say(f"wrote {output} ({kind})")
    else:
        sys.stdout.write(printable(text))
