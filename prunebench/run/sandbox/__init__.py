"""The sandbox: where a method's code runs, apart from the runner. A job process forked from the fork server
(`process`) runs the job's task (`tasks`) in `child`: the method's part of the job as named steps (`steps`),
its code watched for patches (`patches`), its reports sent as checked messages (`messages`). `describe` loads a
protocol's methods the same way; `inprocess` runs a job's steps in the runner's process, for debugging only."""

from prunebench.run.sandbox.describe import describe, labelled
from prunebench.run.sandbox.messages import BadMessage, Message
from prunebench.run.sandbox.process import ChildFailed, Limits, run_job, warm_up
from prunebench.run.sandbox.tasks import Environment, JobTask, MethodInfo

__all__ = [
    "BadMessage",
    "ChildFailed",
    "Environment",
    "JobTask",
    "Limits",
    "Message",
    "MethodInfo",
    "describe",
    "labelled",
    "run_job",
    "warm_up",
]
