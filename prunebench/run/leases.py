"""Claims: how workers that share a results directory (local `--workers`, SLURM array tasks, any scheduler) never
run a job twice.

A worker runs a job (or trains a seed's dense model) only while it holds the job's lease: a small JSON file
created exclusively (`O_CREAT | O_EXCL`, atomic on local file systems and NFS), naming its holder, whose
modification time a heartbeat thread renews every `ttl / 4` seconds. A lease not renewed for `ttl` seconds is
stale (its holder was killed, or its node lost) and is taken over: renamed aside (atomic; of two workers that
try at once one wins), checked to be the stale one it was (else put back), and claimed anew. A lease is stale at
once when its holder is known to be gone: a process of this host that no longer runs, or an earlier run of the
same SLURM array task (requeued), and when it is not sealed: a lease carries a MAC made with the cache's integrity
key (prunebench.results.integrity), which a job's code does not hold, so a lease a job wrote (squatting a later
job, or rewriting its own) is no claim and is taken over at once. A holder whose
lease was taken over learns it at its next heartbeat and does not write the job's record: the worker that took
over does. Records are written atomically in any case, so a reader never sees half of one.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prunebench.results.files import HOST, make_folder
from prunebench.results.integrity import IntegrityKey, ephemeral_key

LEASE_SUFFIX = ".lease"
DEFAULT_TTL_S = 120.0


def default_ttl() -> float:
    """Seconds without a heartbeat after which a lease is stale ($PRUNEBENCH_LEASE_TTL, else 120)."""
    try:
        return max(1.0, float(os.environ.get("PRUNEBENCH_LEASE_TTL", DEFAULT_TTL_S)))
    except ValueError:
        return DEFAULT_TTL_S


def identity() -> dict[str, Any]:
    """Who holds a lease: host and pid, and the SLURM job (array job and task) and how often SLURM restarted it."""
    job = os.environ.get("SLURM_ARRAY_JOB_ID") or os.environ.get("SLURM_JOB_ID")
    task = os.environ.get("SLURM_ARRAY_TASK_ID")
    slurm = None if job is None else job + (f"_{task}" if task else "")
    restart = os.environ.get("SLURM_RESTART_COUNT", "0")
    return {"host": HOST, "pid": os.getpid(), "slurm": slurm, "restart": int(restart) if restart.isdigit() else 0}


def worker_name() -> str:
    me = identity()
    return f"{me['host']}:{me['pid']}" + (f" (slurm {me['slurm']})" if me["slurm"] else "")


def lease_domain(path: Path) -> str:
    """What a lease's MAC is bound to: its file's name (the job or dense model it claims)."""
    return f"prunebench-lease/1/{path.name}"


def _content(info: dict[str, Any]) -> bytes:
    return json.dumps({k: v for k, v in info.items() if k != "mac"}, sort_keys=True, separators=(",", ":")).encode()


def seal(path: Path, info: dict[str, Any], key: IntegrityKey) -> dict[str, Any]:
    """A lease's content with `key`'s MAC for its file."""
    return {**info, "mac": key.mac(lease_domain(path), _content(info))}


def sealed(path: Path, info: object, key: IntegrityKey) -> bool:
    """Whether a lease's content carries `key`'s MAC for its file: written by a worker of this cache."""
    return isinstance(info, dict) and key.verify(lease_domain(path), _content(info), info.get("mac"))


@dataclass
class Lease:
    """A lease this process holds; `lost` once another worker took it over (or it was rewritten by anyone)."""

    path: Path
    token: str
    key: IntegrityKey
    lost: bool = False

    def renew(self) -> bool:
        """Touch the lease if it is still ours; False (and `lost`) once it is not."""
        if self.lost:
            return False
        try:
            info = json.loads(self.path.read_text())
            if info.get("token") == self.token and sealed(self.path, info, self.key):
                os.utime(self.path)
                return True
        except (OSError, ValueError, AttributeError):
            pass
        self.lost = True
        return False

    def release(self) -> None:
        if self.renew():
            with contextlib.suppress(OSError):
                self.path.unlink()


@dataclass
class Holder:
    """Who holds a lease, since when, and how long ago it was renewed."""

    owner: str
    since: float
    heartbeat_age: float
    stale: bool


@dataclass
class Claims:
    """The leases of one folder (a run's `claims/`, the cache's `base/`), held with one heartbeat thread."""

    folder: Path
    ttl: float = field(default_factory=default_ttl)
    # The cache's integrity key (every worker sharing the folder holds the same); a lease without its MAC is none.
    key: IntegrityKey = field(default_factory=ephemeral_key)
    held: dict[str, Lease] = field(default_factory=dict)
    _beat: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    def path(self, name: str) -> Path:
        """One flat folder of leases (a job's name has `/`, never `+`), so that an empty one can be removed."""
        return self.folder / f"{name.replace('/', '+')}{LEASE_SUFFIX}"

    def claim(self, name: str) -> Lease | None:
        """The lease of `name` when this worker gets it (free, or stale and taken over); None while another
        worker holds it."""
        path = self.path(name)
        lease = self._create(path)
        if lease is None and self._take_over(path):
            lease = self._create(path)
        if lease is not None:
            self.held[name] = lease
            self._start_heartbeat()
        return lease

    def release(self, name: str) -> None:
        lease = self.held.pop(name, None)
        if lease is not None:
            lease.release()

    def release_all(self) -> None:
        for name in list(self.held):
            self.release(name)
        self._stop.set()

    def remove_folder_if_empty(self) -> None:
        """The run's claims/ once no lease is left in it (another worker's keeps it)."""
        with contextlib.suppress(OSError):
            self.folder.rmdir()

    def holder(self, name: str) -> Holder | None:
        """Who holds `name`'s lease, or None when nobody does."""
        path = self.path(name)
        try:
            age = time.time() - path.stat().st_mtime
            info = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if not sealed(path, info, self.key):
            return Holder("nobody (a lease not sealed by a worker of this cache: no claim)", 0.0, age, True)
        stale = self._expired(age) or self._holder_gone(json.dumps(info).encode())
        return Holder(str(info.get("owner", "?")), float(info.get("since", 0.0)), age, stale)

    def _expired(self, age: float) -> bool:
        """Not renewed for `ttl` seconds; or renewed in the future (a touched lease's time is no claim beyond ttl)."""
        return age > self.ttl or age < -self.ttl

    # ---- the file operations ------------------------------------------------------------------------
    def _create(self, path: Path) -> Lease | None:
        token = secrets.token_hex(8)
        for _ in range(10):  # the folder may be removed, empty, by a worker that finished, between the two calls
            make_folder(path.parent)
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
                break
            except FileExistsError:
                return None
            except FileNotFoundError:
                continue
        else:
            return None
        info = seal(path, {"owner": worker_name(), **identity(), "since": time.time(), "token": token}, self.key)
        with os.fdopen(fd, "w") as f:
            json.dump(info, f)
            f.flush()
            os.fsync(f.fileno())
        return Lease(path, token, self.key)

    def _take_over(self, path: Path) -> bool:
        """Move a stale lease aside; True when this worker did (and the path is free to claim)."""
        try:
            age = time.time() - path.stat().st_mtime
            before = path.read_bytes()
        except OSError:
            return not path.exists()  # released meanwhile: free
        try:
            info = json.loads(before)
        except ValueError:
            info = None
        if sealed(path, info, self.key) and not self._expired(age) and not self._holder_gone(before):
            return False
        aside = path.with_name(f".{path.name}.{HOST}.{os.getpid()}.{secrets.token_hex(4)}.stale")
        try:
            os.rename(path, aside)
        except OSError:
            return False  # another worker moved it first
        try:
            moved = aside.read_bytes()
        except OSError:
            return False
        if moved != before:
            # Between the look and the rename another worker took it over and claimed it: put its lease back.
            with contextlib.suppress(OSError):
                os.link(aside, path)
            aside.unlink(missing_ok=True)
            return False
        aside.unlink(missing_ok=True)
        return True

    def _holder_gone(self, lease: bytes) -> bool:
        """Whether a lease's holder is known to be gone before its lease expires: a process of this host that no
        longer runs (killed; a run after a crash), or an earlier run of this very SLURM array task (requeued:
        SLURM restarts it with a higher SLURM_RESTART_COUNT)."""
        try:
            info = json.loads(lease)
            host, pid, slurm, restart = info["host"], int(info["pid"]), info["slurm"], int(info["restart"])
        except (ValueError, KeyError, TypeError):
            return False
        me = identity()
        if slurm is not None and slurm == me["slurm"]:
            return restart < me["restart"]
        if host != HOST or pid == os.getpid():
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except OSError:
            return False
        return False

    # ---- the heartbeat ------------------------------------------------------------------------------
    def _start_heartbeat(self) -> None:
        if self._beat is not None and self._beat.is_alive():
            return
        self._stop.clear()
        self._beat = threading.Thread(target=self._heartbeat, name="prunebench-leases", daemon=True)
        self._beat.start()

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.ttl / 4):
            for lease in list(self.held.values()):
                lease.renew()

    def lost(self, name: str) -> bool:
        """Whether this worker's lease on `name` was taken over (checked now)."""
        lease = self.held.get(name)
        return lease is None or not lease.renew()
