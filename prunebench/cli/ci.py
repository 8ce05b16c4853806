"""`prunebench ci ...`: what the submission workflow asks of the project (prunebench.ci)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from prunebench.cli.app import app, out, say

ci_app = typer.Typer(no_args_is_help=True, help="Commands the CI workflows call.")
app.add_typer(ci_app, name="ci")


@ci_app.command("affected")
def affected(
    base_ref: Annotated[str, typer.Option("--base-ref", help="The git ref the change is compared with.")],
    protocol: Annotated[Path, typer.Option(help="The protocol whose methods are selected.")] = Path(
        "protocols/quickstart.yaml"
    ),
) -> None:
    """The labels of the protocol's methods that the change from --base-ref needs to re-run, comma-separated
    on stdout (and as `labels=` in $GITHUB_OUTPUT when that is set)."""
    from prunebench.ci import affected as select

    chosen = select(protocol, base_ref)
    say(f"methods to run: {', '.join(chosen.labels)} ({chosen.why})")
    out.print(",".join(chosen.labels), markup=False, highlight=False)
    github_output = os.environ.get("GITHUB_OUTPUT")
    if github_output:
        with open(github_output, "a", encoding="utf-8") as f:
            f.write(f"labels={','.join(chosen.labels)}\n")


@ci_app.command("references")
def references(
    base_ref: Annotated[str, typer.Option("--base-ref", help="The git ref the change is compared with.")],
    allowed: Annotated[
        bool, typer.Option("--allowed", help="A maintainer allows this change (the workflow's label says so).")
    ] = False,
) -> None:
    """Exit 1 when the change edits the committed references (results/) and no maintainer allowed it: a pull
    request may not move the numbers every submission is judged against."""
    from prunebench.ci import changed_references

    changed = changed_references(base_ref)
    if not changed:
        say(f"the committed references are unchanged since {base_ref}")
        return
    for path in changed:
        out.print(path, markup=False, highlight=False)
    if allowed:
        say(f"{len(changed)} reference file(s) changed, allowed by a maintainer")
        return
    say(
        f"{len(changed)} reference file(s) under results/ changed: only a maintainer may change the references "
        "(the `update-references` label)"
    )
    raise typer.Exit(1)
