"""`prunebench schema`: the protocol's JSON Schema, for editors."""

from __future__ import annotations

from typing import Annotated

import typer

from prunebench.cli.app import app, say
from prunebench.cli.options import OutputFile, write_text


@app.command()
def schema(
    output: OutputFile = None,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 1 when --output is not this schema (a stale copy).")
    ] = False,
) -> None:
    """The protocol's JSON Schema, from the pydantic models: every field's description, default and choices.

    Protocols whose first line is `# yaml-language-server: $schema=protocol.schema.json` are completed and
    checked in editors with the YAML language server (VS Code, Neovim, JetBrains).
    """
    from prunebench.errors import PrunebenchError
    from prunebench.protocol.schema import schema_text

    text = schema_text()
    if check:
        if output is None:
            raise PrunebenchError("--check needs --output, the copy to compare")
        current = output.read_text(encoding="utf-8") if output.is_file() else None
        if current != text:
            say(f"{output} is not the schema of this version: run `prunebench schema -o {output}`")
            raise typer.Exit(1)
        say(f"{output} is up to date")
        return
    if output is None:
        typer.echo(text, nl=False)
        return
    write_text(output, text)
    say(f"wrote {output}")
