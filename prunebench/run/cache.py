"""The dense-checkpoint cache: the base model of a (dense config, seed), trained once and shared by every
method and sparsity; stored under the hash of what determines it, verified by the hash of its weights.

A cached checkpoint that does not verify (truncated, foreign, edited) is never trusted: it is retrained,
with a warning.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from prunebench.protocol import Protocol, content_hash
from prunebench.results import EpochRecord, StageLedger, write_atomic


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


class DenseCache:
    """The base checkpoints of one protocol's dense configuration, in `<cache>/base/`."""

    def __init__(self, root: Path, protocol: Protocol) -> None:
        self.root = Path(root)
        self.protocol = protocol

    def locate(self, seed: int) -> tuple[Path, str]:
        """(file, key) of a seed's checkpoint; the key hashes what determines it (Protocol.base_key)."""
        key = content_hash(self.protocol.base_key(seed))
        return self.root / "base" / f"{self.protocol.model.name}-{key[:16]}.pt", key

    def has(self, seed: int) -> bool:
        return self.locate(seed)[0].exists()

    def load(self, seed: int) -> BaseCheckpoint | None:
        """The cached checkpoint when it is there and verifies, else None (with a warning if it was there)."""
        path, key = self.locate(seed)
        if not path.exists():
            return None
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
            if blob["key"] == key and weights_sha256(blob["states"]["final"]) == blob["sha256"]:
                return BaseCheckpoint(
                    key=key,
                    sha256=blob["sha256"],
                    states=blob["states"],
                    test=blob["test"],
                    val_top1=blob["val_top1"],
                    ledger=StageLedger.model_validate(blob["ledger"]),
                    curves=[EpochRecord.model_validate(c) for c in blob["curves"]],
                )
            warnings.warn(f"cached base model {path} does not verify; training it again", stacklevel=2)
        except Exception as exc:  # a truncated or foreign cache file is retrained, never trusted
            warnings.warn(f"cached base model {path} is unreadable ({exc}); training it again", stacklevel=2)
        return None

    def save(self, seed: int, base: BaseCheckpoint) -> None:
        path, _ = self.locate(seed)
        buffer = io.BytesIO()
        torch.save(
            {
                "key": base.key,
                "sha256": base.sha256,
                "states": base.states,
                "test": base.test,
                "val_top1": base.val_top1,
                "ledger": base.ledger.model_dump(),
                "curves": [c.model_dump() for c in base.curves],
            },
            buffer,
        )
        write_atomic(path, buffer.getvalue())
