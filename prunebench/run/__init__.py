"""Running a protocol, as five parts, none of which holds the runner that puts them together (`runner`):

- `scheduling`: the plan of jobs, the order a worker takes them in under its leases, keeping their records,
  where a run stands, several workers on one machine, termination signals;
- `job`: one job's steps from set-up to record, in a frozen environment, and how its process's reports count;
- `dense`: the dense-model service (the cache, shipped and pretrained models, training them under leases);
- `sandbox`: the job process where a method's code runs, its tasks and checked messages;
- `measurement`: the runner's own measurement (accuracy, sparsity, cost, efficiency), verification and export.

Below them, what they share: the jobs of a grid (`jobs`), leases (`leases`), stage checkpoints
(`checkpoints`), ranks under torchrun (`ranks`), the engine's set-up (`setup`), writing a run's files (`writing`),
progress callbacks (`events`) and provenance. `execute` is the one way a run starts: from the command line, in a
`--workers` process, on each torchrun rank and in each SLURM task."""

from prunebench.run.dense import BaseCheckpoint, DenseCache, default_cache_dir, weights_sha256
from prunebench.run.events import RunnerEvents
from prunebench.run.execute import Execution, RunRequest, execute, prepare
from prunebench.run.job import JobEnvironment, JobRun
from prunebench.run.jobs import Job
from prunebench.run.provenance import RunProvenance, code_revision, device_name, resolve_device
from prunebench.run.runner import Runner
from prunebench.run.scheduling import plan

__all__ = [
    "BaseCheckpoint",
    "DenseCache",
    "Execution",
    "Job",
    "JobEnvironment",
    "JobRun",
    "RunProvenance",
    "RunRequest",
    "Runner",
    "RunnerEvents",
    "code_revision",
    "default_cache_dir",
    "device_name",
    "execute",
    "plan",
    "prepare",
    "resolve_device",
    "weights_sha256",
]
