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
