"""A method's notes as the runner keeps them: within a bound of JSON, whatever the method's process sent.

The notes are informational (never a measurement), but they go into the record: a method that notes 15 MB
would otherwise make a 15 MB record. The first notes that fit within `NOTES_LIMIT` bytes of compact JSON are
kept as they are; a note that does not fit has its value replaced by a marker saying how large it was (or is
dropped, when not even the marker fits), and `MethodRecord.notes_cut` says what was cut.
"""

from __future__ import annotations

import json
from typing import Any

from prunebench.errors import one_line

NOTES_LIMIT = 64 * 1024  # bytes of the notes as compact JSON
MAX_KEY_FOR_MARKER = 200  # a longer key is dropped with its value, not kept with a marker
NAMED = 5  # cut notes named in notes_cut; the rest counted


def cap_notes(notes: dict[str, Any], limit: int = NOTES_LIMIT) -> tuple[dict[str, Any], str | None]:
    """The notes within `limit` bytes of compact JSON, and what was cut (None when nothing was)."""
    kept: dict[str, Any] = {}
    size = 2  # {}
    replaced: list[str] = []
    dropped: list[str] = []
    for key, value in notes.items():
        entry = _size(key) + 1 + _size(value) + 1  # "key":value,
        if size + entry <= limit:
            kept[key] = value
            size += entry
            continue
        marker = f"[prunebench: cut, {_size(value):,} bytes of JSON]"
        marked = _size(key) + 1 + _size(marker) + 1
        if len(key) <= MAX_KEY_FOR_MARKER and size + marked <= limit:
            kept[key] = marker
            size += marked
            replaced.append(key)
        else:
            dropped.append(key)
    if not replaced and not dropped:
        return kept, None
    return kept, _describe(limit, replaced, dropped)


def _size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass"))


def _describe(limit: int, replaced: list[str], dropped: list[str]) -> str:
    def names(keys: list[str]) -> str:
        shown = ", ".join(repr(one_line(k)[:100]) for k in keys[:NAMED])
        return shown + (f" and {len(keys) - NAMED:,} more" if len(keys) > NAMED else "")

    parts = []
    if replaced:
        parts.append(f"{len(replaced):,} note(s) cut to a marker ({names(replaced)})")
    if dropped:
        parts.append(f"{len(dropped):,} note(s) dropped ({names(dropped)})")
    return f"the method's notes were over {limit // 1024} KiB of JSON: " + "; ".join(parts)
