"""The base of every protocol model: strict (an unknown key is an error), frozen, defaults validated."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

Loc = tuple[str | int, ...]  # a field's path in the protocol, e.g. ("methods", 0, "config", "rounds")


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


def dotted(loc: Loc) -> str:
    """A field path as it is written: `methods[0].config.rounds`."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def nearest_mark(marks: dict[Loc, tuple[int, int]], loc: Loc) -> tuple[int | None, int | None]:
    """(line, column) of a field in its file, or of the nearest enclosing field that has one."""
    for n in range(len(loc), -1, -1):
        if tuple(loc[:n]) in marks:
            return marks[tuple(loc[:n])]
    return None, None
