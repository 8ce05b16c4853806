"""One job: the environment it gets from its run, frozen (`environment`), its steps from set-up to record
(`run`), how the runner counts its process's reports (`reports`), and what its record says it ran (`record`)."""

from prunebench.run.job.environment import JobEnvironment, RunResources
from prunebench.run.job.run import JobRun

__all__ = ["JobEnvironment", "JobRun", "RunResources"]
