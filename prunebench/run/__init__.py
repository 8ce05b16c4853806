"""Running a protocol: the plan of jobs (`plan`), the runner that validates, shares the dense checkpoints and
runs them (`runner`), one job as named steps (`job`) and, in a job process of its own, the method's part of it
(`steps`; the process: `child`, `isolation`, `messages`, `tasks`); the runner's measurement of it (`measure`,
`reports`), the dense models (`dense`, `pretrained`) and their cache (`cache`), and provenance.

At scale: the leases that let workers share a results directory (`claims`), per-epoch checkpoints that let a
killed job resume (`progress`), several workers on one machine (`workers`), one job on several ranks under
torchrun (`ranks`), what a termination signal does (`signals`), and where a run stands (`status`)."""

from prunebench.run.cache import BaseCheckpoint, DenseCache, default_cache_dir, weights_sha256
from prunebench.run.job import JobRun
from prunebench.run.plan import Job, plan
from prunebench.run.provenance import RunProvenance, code_revision, device_name, resolve_device
from prunebench.run.runner import Runner, RunnerEvents

__all__ = [
    "BaseCheckpoint",
    "DenseCache",
    "Job",
    "JobRun",
    "RunProvenance",
    "Runner",
    "RunnerEvents",
    "code_revision",
    "default_cache_dir",
    "device_name",
    "plan",
    "resolve_device",
    "weights_sha256",
]
