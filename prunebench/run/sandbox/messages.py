"""The messages a job's process sends the runner: a JSON header and, optionally, tensors. Never pickles.

The runner reads everything a job's process sends as untrusted: the header is parsed as JSON (of a bounded
size), the tensors with `torch.load(weights_only=True)`, which builds tensors and plain containers and
nothing else, and both are checked for their shape before use. (What the runner sends a job's process, its
own data and protocol, is pickled: the child trusts its parent, never the other way round.)

A frame is `PBM1`, the header's length (4 bytes, big-endian), the header, then the tensors as torch.save wrote
them (nothing when there are none).
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import torch
from torch import Tensor

MAGIC = b"PBM1"
MAX_HEADER = 16 * 2**20
KINDS = frozenset({"method", "stage", "scored", "reconstructed", "epoch", "checkpoint", "warning", "result", "failed"})
# Between a job's engine process and its method process (prunebench.run.sandbox.bridge).
BRIDGE_KINDS = frozenset({"call", "reply", "error", "warning"})


class BadMessage(ValueError):
    """What a job's process sent is not a message of the kind it claims to be."""


@dataclass
class Message:
    kind: str
    header: dict[str, Any]
    tensors: dict[str, dict[str, Tensor]] = field(default_factory=dict)  # groups (state, weights, masks) by name


def send(
    conn: Connection, kind: str, header: dict[str, Any], tensors: dict[str, dict[str, Tensor]] | None = None
) -> None:
    head = json.dumps({"kind": kind, **header}, allow_nan=False).encode()
    body = b""
    if tensors:
        buffer = io.BytesIO()
        torch.save({group: {k: v.detach().cpu() for k, v in items.items()} for group, items in tensors.items()}, buffer)
        body = buffer.getvalue()
    conn.send_bytes(MAGIC + len(head).to_bytes(4, "big") + head + body)


def receive(conn: Connection, max_bytes: int, kinds: frozenset[str] = KINDS) -> Message:
    """The next message, of one of `kinds`; raises EOFError when the process closed its end, BadMessage for
    anything malformed."""
    try:
        frame = conn.recv_bytes(max_bytes)
    except OSError as exc:  # longer than max_bytes
        raise BadMessage(f"a message of more than {max_bytes} bytes ({exc})") from None
    if frame[:4] != MAGIC or len(frame) < 8:
        raise BadMessage("not a prunebench message")
    size = int.from_bytes(frame[4:8], "big")
    if size > MAX_HEADER or 8 + size > len(frame):
        raise BadMessage("a message header of impossible length")
    try:
        header = json.loads(frame[8 : 8 + size], parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise BadMessage(f"a header that is not JSON ({exc})") from None
    if not isinstance(header, dict) or header.get("kind") not in kinds:
        raise BadMessage("a header without a known kind")
    tensors: dict[str, dict[str, Tensor]] = {}
    if len(frame) > 8 + size:
        try:
            loaded = torch.load(io.BytesIO(frame[8 + size :]), map_location="cpu", weights_only=True)
        except Exception as exc:  # anything torch refuses to load is a bad message, whatever its type
            raise BadMessage(f"tensors that cannot be loaded safely ({exc.__class__.__name__}: {exc})") from None
        tensors = _tensor_groups(loaded)
    return Message(header.pop("kind"), header, tensors)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number a report may hold")


def _tensor_groups(loaded: Any) -> dict[str, dict[str, Tensor]]:
    if not isinstance(loaded, dict):
        raise BadMessage("tensors that are not grouped by name")
    for group, items in loaded.items():
        if not isinstance(group, str) or not isinstance(items, dict):
            raise BadMessage("tensors that are not grouped by name")
        for key, value in items.items():
            if not isinstance(key, str) or not isinstance(value, Tensor):
                raise BadMessage(f"{group}: an entry that is not a named tensor")
    return loaded


def number(header: dict[str, Any], key: str, *, integer: bool = False, at_least: float = 0) -> Any:
    """A finite number of the header (an int when `integer`), at least `at_least`; BadMessage otherwise."""
    value = header.get(key)
    kinds = (int,) if integer else (int, float)
    try:
        ok = not isinstance(value, bool) and isinstance(value, kinds) and math.isfinite(value) and value >= at_least
    except OverflowError:
        ok = False
    if not ok:
        raise BadMessage(f"{key} = {str(value)[:40]} is not a number of the report")
    return value


# Warnings a job's process raised, raised again here under their own category when it is one of these.
WARNING_CATEGORIES = {c.__name__: c for c in (UserWarning, RuntimeWarning, DeprecationWarning, FutureWarning)}
MAX_WARNINGS = 50  # that a job's process sends


def rewarn(message: Message) -> None:
    """Raise, in the runner, a warning a job's process reported (a plugin skipped, a method's own warning)."""
    import warnings

    from prunebench.errors import one_line

    if message.kind != "warning":
        return
    text = one_line(str(message.header.get("message", "")))
    category = WARNING_CATEGORIES.get(str(message.header.get("category")), UserWarning)
    if str(message.header.get("category")) == "PluginWarning":
        from prunebench.methods import PluginWarning

        category = PluginWarning
    warnings.warn(text, category, stacklevel=2)
