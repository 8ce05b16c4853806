"""Scheduling a run's jobs: the plan (`plan`), the order in which a worker takes them under its leases
(`scheduler`), keeping what ran (`records`), what a record file says of its job (`state`), where a run stands
(`status`), several workers on one machine (`workers`) and what a termination signal does (`signals`)."""

from prunebench.run.scheduling.plan import plan
from prunebench.run.scheduling.records import RecordKeeper
from prunebench.run.scheduling.scheduler import Choices, Scheduler
from prunebench.run.scheduling.state import job_status

__all__ = ["Choices", "RecordKeeper", "Scheduler", "job_status", "plan"]
