"""What resumes a training stage at an epoch boundary, bit for bit: the model, the optimizer and LR scheduler,
the stage's data-order generator and every global RNG (torch's CPU and CUDA generators, Python's `random`,
NumPy's), the masks, the ledger and curves, and the method's own state (`Method.state_dict`).

`Engine.train` hands one to its `checkpoint` callback after every epoch and takes one back as `resume`; the
caller decides where it is kept (the runner: its stage checkpoints, prunebench.run.checkpoints). A stage resumed
from the state of its epoch k runs epochs k+1.. exactly as the uninterrupted stage would have.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor


@dataclass
class TrainState:
    stage: str
    epochs_done: int  # epochs of this run of the stage completed
    step: int
    model: dict[str, Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    generator: Tensor
    rng: dict[str, Any]
    masks: dict[str, Tensor] | None
    ledger: dict[str, Any]  # the engine's Ledger, all stages
    curves: list[dict[str, Any]]
    stage_epochs: dict[str, int]
    runs: int
    method: dict[str, Any]

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        torch.save(self.__dict__, buffer)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes) -> TrainState:
        """Read with `weights_only`: a state is tensors and plain values, never code."""
        return cls(**torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True))


def rng_state() -> dict[str, Any]:
    """Every global generator a stage (or a method's hook) may draw from."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()  # type: ignore[misc]
    version, internal, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": [version, list(internal), gauss],
        "numpy": [kind, torch.from_numpy(np.asarray(keys, dtype=np.int64)), pos, has_gauss, cached],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
