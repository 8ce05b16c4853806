"""A job's reports, kept with its retraining checkpoints: a job killed while it retrains goes on from its last
epoch. The runner counts every report of the job's process as it comes (prunebench.run.job.reports) and keeps
them beside the process's own checkpoint; a later run of the job counts them again, quietly, and hands the job
process the state it goes on from."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any

from prunebench.engine import TRAINER_VERSION
from prunebench.protocol import content_hash
from prunebench.run.job.environment import JobEnvironment
from prunebench.run.job.reports import JobReports
from prunebench.run.jobs import Job
from prunebench.run.sandbox import BadMessage, Message, MethodInfo


def checkpoint_key(env: JobEnvironment, job: Job, info: MethodInfo) -> str:
    """What the job's checkpoints are kept under: the protocol, the job, its dense model, the method."""
    what = {
        "protocol": env.protocol.hash,
        "job": job.id,
        "base": env.base.sha256,
        "method": info.model_dump(mode="json"),
        "trainer": TRAINER_VERSION,
    }
    return f"job-{content_hash(what)[:32]}"


class ReportLog:
    """The reports of one job's process: counted (`reports`), and kept for its checkpoints."""

    def __init__(self, key: str, env: JobEnvironment, job: Job, fresh: Callable[[], JobReports]) -> None:
        self.key, self.env, self.job, self.fresh = key, env, job, fresh
        self.reports = fresh()
        self.messages: list[dict[str, Any]] = []

    def resume(self) -> tuple[dict[str, Any], bytes] | None:
        """The checkpoint an interrupted run of this job left: its reports are counted again (quietly), and what
        the job process needs to go on is returned for it; None: the job starts from the beginning."""
        checkpoints = self.env.checkpoints
        saved = checkpoints.load(self.key)
        checkpoints.finished(self.key)
        if saved is None:
            return None
        on_epoch, self.reports.on_epoch = self.reports.on_epoch, lambda *args: None
        try:
            for m in saved["messages"]:
                self.reports.on_message(Message(m["kind"], m["header"], m["tensors"]))
        except (BadMessage, KeyError, TypeError):
            warnings.warn(
                f"{self.job.id}: its checkpoint's reports cannot be read; starting the job over", stacklevel=2
            )
            self.reports = self.fresh()
            return None
        finally:
            self.reports.on_epoch = on_epoch
        self.messages = list(saved["messages"])
        header = saved["child"]["header"]
        self.env.events.job_resumed(self.job, int(header.get("epochs_done", 0)))
        return header, saved["child"]["state"].numpy().tobytes()

    def on_message(self, message: Message) -> None:
        """A report is counted and kept; a checkpoint is written with every report before it."""
        if message.kind == "checkpoint":
            blob = message.tensors.get("state", {}).get("blob")
            if blob is None:
                raise BadMessage("a checkpoint without its state")
            payload = {"messages": self.messages, "child": {"header": message.header, "state": blob}}
            checkpoints = self.env.checkpoints
            self.env.writer.write(checkpoints.path(self.key), functools.partial(checkpoints.save, self.key, payload))
            return
        self.reports.on_message(message)
        self.messages.append({"kind": message.kind, "header": message.header, "tensors": message.tensors})
