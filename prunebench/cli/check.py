"""`prunebench check`: the CI regression gate of submitted results against reference results, or (`--published`)
whether a run reproduces a paper's published figures."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from prunebench.cli.app import app, wide
from prunebench.cli.options import write_text
from prunebench.errors import PrunebenchError


@app.command()
def check(
    results: Annotated[list[Path], typer.Argument(help="The submitted results (files or directories).")],
    reference: Annotated[
        list[Path],
        typer.Option("--reference", "-r", help="Reference results (repeatable); default: the committed results/."),
    ] = [Path("results")],  # noqa: B006  (typer reads the default; it is never mutated)
    floor: Annotated[
        float,
        typer.Option(
            help="Smallest tolerated worsening of the ranked metric's mean: percentage points of test top-1 "
            "(perplexity points of a causal LM's perplexity)."
        ),
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
    allow_shared_engine: Annotated[
        list[str],
        typer.Option(
            "--allow-shared-engine",
            metavar="LABEL",
            help="A method label (repeatable) whose code may run in its engine's process (code inside the training "
            "step): the reference maintainer's label, given in the gate's own command (docs/submitting.md).",
        ),
    ] = [],  # noqa: B006  (typer reads the default; it is never mutated)
    published: Annotated[
        Path | None,
        typer.Option(
            "--published",
            metavar="FILE",
            help="Instead of the references: whether the results reproduce a paper's figures for their protocol "
            "(protocols/published/<protocol>.csv); --reference, --floor, --sigmas and --verify are not used.",
        ),
    ] = None,
    verify: Annotated[
        bool,
        typer.Option(
            "--verify",
            help="Also measure the submitted results' saved weights (run --save-models) again: a record whose "
            "weights are missing, altered or measure otherwise fails.",
        ),
    ] = False,
) -> None:
    """CI regression gate of submitted results against reference results (or, --published, against a paper's).

    Exit 0: within tolerance and fair; 1: a regression or a broken fairness rule; 2: unusable input. With
    --published: 0 every published row with results reproduced; 1 one or more not reproduced, not testable or
    unfair; 2 unusable input.

    The markdown summary is appended to $GITHUB_STEP_SUMMARY when that is set.
    """
    if published is not None:
        _check_published(results, published, markdown)
        return
    from prunebench.report.check import check_markdown, check_table, check_text, run_check

    report = run_check(
        results,
        reference,
        floor=floor / 100,
        sigmas=sigmas,
        require_reference=require_reference,
        allow_shared_engine=allow_shared_engine,
    )
    if verify:
        from prunebench.run.measurement.verify import verify as measure_again

        checked = measure_again(results)
        report.problems += [f"--verify: {p}" for p in checked.problems]
        report.notes.append(f"--verify: the saved weights of {checked.verified} result(s) measure as recorded")
    _show(check_table(report), check_text(report), "FAIL", check_markdown(report), markdown, report.exit_code)


def _check_published(results: list[Path], published: Path, markdown: Path | None) -> None:
    """`check --published`: the results against a paper's figures (prunebench.report.reproduction)."""
    from prunebench.report.reproduction import run_reproduction
    from prunebench.report.reproduction_render import reproduction_markdown, reproduction_table, reproduction_text

    rep = run_reproduction(results, published)
    _show(reproduction_table(rep), reproduction_text(rep), "NOT", reproduction_markdown(rep), markdown, rep.exit_code)


def _show(table: Any, lines: list[str], failing: str, text: str, markdown: Path | None, code: int) -> None:
    """The table and its lines (those starting with `failing` in red), the markdown summary, the exit code."""
    console = wide()  # CI logs are not terminals
    console.print(table)
    for line in lines:
        style = "bold red" if line.startswith(failing) else None
        console.print(line, markup=False, highlight=False, style=style, soft_wrap=True)
    _summarize(text, markdown)
    if code:
        raise typer.Exit(code)


def _summarize(text: str, markdown: Path | None) -> None:
    """Write the markdown summary to `markdown`, and append it to $GITHUB_STEP_SUMMARY when that is set."""
    if markdown is not None:
        write_text(markdown, text)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        try:
            with open(summary, "a", encoding="utf-8") as f:
                f.write(text + "\n")
        except OSError as exc:
            from prunebench.results import describe_os_error

            raise PrunebenchError(f"$GITHUB_STEP_SUMMARY {summary}: cannot write ({describe_os_error(exc)})") from None
