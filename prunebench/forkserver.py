"""The fork server job processes start from (prunebench.run.sandbox.process), startable before anything heavy is
imported: `start()` at the top of a command lets the server import torch while the command does."""

from __future__ import annotations

import multiprocessing
from multiprocessing import forkserver
from multiprocessing.context import BaseContext

# What the server imports once, so that a job process starts with it imported (never the runner's __main__).
PRELOAD = ["prunebench.forkserver_init", "prunebench.run.sandbox.child"]

_context: BaseContext | None = None


def context() -> BaseContext:
    global _context
    if _context is None:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(PRELOAD)
        _context = ctx
    return _context


def start() -> None:
    """Start the server now (it returns at once; the server imports in the background)."""
    context()
    forkserver.ensure_running()
