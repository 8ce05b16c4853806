"""How a run ends on a termination signal: SIGTERM (and SIGUSR1, which SLURM sends before a time limit when asked
to) raise `Interrupted` in the runner, as Ctrl-C raises KeyboardInterrupt, so that the job in flight ends without
a record (its checkpoint kept) and the run says what it kept. The job processes ignore SIGTERM
(prunebench.forkserver_init): the runner decides."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager

from prunebench.errors import Interrupted


@contextmanager
def terminations_interrupt(signals: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGUSR1)) -> Iterator[None]:
    """While the grid runs, `signals` raise Interrupted; the handlers are restored after."""

    def interrupt(signum: int, frame: object) -> None:
        raise Interrupted(signal.Signals(signum).name, 128 + signum)

    previous = {s: signal.signal(s, interrupt) for s in signals}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
