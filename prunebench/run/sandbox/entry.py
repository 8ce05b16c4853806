"""Where a job's processes start: the targets the runner names to the fork server. They import their module
when they run, so naming them costs the runner nothing; the fork server has already imported both
(prunebench.forkserver.PRELOAD), with what every job needs and the warm-up the runner has no use for."""

from __future__ import annotations

from typing import Any


def job_process(*args: Any) -> None:
    """prunebench.run.sandbox.child.main."""
    from prunebench.run.sandbox.child import main

    main(*args)


def method_process(*args: Any) -> None:
    """prunebench.run.sandbox.method_process.main."""
    from prunebench.run.sandbox.method_process import main

    main(*args)
