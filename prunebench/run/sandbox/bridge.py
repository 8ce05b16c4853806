"""The wire between a job's engine process and its method process: calls either way, answered in order.

The engine calls the method's hooks (`prune`, `on_step_end`, ...); while a hook runs, the method calls the engine
(the operations of prunebench.methods.access: `masks`, `set_masks`, `train`, ...); and while the engine trains
for it, the engine calls the method's training hooks again. So each side, waiting for the answer to its call,
serves the calls that arrive meanwhile: `Bridge.call` nests as deep as the calls do, on one duplex pipe.

Frames are prunebench.run.sandbox.messages' (a JSON header, tensors loaded with `weights_only`): neither side
ever unpickles what the other sent. Values that are neither JSON nor tensors do not cross (`pack` / `unpack`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from torch import Tensor

from prunebench.run.sandbox.messages import BRIDGE_KINDS, BadMessage, Message, receive, send

MAX_FRAME = 2**31 - 1
TENSOR = "__tensor__"


class RemoteError(Exception):
    """The other side refused or failed a call; `reason` says why, in one line."""

    def __init__(self, reason: str, *, fatal: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.fatal = fatal  # the engine failed the job: the method may not go on by catching it


class Closed(Exception):
    """The other side's process ended (or sent something that is not a message): the job cannot go on."""


# (op, header, tensors) -> (header, tensors): how one side serves the other's calls.
Handler = Callable[[str, dict[str, Any], dict[str, dict[str, Tensor]]], tuple[dict[str, Any], dict[str, Tensor]]]


class Bridge:
    """One end of the wire. `on_other` takes what is neither a call nor an answer (a warning the method relays)."""

    def __init__(
        self, conn: Connection, on_other: Callable[[Message], None] | None = None, peer: str = "the engine's process"
    ) -> None:
        self.conn = conn
        self.on_other = on_other
        self.peer = peer  # what the other side is, in a reason

    def call(
        self, op: str, handler: Handler, header: dict[str, Any] | None = None, tensors: dict[str, Tensor] | None = None
    ) -> tuple[dict[str, Any], dict[str, Tensor]]:
        """Call `op` on the other side and serve its calls with `handler` until the answer comes."""
        send(self.conn, "call", {"op": op, **(header or {})}, {"args": tensors} if tensors else None)
        while True:
            message = self.next()
            if message.kind == "reply":
                return message.header, message.tensors.get("value", {})
            if message.kind == "error":
                raise RemoteError(str(message.header.get("reason", ""))[:2000], fatal=bool(message.header.get("fatal")))
            self.serve(message, handler)

    def serve(self, message: Message, handler: Handler) -> None:
        """Answer one call of the other side (anything else goes to `on_other`)."""
        if message.kind != "call":
            if self.on_other is not None:
                self.on_other(message)
            return
        op = str(message.header.pop("op", ""))
        try:
            header, tensors = handler(op, message.header, message.tensors)
        except RemoteError as exc:
            send(self.conn, "error", {"reason": exc.reason, "fatal": exc.fatal})
            return
        send(self.conn, "reply", header, {"value": tensors} if tensors else None)

    def next(self) -> Message:
        try:
            return receive(self.conn, MAX_FRAME, BRIDGE_KINDS)
        except (EOFError, OSError) as exc:
            raise Closed(f"{self.peer} ended ({exc.__class__.__name__})") from None
        except BadMessage as exc:
            raise Closed(f"{self.peer} sent {exc}") from None


def pack(value: Any) -> tuple[Any, dict[str, Tensor]]:
    """A value of tensors, numbers, strings, lists and string-keyed dicts as (JSON, tensors): each tensor becomes
    {"__tensor__": key}. Anything else raises TypeError: a value that cannot cross is the sender's mistake."""
    tensors: dict[str, Tensor] = {}

    def walk(v: Any) -> Any:
        if isinstance(v, Tensor):
            key = str(len(tensors))
            tensors[key] = v.detach().cpu()
            return {TENSOR: key}
        if v is None or isinstance(v, (bool, int, str)):
            return v
        if isinstance(v, float):
            return v if math.isfinite(v) else {"__float__": str(v)}
        if isinstance(v, (list, tuple)):
            return [walk(x) for x in v]
        if isinstance(v, dict) and all(isinstance(k, str) for k in v):
            return {k: walk(x) for k, x in v.items()}
        raise TypeError(f"a {type(v).__name__} cannot leave the method's process (tensors and plain values only)")

    return walk(value), tensors


def unpack(value: Any, tensors: dict[str, Tensor]) -> Any:
    """What `pack` packed; a reference to a tensor that did not come is an error of the sender."""
    if isinstance(value, list):
        return [unpack(x, tensors) for x in value]
    if isinstance(value, dict):
        if set(value) == {TENSOR}:
            if value[TENSOR] not in tensors:
                raise BadMessage(f"a reference to tensor {str(value[TENSOR])[:20]} that was not sent")
            return tensors[value[TENSOR]]
        if set(value) == {"__float__"}:
            return float(value["__float__"])
        return {k: unpack(x, tensors) for k, x in value.items()}
    return value
