"""Job processes: a method's code runs in a process of its own, never in the runner's.

Every job, and the loading of a protocol's methods, runs in a child process forked from a fork server that
imported torch and prunebench once (`warm_up` starts it while the dense model trains), so a job process starts
in milliseconds, inherits no state from earlier jobs and leaks none into later ones. The runner reads what
the child sends (prunebench.run.sandbox.messages) and watches it: a child that exits before its result, is killed,
outlives `runtime.job_timeout` or outgrows `runtime.job_memory` ends its job as failed, with the reason,
and the grid goes on. A child runs in a process group of its own (Ctrl-C reaches only the runner, which
kills the child) and dies with the fork server, which dies with the runner. What it writes to its stdout and
stderr reaches the runner's within a bound (prunebench.run.sandbox.output).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import signal
import sys
import time
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import wait
from pathlib import Path
from typing import TYPE_CHECKING

from prunebench import confine
from prunebench.forkserver import context, ensure_running, sandbox_pid, start
from prunebench.run.sandbox.output import JobOutput

if TYPE_CHECKING:
    from prunebench.run.sandbox.messages import Message
    from prunebench.run.sandbox.method_process import MethodTask
    from prunebench.run.sandbox.tasks import JobTask

POLL_S = 0.2
OUTPUT_GRACE_S = 0.5  # how long the job's output is read after its process is killed


class ChildFailed(Exception):
    """A job process that ended without a result: the reason is the job's."""


@dataclass(frozen=True)
class Limits:
    timeout: float | None = None  # seconds of wall-clock time
    memory: int | None = None  # bytes of resident memory, the process and its own children together
    max_message: int = 2**31 - 1  # bytes of one message


def warm_up() -> None:
    """Start the fork server now, so that its imports overlap other work rather than delay the first job."""
    start()


def run_job(
    task: JobTask, on_message: Callable[[Message], None], limits: Limits, method: MethodTask | None = None
) -> Message:
    """Run one job in a job process of its own (see `run_child`); with `method`, the method's code in a second
    process, apart from the engine's (prunebench.run.sandbox.method_process)."""
    dumped = pickle.dumps(method, protocol=pickle.HIGHEST_PROTOCOL) if method is not None else None
    return run_child("job", pickle.dumps(task, protocol=pickle.HIGHEST_PROTOCOL), on_message, limits, dumped)


