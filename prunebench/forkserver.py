"""The fork server job processes start from (prunebench.run.sandbox.process), startable before anything heavy is
imported: `start()` at the top of a command lets the server import torch while the command does.

Where the operating system allows, the server runs confined (prunebench.confine), and so does every job process
it forks; `confined()` says whether it does, `unconfined_reason()` why not."""

from __future__ import annotations

import multiprocessing
import os
from multiprocessing import forkserver, resource_tracker, spawn
from multiprocessing.context import BaseContext

from prunebench import confine

# What the server imports once, so that a job process starts with it imported (never the runner's __main__).
PRELOAD = ["prunebench.forkserver_init", "prunebench.run.sandbox.child", "prunebench.run.sandbox.entry"]

_context: BaseContext | None = None
_unconfined: str | None = None  # why the command asked for no sandbox (decided when the server starts)
_wrapper: str | None = None  # the executable the confined server starts with
_reason: str | None = None  # why the server runs unconfined; None while it is confined or not started


def context() -> BaseContext:
    global _context
    if _context is None:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(PRELOAD)
        _context = ctx
    return _context


def start(*, unconfined: str | None = None) -> None:
    """Start the server now (it returns at once; the server imports in the background): in the sandbox where the
    system allows, unless `unconfined` says why not (what the one line of a run then says)."""
    global _unconfined
    if _wrapper is None and _reason is None:
        _unconfined = unconfined
    context()
    ensure_running()


def unconfined_line() -> str | None:
    """The one line a run shows when its job processes run unconfined; None when they are confined."""
    if _reason is None:
        return None
    return f"prunebench: job processes run unconfined ({_reason}): their records say confined: false"


def ensure_running() -> None:
    """The server running, confined when it is to be (a server that died is started again the same way)."""
    global _reason, _wrapper
    if _wrapper is None and _reason is None:  # decided once, when the server first starts
        # A rank of several (torchrun, a SLURM task of several processes) joins its job's process group over the
        # network, which the sandbox has none of: however it was started, it runs unconfined.
        ranks = int(os.environ.get("WORLD_SIZE", "1") or 1) > 1
        _reason = _unconfined or ("DDP ranks talk over the network" if ranks else confine.unavailable())
        if _reason is None:
            _wrapper = confine.wrapper()
    if _wrapper is None:
        forkserver.ensure_running()
        return
    resource_tracker.ensure_running()  # not in the sandbox: it is the runner's
    previous = spawn.get_executable()
    spawn.set_executable(_wrapper)  # only for the server: restored at once
    try:
        forkserver.ensure_running()
    finally:
        spawn.set_executable(previous)


def confined() -> bool:
    """Whether job processes run in the sandbox (starts the server if it is not running)."""
    context()
    ensure_running()
    return _wrapper is not None


def unconfined_reason() -> str | None:
    return _reason


def sandbox_pid() -> int | None:
    """The pid of the sandbox (bwrap, which the server runs under), when the server is confined."""
    if _wrapper is None:
        return None
    return forkserver._forkserver._forkserver_pid  # type: ignore[attr-defined]
