"""A protocol's methods as the runner knows them: described by a job process, never imported by the runner.

Importing a method runs its code (a module can patch anything at import time), so the runner never imports
one: a job process loads every method of the protocol, validates its config, and describes it (name, version,
taxonomy, config); the runner plans, labels and records from the description, and each job loads its method
again in its own process. That job process is confined like a job's: it sees no data set's files (also where no
runner hid them first: `prunebench validate`, `status`), nor the default cache.
"""

from __future__ import annotations

import pickle

from pydantic import ValidationError

from prunebench import confine
from prunebench.data import hidden_from_jobs
from prunebench.errors import FieldError, PrunebenchError, one_line
from prunebench.methods import label_methods, needs_labels
from prunebench.models import model_files
from prunebench.protocol import Protocol
from prunebench.run.dense import default_cache_dir
from prunebench.run.sandbox.messages import rewarn
from prunebench.run.sandbox.process import ChildFailed, Limits, run_child
from prunebench.run.sandbox.tasks import DescribeTask, Environment, MethodInfo, ReachCheck

DESCRIBE_TIMEOUT_S = 600.0


def describe(protocol: Protocol, reach: ReachCheck | None = None) -> list[MethodInfo]:
    """Every method of the protocol, described by a job process; a method that cannot be loaded or configured,
    or (with `reach`, the shapes of the protocol's prunable weights) one that says it cannot reach a target of
    the protocol within its tolerance (`Method.reach`), raises ProtocolError naming its field."""
    base_dir = protocol.source.parent if protocol.source else None
    # A runner hid these, its results and its cache already; `validate` and `status` have only the default cache.
    confine.hide(*hidden_from_jobs(protocol.data), default_cache_dir())
    environment = Environment.here(base_dir, tuple(protocol.methods), model_files(protocol.model))
    task = DescribeTask(environment, tuple(protocol.methods), base_dir, reach)
    try:
        result = run_child("describe", pickle.dumps(task), rewarn, Limits(timeout=DESCRIBE_TIMEOUT_S))
    except ChildFailed as exc:
        raise PrunebenchError(f"loading the protocol's methods failed: {exc}") from None
    if result.kind == "failed":
        raise PrunebenchError(f"loading the protocol's methods failed: {str(result.header.get('reason'))[:500]}")
    error, infos = result.header.get("error"), result.header.get("methods")
    if isinstance(error, dict) and isinstance(error.get("loc"), list):
        raise protocol.locate(FieldError(tuple(error["loc"]), one_line(str(error.get("message")))))
    try:
        described = [MethodInfo.model_validate(info) for info in infos]  # type: ignore[union-attr]
    except (ValidationError, TypeError) as exc:
        raise PrunebenchError(f"a method's description is not valid: {one_line(str(exc))}") from None
    if len(described) != len(protocol.methods):
        raise PrunebenchError("the job process described another number of methods than the protocol has")
    return described


def labelled(protocol: Protocol) -> Protocol:
    """The protocol with every method given by path labelled by its registered name (see label_methods)."""
    if not needs_labels(protocol):
        return protocol
    return label_methods(protocol, [info.name for info in describe(protocol)])
