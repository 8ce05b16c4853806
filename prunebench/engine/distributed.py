"""One stage on several processes (torchrun): what the engine needs of torch.distributed, in one place.

A stage trains under DistributedDataParallel when a process group is initialized: every rank draws the same
global batches from the same seeded generator (so the data order, the augmentation and the ledger are those of one
process) and trains on its share of each (`shard`: every world-th example, from its rank); the loss of a share is
scaled so that DDP's average of the gradients is the gradient of the global batch's mean loss. Evaluation sums
each rank's share across ranks. Masks are enforced on every rank after every step and the weights are checked
to be identical across ranks after every epoch (`same_everywhere`).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world() -> int:
    return dist.get_world_size() if active() else 1


def shard(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """This rank's share of a global batch."""
    if not active():
        return x, y
    return x[rank() :: world()], y[rank() :: world()]


def all_sum(value: Tensor) -> Tensor:
    """The sum over ranks (on the CPU for gloo; in place on a copy)."""
    if not active():
        return value
    out = value.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


def broadcast(obj: Any) -> Any:
    """Rank 0's `obj` on every rank."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(obj: Any) -> list[Any]:
    """Every rank's `obj`, in rank order, on every rank."""
    if not active():
        return [obj]
    out: list[Any] = [None] * world()
    dist.all_gather_object(out, obj)
    return out


def same_everywhere(model: nn.Module, masks: Mapping[str, Tensor] | None = None) -> bool:
    """Whether every rank holds the very same weights and buffers, and masks (a digest of them, compared across
    ranks): masks that move while training (dynamic sparse training) must move alike on every rank."""
    if not active():
        return True
    digest = hashlib.sha256()
    for name, value in [*model.state_dict().items(), *(masks or {}).items()]:
        digest.update(name.encode())
        digest.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return len(set(gather(digest.hexdigest()))) == 1


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """The model as DDP trains it (the module itself in one process)."""
    if not active():
        return model
    ids = [device.index] if device.type == "cuda" and device.index is not None else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)  # buffers: rank 0's, at every forward


def sync_buffers(model: nn.Module) -> None:
    """Rank 0's buffers (BatchNorm statistics) on every rank, as DDP makes them at every forward pass: after an
    epoch's last step every rank has updated its own from its share."""
    if active():
        for buffer in model.buffers():
            dist.broadcast(buffer.data, src=0)


@dataclass(frozen=True)
class Group:
    """How a job process joins the job's process group: its rank among the runners' and where to meet."""

    rank: int
    world: int
    init_method: str
    backend: str

    def join(self) -> None:
        from datetime import timedelta

        dist.init_process_group(
            self.backend,
            init_method=self.init_method,
            rank=self.rank,
            world_size=self.world,
            timeout=timedelta(seconds=float(os.environ.get("PRUNEBENCH_DIST_TIMEOUT", 600))),
        )
        if self.backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))

    @staticmethod
    def leave() -> None:
        if dist.is_initialized():
            dist.destroy_process_group()
