"""Where a result came from: the device, the code and the command, computed once per run."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata
from pathlib import Path

import torch

import prunebench
from prunebench.engine import distributed as ddp
from prunebench.errors import PrunebenchError
from prunebench.results import Provenance


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise PrunebenchError("--device cuda: no CUDA device is available (use --device cpu or auto)")
    if name not in ("cpu", "cuda"):
        raise PrunebenchError(f"--device must be auto, cpu or cuda (got {name!r})")
    return torch.device(name)


def cpu_count() -> int:
    """The CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def resolve_threads(requested: int | None, device: torch.device) -> int:
    """The CPU threads torch uses: the request (`--threads`, runtime.threads), else one on the CPU, else torch's
    default (on CUDA the CPU mostly waits)."""
    if requested is not None:
        if requested < 1:
            raise PrunebenchError(f"--threads must be at least 1 (got {requested})")
        return requested
    return 1 if device.type == "cpu" else torch.get_num_threads()


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"cpu: {platform.machine()} x{torch.get_num_threads()} threads"


def code_revision() -> str | None:
    """The git revision of the prunebench source (and `+dirty` when it has local changes)."""
    root = Path(prunebench.__file__).resolve().parent.parent
    try:
        rev = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return rev + ("+dirty" if dirty else "")


@dataclass(frozen=True)
class RunProvenance:
    """What every record of one run shares; `of_job` adds a job's times."""

    device: str
    code_revision: str | None
    command: str
    threads: int
    processes: int | None = None  # DDP ranks (torchrun), None for one
    overrides: tuple[str, ...] = ()  # the protocol's command-line overrides
    in_process: bool = False  # `run --in-process`: method code ran in the runner's process
    confined: bool = False  # the job processes ran confined by the operating system (prunebench.confine)

    @classmethod
    def now(
        cls, device: torch.device, overrides: tuple[str, ...] = (), *, in_process: bool = False, confined: bool = False
    ) -> RunProvenance:
        return cls(
            device=device_name(device),
            code_revision=code_revision(),
            command=" ".join(sys.argv),
            threads=torch.get_num_threads(),
            processes=ddp.world() if ddp.active() else None,
            overrides=overrides,
            in_process=in_process,
            confined=confined and not in_process,
        )

    def of_job(
        self, started: datetime, finished: datetime, duration_s: float, *, method_process: bool | None = None
    ) -> Provenance:
        return Provenance(
            prunebench_version=prunebench.__version__,
            python=platform.python_version(),
            torch=torch.__version__,
            torchvision=_version("torchvision"),
            platform=platform.platform(),
            device=self.device,
            threads=self.threads,
            processes=self.processes,
            code_revision=self.code_revision,
            command=self.command,
            overrides=list(self.overrides),
            started_at=started.isoformat(timespec="seconds"),
            finished_at=finished.isoformat(timespec="seconds"),
            duration_s=round(duration_s, 3),
            **({"in_process": True} if self.in_process else {}),
            confined=self.confined,
            method_process=method_process,
        )


def _version(package: str) -> str:
    """A package's version without importing it (torchvision takes a second to import)."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"
