"""Checkpoints of stages in flight, so that a killed or preempted job resumes from its last completed epoch:
`<cache>/progress/<key>.pt`, and the one before it as `<key>.prev.pt`.

A checkpoint carries a keyed MAC of its contents (HMAC-SHA256 with the cache's integrity key,
prunebench.results.integrity, which a job's code does not hold: a plain sha256 anyone can recompute, and a job
could launder weights it trained privately through a checkpoint and a resume) and is read with `weights_only`
(tensors and plain values, never code). One that does not verify (truncated by a kill, foreign, edited, written
by anything but a runner of this cache, or before checkpoints were sealed) is never trusted: the one before it is
used, else the stage starts over, with a warning. A job's checkpoints are removed when its record is
written (unless `--keep-checkpoints`).

What is in one is the caller's: for dense base training (in the runner) the engine's state and the rewind
point; for a job, the reports the runner received from its job process up to then (it replays them to count
its ledger again) and what the job process needs to go on (prunebench.run.sandbox.steps).
"""

from __future__ import annotations

import io
import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch

from prunebench.results import write_atomic
from prunebench.results.files import remove_stale_temporaries
from prunebench.results.integrity import IntegrityKey, ephemeral_key

FORMAT = 2  # 1: a plain sha256
MAGIC = b"prunebench-progress\n"


class StageCheckpoints:
    """The checkpoints of stages in flight under a cache root, and which of them a finished stage leaves to be
    removed once what it led to (a dense model, a record) is written."""

    def __init__(self, root: Path, *, keep: bool = False, key: IntegrityKey | None = None) -> None:
        self.folder = Path(root) / "progress"  # the folder's name predates the class's: caches keep working
        self.key = key or ephemeral_key()  # the cache's integrity key: a checkpoint is trusted when it is sealed
        self.keep = keep  # `--keep-checkpoints`
        self._finished: list[str] = []

    def finished(self, key: str) -> None:
        """A stage's checkpoints, to be removed once what the stage led to is written."""
        self._finished.append(key)

    def written(self) -> None:
        """What the finished stages led to is written: their checkpoints are removed (unless kept)."""
        for key in self._finished:
            if not self.keep:
                self.remove(key)
        self._finished.clear()

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.pt"

    def previous(self, key: str) -> Path:
        return self.folder / f"{key}.prev.pt"

    def following(self, key: str) -> Path:
        return self.folder / f"{key}.next.pt"

    def save(self, key: str, payload: dict[str, Any]) -> None:
        """Write a stage's checkpoint; the last one is kept as the one before it. Not flushed to disk: a checkpoint
        lost to a crash costs the epochs since the one before it, and one torn by it does not verify."""
        inner = io.BytesIO()
        torch.save(payload, inner)
        data = inner.getvalue()
        mac = self.key.mac(_domain(key), data)
        head = json.dumps({"format": FORMAT, "key": key, "mac": mac, "bytes": len(data)}).encode()
        # Written whole first (a kill mid-write leaves the last checkpoint as it was), then rotated in.
        current, following = self.path(key), self.following(key)
        write_atomic(following, MAGIC + head + b"\n" + data, durable=False)
        if current.exists():
            os.replace(current, self.previous(key))
        os.replace(following, current)

    def load(self, key: str) -> dict[str, Any] | None:
        """The newest checkpoint of `key` that verifies, or None."""
        for path in (self.following(key), self.path(key), self.previous(key)):
            if not path.exists():
                continue
            try:
                blob = path.read_bytes()
                head, _, data = blob[len(MAGIC) :].partition(b"\n")
                info = json.loads(head)
                if (
                    blob.startswith(MAGIC)
                    and info.get("format") == FORMAT
                    and info.get("key") == key
                    and info.get("bytes") == len(data)
                    and self.key.verify(_domain(key), data, info.get("mac"))
                ):
                    payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
                    if isinstance(payload, dict):
                        return payload
                warnings.warn(f"checkpoint {path} does not verify; not used", stacklevel=2)
            except Exception as exc:  # truncated or foreign: never trusted
                warnings.warn(f"checkpoint {path} is unreadable ({str(exc)[:200]}); not used", stacklevel=2)
        return None

    def remove(self, key: str) -> None:
        for path in (self.following(key), self.path(key), self.previous(key)):
            path.unlink(missing_ok=True)

    def remove_stale_temporaries(self) -> int:
        return remove_stale_temporaries(self.folder)


def _domain(key: str) -> str:
    return f"prunebench-progress/{FORMAT}/{key}"