def run_child(
    kind: str,
    payload: bytes,
    on_message: Callable[[Message], None],
    limits: Limits,
    method_payload: bytes | None = None,
) -> Message:
    """Run `prunebench.run.sandbox.child.main(kind, payload)` in a job process (and, with `method_payload`, the
    job's method process beside it, the two joined by a pipe of their own); hand every report the job process
    sends to `on_message`, and return its last message (kind `result` or `failed`). Raises ChildFailed when the
    process ends without one, and kills both (and their own children) whatever happens, Ctrl-C included."""
    from prunebench.run.sandbox import entry
    from prunebench.run.sandbox.messages import BadMessage, receive

    ctx = context()
    reader, writer = ctx.Pipe(duplex=False)
    # The job's stdout and stderr: pipes whose write ends the job's process puts on its fd 1 and 2 (a Connection is
    # how multiprocessing hands a file descriptor to a process its fork server starts).
    out_reader, out_writer = ctx.Pipe(duplex=False)
    err_reader, err_writer = ctx.Pipe(duplex=False)
    bridge = ctx.Pipe(duplex=True) if method_payload is not None else None
    process = ctx.Process(  # type: ignore[attr-defined]
        target=entry.job_process,
        args=(writer, kind, payload, out_writer, err_writer, bridge[0] if bridge else None),
        name=f"prunebench-{kind}",
    )
    helper = None
    if bridge is not None:  # the method's process: the bridge's other end and the same output pipes, nothing else
        helper = ctx.Process(  # type: ignore[attr-defined]
            target=entry.method_process,
            args=(bridge[1], method_payload, out_writer, err_writer),
            name="prunebench-method",
        )
    started = checked = time.monotonic()
    ensure_running()  # a server that died is started again, confined as it was
    sandbox = sandbox_pid()  # confined: the job's pid is the sandbox's own; the runner sees its processes through it
    with _main_hidden():
        process.start()
        if helper is not None:
            helper.start()
    for end in (writer, out_writer, err_writer, *(bridge or ())):
        end.close()  # the children hold the only writers: their ends closing is end of file here
    output = JobOutput(os.dup(out_reader.fileno()), os.dup(err_reader.fileno()))  # raw fds, read as bytes
    out_reader.close()
    err_reader.close()
    try:
        while True:
            ready = wait([reader, *output.fds], POLL_S)
            output.pump(ready)
            if reader in ready:
                try:
                    message = receive(reader, limits.max_message)
                except EOFError:
                    process.join(5)
                    raise ChildFailed(_ended(process.exitcode)) from None
                except BadMessage as exc:
                    raise ChildFailed(f"the job's process sent {exc}") from None
                if message.kind in ("result", "failed"):
                    return message
                on_message(message)
            elif process.exitcode is not None and not reader.poll():
                raise ChildFailed(_ended(process.exitcode))
            if time.monotonic() - checked < POLL_S:
                continue  # the limits are checked a few times a second, whatever the job sends
            checked = time.monotonic()
            if limits.timeout is not None and checked - started > limits.timeout:
                raise ChildFailed(f"the job ran past runtime.job_timeout ({limits.timeout:g} s) and was killed")
            if limits.memory is not None:
                rss = (
                    sandbox_rss(sandbox)
                    if sandbox is not None
                    else sum(tree_rss(p.pid) for p in (process, helper) if p is not None)
                )
                if rss > limits.memory:
                    raise ChildFailed(
                        f"the job's process used {rss / 2**20:.0f} MiB, over runtime.job_memory "
                        f"({limits.memory / 2**20:.0f} MiB), and was killed"
                    )
    finally:
        if sandbox is not None:
            confine.kill_leftovers(sandbox)  # the job's process and every process it started, setsid or not
        else:
            _kill(process)
            if helper is not None:
                _kill(helper)
        reader.close()
        output.finish(wait, OUTPUT_GRACE_S)


@contextmanager
def _main_hidden() -> Iterator[None]:
    """multiprocessing makes a child import the parent's __main__ (the CLI's script, pytest) before its target
    runs; a job process needs none of it, and must not run it again."""
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


def _ended(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name if -exitcode in signal.valid_signals() else f"signal {-exitcode}"
        return f"the job's process was killed by {name} before it reported a result"
    if exitcode == 255:  # also what multiprocessing reads when the fork server died and no status came back
        return "the job's process ended (exit code 255, or its fork server died) before it reported a result"
    return (
        f"the job's process exited with code {exitcode} before it reported a result (did the method end the "
        "process: sys.exit, os._exit?)"
    )


def _kill(process: multiprocessing.process.BaseProcess) -> None:
    """SIGKILL to the child's process group (its DataLoader workers too), whether or not it is still running;
    not waited for: multiprocessing reaps it when the next child starts."""
    if process.pid is None:
        return
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except OSError:  # not (yet) a group of its own, or gone
        with contextlib.suppress(OSError, ValueError):
            process.kill()


def sandbox_rss(sandbox: int) -> int:
    """Resident bytes of the job processes of a confined fork server (all but the server: one job at a time)."""
    _, pids = confine.sandbox_processes(sandbox)
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return total


def tree_rss(pid: int) -> int:
    """Resident bytes of a process and its descendants (Linux /proc; 0 where it cannot be read)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
            parent, pages = int(fields[1]), int(fields[21])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(entry.name))
        rss[int(entry.name)] = pages * os.sysconf("SC_PAGE_SIZE")
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += rss.get(p, 0)
        todo.extend(children.get(p, []))
    return total
