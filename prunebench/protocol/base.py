"""The base of every protocol model: strict (an unknown key is an error, `"2"` or `true` is no integer, a float is
finite), frozen, defaults validated; and the bounds every protocol number is held to."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

Loc = tuple[str | int, ...]  # a field's path in the protocol, e.g. ("methods", 0, "config", "rounds")


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, strict=True, allow_inf_nan=False)


# Sane bounds: far beyond any real protocol, small enough that no number can make the tool hang or overflow.
MAX_EPOCHS = 10_000
MAX_BATCH = 1_000_000
MAX_EXAMPLES = 1_000_000_000
MAX_SEED = 2**31 - 1
MAX_ITEMS = 100  # entries of a list of sparsities, seeds, milestones, fractions
MAX_METHODS = 500
MAX_NAME = 200  # characters of a name; a path may be longer


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
