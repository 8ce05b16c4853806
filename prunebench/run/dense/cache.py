"""The dense-checkpoint cache: the base model of a (dense config, seed), trained once and shared by every
method and sparsity; stored under the hash of what determines it.

A checkpoint file carries a sha256 over everything in it (every saved state: initialization, rewind point,
final weights; the accuracies, ledger and curves of its training) and a keyed MAC of that sha256 (the cache's
integrity key, prunebench.results.integrity, which a job's code does not hold: anyone can recompute a sha256), and
is written atomically and flushed to disk. One in the cache that does not verify (truncated, foreign, a flipped
bit, an edited accuracy, or a file written by anything but a runner of this cache, such as a job's code poisoning
the cache) is never trusted: it is retrained, with a warning.

The shipped ones (the committed references' dense/, `--dense-from`) are checked by their sha256 alone, as before:
they were made before checkpoints were sealed (and with another machine's key), and what vouches for them is where
they are, not a key: in the repository, shipped by review, where a confined job cannot write.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from prunebench.engine import TRAINER_VERSION
from prunebench.protocol import Protocol, content_hash
from prunebench.results import EpochRecord, StageLedger, write_atomic
from prunebench.results.files import remove_stale_temporaries
from prunebench.results.integrity import IntegrityKey, ephemeral_key

FORMAT = 2  # 1: only the final weights were verified


def default_cache_dir() -> Path:
    return Path(os.environ.get("PRUNEBENCH_CACHE", Path.home() / ".cache" / "prunebench"))


def weights_sha256(state: dict[str, torch.Tensor]) -> str:
    """sha256 over every tensor of a state dict (names, dtypes and bytes, in name order)."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(name.encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


@dataclass
class BaseCheckpoint:
    """A trained dense model: its saved states, accuracies and what training it cost."""

    key: str
    sha256: str
    states: dict[str, dict[str, torch.Tensor]]  # init, rewind, final
    test: dict[str, Any]  # top1, top5 (None with 5 classes or fewer), loss
    val_top1: float
    ledger: StageLedger
    curves: list[EpochRecord] = field(default_factory=list)


def checkpoint_digest(key: str, states: dict[str, dict[str, torch.Tensor]], meta: dict[str, Any]) -> str:
    """sha256 over a checkpoint's key, every tensor of every saved state, and its metadata (canonical JSON)."""
    digest = hashlib.sha256(f"prunebench-dense/{FORMAT}/{key}".encode())
    for which in sorted(states):
        digest.update(f"/{which}/{weights_sha256(states[which])}".encode())
    digest.update(json.dumps(meta, sort_keys=True, separators=(",", ":")).encode())
    return digest.hexdigest()


class DenseCache:
    """The base checkpoints of one protocol's dense configuration, in `<cache>/base/`; and, read only, in the
    `shipped` folders (a reference run's dense/, which `--dense-from` names), searched first."""

    def __init__(
        self,
        root: Path,
        protocol: Protocol,
        shipped: Sequence[Path] = (),
        limit: int | None = None,
        key: IntegrityKey | None = None,
    ) -> None:
        self.root = Path(root)
        self.key = key or ephemeral_key()  # the cache's integrity key: a cached model is trusted when it is sealed
        self.protocol = protocol
        self.shipped = [Path(p) for p in shipped]
        self.limit = limit  # a smoke run's dense models are trained on a few batches: kept apart

    @property
    def folder(self) -> Path:
        return self.root / "base"

    def locate(self, seed: int) -> tuple[Path, str]:
        """(file, key) of a seed's checkpoint; the key hashes what determines it: the protocol's part
        (Protocol.base_key) and the version of the code that trains it (TRAINER_VERSION); a smoke run's limit."""
        smoke = {"limit": self.limit} if self.limit is not None else {}
        key = content_hash({**self.protocol.base_key(seed), "trainer": TRAINER_VERSION, **smoke})
        return self.folder / f"{self.protocol.model.name}-{key[:16]}.pt", key

    def has(self, seed: int) -> bool:
        return self.locate(seed)[0].exists()

    def remove_stale_temporaries(self) -> int:
        """Temporary files of checkpoint writes that were killed (never those of a run still writing)."""
        return remove_stale_temporaries(self.folder)

    def load(self, seed: int) -> BaseCheckpoint | None:
        """The checkpoint when it is there (shipped, else cached) and verifies, else None (with a warning if it was
        there)."""
        found = self.find(seed)
        return found[0] if found is not None else None

    def find(self, seed: int) -> tuple[BaseCheckpoint, Path] | None:
        """(the checkpoint, its file) when one is there and verifies: shipped first, then cached."""
        path, key = self.locate(seed)
        for candidate in [folder / path.name for folder in self.shipped] + [path]:
            if candidate.exists():
                found = self._load(candidate, key, sealed=candidate == path)
                if found is not None:
                    return found, candidate
        return None

    def _load(self, path: Path, key: str, *, sealed: bool) -> BaseCheckpoint | None:
        """The checkpoint at `path` when it verifies: its sha256, and its MAC when it must be `sealed` (the cache's
        own; a shipped one is vouched for by the repository it lies in)."""
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
            meta = blob["meta"]
            digest = checkpoint_digest(key, blob["states"], meta)
            if (
                blob.get("format") == FORMAT
                and blob["key"] == key
                and digest == blob["digest"]
                and (not sealed or self.key.verify(_domain(key), digest.encode(), blob.get("mac")))
                and weights_sha256(blob["states"]["final"]) == meta["sha256"]
            ):
                return BaseCheckpoint(
                    key=key,
                    sha256=meta["sha256"],
                    states=blob["states"],
                    test=meta["test"],
                    val_top1=meta["val_top1"],
                    ledger=StageLedger.model_validate(meta["ledger"]),
                    curves=[EpochRecord.model_validate(c) for c in meta["curves"]],
                )
            warnings.warn(f"cached base model {path} does not verify; training it again", stacklevel=2)
        except Exception as exc:  # a truncated or foreign cache file is retrained, never trusted
            warnings.warn(f"cached base model {path} is unreadable ({exc}); training it again", stacklevel=2)
        return None

    def save(self, seed: int, base: BaseCheckpoint, path: Path | None = None) -> None:
        """Write the checkpoint to the cache (or to `path`: a run's dense/ folder)."""
        path = path or self.locate(seed)[0]
        meta = {
            "sha256": base.sha256,
            "test": base.test,
            "val_top1": base.val_top1,
            "ledger": base.ledger.model_dump(),
            "curves": [c.model_dump() for c in base.curves],
        }
        buffer = io.BytesIO()
        blob = {"format": FORMAT, "key": base.key, "states": base.states, "meta": meta}
        digest = checkpoint_digest(base.key, base.states, meta)
        torch.save({**blob, "digest": digest, "mac": self.key.mac(_domain(base.key), digest.encode())}, buffer)
        write_atomic(path, buffer.getvalue())


def _domain(key: str) -> str:
    """What a dense checkpoint's MAC is bound to: the checkpoint's key (what determines the model)."""
    return f"prunebench-dense/{FORMAT}/{key}"
