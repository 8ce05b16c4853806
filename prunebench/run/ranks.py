"""A run on several processes under torchrun (`torchrun --nproc-per-node N -m prunebench run P`, or `prunebench
run P --nproc N`): the runners of the ranks form one process group, rank 0 decides (what to run, claims, where a
dense model comes from) and writes (records, cache, checkpoints), and every rank trains each stage with
DistributedDataParallel: dense base training here, a job's stages in its job processes, which form a process
group of their own per job (`job_group`)."""

from __future__ import annotations

import os
import socket

import torch
import torch.distributed as dist

from prunebench.engine.distributed import Group
from prunebench.errors import PrunebenchError


def launched() -> bool:
    """Whether this process is one rank of several (torchrun's environment)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def join_runners(device: torch.device) -> torch.device:
    """Join the runners' process group (torchrun's env://) when there are several ranks; the device of this rank
    (on CUDA: the GPU of its local rank)."""
    if not launched():
        return device
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if local >= torch.cuda.device_count():
            raise PrunebenchError(
                f"rank {local} of this node has no GPU: {torch.cuda.device_count()} visible (--nproc too large)"
            )
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def leave_runners() -> None:
    """Leave the runners' group once every rank is done (a group left to the interpreter's exit can abort it)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def job_group(device: torch.device) -> Group | None:
    """Where the job processes of one job meet (a fresh port, chosen by rank 0 and told to every rank); None on one
    rank."""
    from prunebench.engine import distributed as ddp

    if not ddp.active():
        return None
    address = os.environ.get("MASTER_ADDR", "127.0.0.1")
    port = None
    if ddp.rank() == 0:
        with socket.socket() as s:
            s.bind(("", 0))
            port = s.getsockname()[1]
    port = ddp.broadcast(port)
    return Group(ddp.rank(), ddp.world(), f"tcp://{address}:{port}", "nccl" if device.type == "cuda" else "gloo")


def check_nproc(nproc: int, device: str) -> None:
    """`--nproc`: at least 1, and no more than the GPUs (on CUDA) or the CPU cores (on the CPU)."""
    from prunebench.run.provenance import cpu_count

    if nproc < 1:
        raise PrunebenchError(f"--nproc must be at least 1 (got {nproc})")
    gpus = torch.cuda.device_count() if torch.cuda.is_available() and device in ("auto", "cuda") else 0
    if gpus and nproc > gpus:
        raise PrunebenchError(f"--nproc {nproc}: this machine has {gpus} GPU(s)")
    if not gpus and nproc > cpu_count():
        raise PrunebenchError(f"--nproc {nproc}: this machine has {cpu_count()} CPU core(s), and no GPU")
