"""A job's process: the only process that runs a method's code (prunebench.run.sandbox.process starts it).

It gets its task pickled from the runner (its trusted parent), replays the runner's working directory,
import path and threads, runs the task and sends its reports and result as messages
(prunebench.run.sandbox.messages). Whatever the method raises, `BaseException` included (SystemExit,
KeyboardInterrupt), becomes a `failed` message with the reason; a process that dies without one is failed by
the runner. The fork server imports this module once, so importing it imports what every job needs.
"""

from __future__ import annotations

import contextlib
import ctypes
import pickle
import sys
import warnings
from multiprocessing.connection import Connection
from typing import Any

import torch

from prunebench.errors import JobFailed
from prunebench.run.sandbox import method_process  # noqa: F401  (imported once here, not in every method's process)
from prunebench.run.sandbox.lifecycle import detach, flush_output, redirect_output
from prunebench.run.sandbox.messages import MAX_WARNINGS, send
from prunebench.run.sandbox.patches import CodeInventory
from prunebench.run.sandbox.steps import MethodSteps, describe
from prunebench.run.sandbox.tasks import describe_in_child

PR_SET_DUMPABLE = 4


def _warm_up() -> None:
    """What torch imports the first time an optimizer steps (its compiler stack: ~900 modules, about a
    second), imported once here, in the fork server, rather than again in every job process."""
    with torch.random.fork_rng(devices=[]):
        layer = torch.nn.Linear(2, 2)
        for optimizer in (
            torch.optim.SGD(layer.parameters(), lr=0.1, momentum=0.9),
            torch.optim.Adam(layer.parameters()),
            torch.optim.AdamW(layer.parameters()),
        ):
            layer(torch.zeros(1, 2)).sum().backward()
            optimizer.step()
            optimizer.zero_grad()


_warm_up()
# Taken in the fork server, before any method's code is imported: what every job process checks its code against.
INVENTORY = CodeInventory()


def main(
    conn: Connection,
    kind: str,
    payload: bytes,
    stdout: Connection,
    stderr: Connection,
    method_conn: Connection | None = None,
) -> None:
    """Run one task; `stdout` and `stderr` are the write ends of the pipes the runner reads this process's
    output from (within a bound); `method_conn`, the bridge to the job's method process, when it has one."""
    detach()
    if method_conn is not None:
        _undumpable()
    redirect_output(stdout, stderr)
    _forward_warnings(conn)
    # Output is flushed before the last message: the runner kills this process once it has it.
    try:
        task = pickle.loads(payload)  # from the runner, which this process trusts (never the other way round)
        task.environment.enter()
        if kind == "describe":
            described = describe_in_child(task)
            flush_output()
            send(conn, "result", described)
        elif kind == "job":
            header, tensors = MethodSteps(task, conn, INVENTORY, method_conn).run()
            flush_output()
            send(conn, "result", header, tensors)
        else:
            raise ValueError(f"unknown task {kind!r}")
    except JobFailed as exc:
        flush_output()
        send(conn, "failed", {"reason": str(exc)})
    except BaseException as exc:  # SystemExit, KeyboardInterrupt from a method fail its job
        flush_output()
        send(conn, "failed", {"reason": f"the job raised {describe(exc)}"})
    finally:
        conn.close()


def _undumpable() -> None:
    """No process without CAP_SYS_PTRACE may trace this one or open its memory (/proc/PID/mem) or file
    descriptors: the job's method process, beside it, must not reach the engine (prctl PR_SET_DUMPABLE 0)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0)


def _forward_warnings(conn: Connection) -> None:
    sent: list[str] = []

    def show(message: Any, category: Any, filename: Any, lineno: Any, file: Any = None, line: Any = None) -> None:
        text = str(message)
        if text in sent or len(sent) >= MAX_WARNINGS:
            return
        sent.append(text)
        send(conn, "warning", {"category": getattr(category, "__name__", "UserWarning"), "message": text[:10_000]})

    warnings.showwarning = show
