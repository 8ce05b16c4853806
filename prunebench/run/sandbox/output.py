"""What a job's process writes to its stdout and stderr, passed on to the runner's own streams within a bound.

A job's process writes its file descriptors 1 and 2 into pipes the runner reads (so that C-level writes and the
process's own subprocesses are caught too, not only Python's `sys.stdout`): the first `OUTPUT_LIMIT` bytes of
each reach the runner's stream of the same name, the rest is read and dropped, and one line then says how many
bytes were not shown. A job that writes nothing adds nothing to the runner's output.
"""

from __future__ import annotations

import codecs
import os
import sys
import time
from collections.abc import Callable, Iterable
from typing import TextIO

OUTPUT_LIMIT = 64 * 1024  # bytes of each of a job's streams shown, per job
READ_CHUNK = 64 * 1024


class CappedStream:
    """One of a job's streams, read from the pipe's end `fd` (owned: closed by `close`), shown on the runner's
    stream `target()` (looked up at each write, so that a replaced sys.stdout is honoured) up to `limit` bytes."""

    def __init__(self, name: str, fd: int, target: Callable[[], TextIO], limit: int = OUTPUT_LIMIT) -> None:
        self.name = name
        self.fd: int | None = fd
        self.target = target
        self.limit = limit
        self.shown = 0  # bytes passed on
        self.dropped = 0  # bytes read and not shown
        self.ends_line = True  # whether what was shown ends with a newline
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def pump(self) -> bool:
        """Read what is there (one read; the fd is ready); False at end of file (every writer closed it)."""
        assert self.fd is not None
        try:
            data = os.read(self.fd, READ_CHUNK)
        except BlockingIOError:
            return True
        except OSError:
            return False
        if not data:
            return False
        room = max(0, self.limit - self.shown)
        shown, rest = data[:room], data[room:]
        self.dropped += len(rest)
        if shown:
            self.shown += len(shown)
            self._write(self.decoder.decode(shown, final=self.shown >= self.limit))
        return True

    def close(self) -> None:
        """Stop reading; say how much was not shown, when anything was cut."""
        if self.fd is None:
            return
        os.close(self.fd)
        self.fd = None
        self._write(self.decoder.decode(b"", final=True))
        if self.dropped:
            newline = "" if self.ends_line else "\n"
            self._write(f"{newline}[prunebench: {self.dropped:,} bytes of the job's {self.name} not shown]\n")

    def _write(self, text: str) -> None:
        if not text:
            return
        stream = self.target()
        if stream is None:  # a runner without the stream (pythonw, closed): the job's output goes nowhere
            return
        stream.write(text)
        stream.flush()
        self.ends_line = text.endswith("\n")


class JobOutput:
    """The job's stdout and stderr, each a CappedStream; `fds` are the ends still open, to wait on."""

    def __init__(self, stdout_fd: int, stderr_fd: int, limit: int = OUTPUT_LIMIT) -> None:
        self.streams = {
            stdout_fd: CappedStream("stdout", stdout_fd, lambda: sys.stdout, limit),
            stderr_fd: CappedStream("stderr", stderr_fd, lambda: sys.stderr, limit),
        }
        for fd in self.streams:
            os.set_blocking(fd, False)  # a wakeup without data (a race with EOF) never blocks the runner

    @property
    def fds(self) -> list[int]:
        return list(self.streams)

    def pump(self, ready: Iterable[object]) -> None:
        """Read the streams among `ready`; one at end of file is closed and no longer waited on."""
        for fd in [r for r in ready if isinstance(r, int) and r in self.streams]:
            if not self.streams[fd].pump():
                self.streams.pop(fd).close()

    def finish(self, wait: Callable[[list[int], float], list[object]], grace_s: float) -> None:
        """After the job's process is gone: read what is left until end of file or `grace_s` seconds (a
        subprocess that left the job's process group may hold a pipe open: it is cut off), then close."""
        deadline = time.monotonic() + grace_s
        while self.streams and (left := deadline - time.monotonic()) > 0:
            self.pump(wait(self.fds, left))
        for stream in self.streams.values():
            stream.close()
        self.streams.clear()
