"""A job's method code in the runner's own process, for a researcher with a debugger (`run --in-process`).

The job takes the same steps as in a job process (prunebench.run.sandbox.steps), and its messages go through
the same encoding and checks on their way to the runner, but nothing stands between the method's code and the
runner: its records say so (`provenance.in_process`), go to a run directory of their own, and are never ranked.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from prunebench.errors import JobFailed
from prunebench.run.sandbox.messages import Message, receive, send
from prunebench.run.sandbox.patches import CodeInventory
from prunebench.run.sandbox.steps import MethodSteps, describe
from prunebench.run.sandbox.tasks import JobTask


class LocalConnection:
    """The end of a pipe the method's steps write to, read at once in the same process: each frame is decoded
    as the runner decodes a job process's (`receive`) and handed on."""

    def __init__(self, on_message: Callable[[Message], None], max_bytes: int) -> None:
        self.on_message, self.max_bytes = on_message, max_bytes
        self.frames: deque[bytes] = deque()
        self.last: Message | None = None

    def send_bytes(self, frame: bytes) -> None:
        self.frames.append(frame)
        message = receive(self, self.max_bytes)  # type: ignore[arg-type]
        if message.kind in ("result", "failed"):
            self.last = message
        else:
            self.on_message(message)

    def recv_bytes(self, max_bytes: int | None = None) -> bytes:
        return self.frames.popleft()


def run_job_in_process(task: JobTask, on_message: Callable[[Message], None], max_bytes: int) -> Message:
    """Run one job's method here; its last message (kind `result` or `failed`). Exceptions a method raises fail
    its job, as in a job process, after the debugger (if any) has seen them."""
    conn = LocalConnection(on_message, max_bytes)
    try:
        header, tensors = MethodSteps(task, conn, CodeInventory()).run()  # type: ignore[arg-type]
        send(conn, "result", header, tensors)  # type: ignore[arg-type]
    except JobFailed as exc:
        send(conn, "failed", {"reason": str(exc)})  # type: ignore[arg-type]
    except Exception as exc:
        send(conn, "failed", {"reason": f"the job raised {describe(exc)}"})  # type: ignore[arg-type]
    assert conn.last is not None
    return conn.last
