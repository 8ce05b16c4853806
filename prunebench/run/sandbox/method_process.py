"""A job's method process: the only process that runs the method's code, apart from the engine that trains.

The runner starts it beside the job's engine process (prunebench.run.sandbox.process) from the same fork server,
confined the same way, with no data, no dense model and no way to the runner: its one connection is the bridge to
the engine process (prunebench.run.sandbox.bridge). It loads the method, then answers the engine's calls of its
hooks until the engine says the job is over; what a hook asks of the engine goes back over the bridge
(prunebench.run.sandbox.remote). Whatever a hook raises is the answer to the call: the engine fails the job with it.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import sys
import warnings
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from prunebench.engine.seeds import derive_seed
from prunebench.errors import FieldError
from prunebench.methods import Method, PruningContext, StepContext, load_method, validated_config
from prunebench.models import build_model
from prunebench.run.sandbox.bridge import Bridge, Closed, RemoteError, pack, unpack
from prunebench.run.sandbox.lifecycle import detach, flush_output, redirect_output
from prunebench.run.sandbox.messages import send
from prunebench.run.sandbox.steps import describe, not_from_scores
from prunebench.run.sandbox.tasks import Environment

if TYPE_CHECKING:
    from prunebench.run.jobs import Job

# The hooks a method may override that the engine calls across the bridge. `loss_term` and `own_parameters` are
# code inside the training step: a method with them runs in the engine's process (its records say so).
REMOTE_HOOKS = ("on_step_end", "on_epoch_end", "state_dict", "load_state_dict")


SHARED_ENGINE = "PRUNEBENCH_SHARED_ENGINE"  # =1: every method in its engine's process (to measure the difference)


def method_process_wanted(step_code: bool, *, in_process: bool) -> bool:
    """Whether a job's method runs in a process of its own: unless it has code inside the training step
    (`MethodInfo.step_code`), the job runs in the runner's process (`run --in-process`), or PRUNEBENCH_SHARED_ENGINE=1
    says so (what benchmarks/method_process.py compares). Its records say which (`provenance.method_process`)."""
    return not (step_code or in_process or os.environ.get(SHARED_ENGINE) == "1")


@dataclass(frozen=True)
class MethodTask:
    """What a job's method process gets: the job as its method may see it (Job.as_method_sees_it: its protocol,
    method, seed, sparsity) and what the model is."""

    environment: Environment
    job: Job
    base_dir: Path | None
    device: str
    num_classes: int
    input_shape: tuple[int, int, int]


class MethodHost:
    """The method of one job, answering the engine's calls (`handle`)."""

    def __init__(self, task: MethodTask, bridge: Bridge) -> None:
        self.task, self.bridge, self.job = task, bridge, task.job
        self.device = torch.device(task.device)
        self.access: Any = None
        self.method: Method[Any] | None = None
        self.error: str | None = None
        try:
            loaded = load_method(self.job.method_spec.name, base_dir=task.base_dir)
            config = validated_config(self.job.method_spec, self.job.method_index, loaded)
            self.method = loaded.instantiate(config)
        except FieldError as exc:
            self.error = f"the method cannot be loaded: {exc}"
        except BaseException as exc:  # a module that imported in one process and not in this one
            self.error = f"the method cannot be loaded: {describe(exc)}"

    def handle(self, op: str, header: dict[str, Any], tensors: dict[str, dict[str, Tensor]]) -> Any:
        """Answer one of the engine's calls; what the method raises is the answer (a RemoteError)."""
        if self.access is not None:
            self.access.stale = True  # the engine has had control: its model may have changed
        if op == "hello":
            return self.hello()
        method = self.method
        if method is None:
            raise RemoteError(self.error or "the method was not loaded")
        try:
            return self._hook(method, op, header, tensors.get("args", {}))
        except RemoteError:
            raise
        except BaseException as exc:  # SystemExit, KeyboardInterrupt from a method fail its job too
            raise RemoteError(f"{method.name}.{op} raised {describe(exc)}") from None

    def hello(self) -> tuple[dict[str, Any], dict[str, Tensor]]:
        if self.method is None:
            raise RemoteError(self.error or "the method was not loaded")
        m = self.method
        hooks = [h for h in (*REMOTE_HOOKS, "loss_term", "own_parameters") if _overrides(m, h)]
        info = {"name": str(m.name), "version": str(m.version), "taxonomy": m.taxonomy.model_dump()}
        info["dense_gradients"] = m.dense_gradients is True
        return {**info, "hook_stages": [str(s) for s in m.hook_stages], "hooks": hooks}, {}

    def _hook(self, method: Method[Any], op: str, header: dict[str, Any], args: dict[str, Tensor]) -> Any:
        if op == "prune":
            ctx = self._pruning_context(header)
            masks = method.prune(ctx)
            invert = self.job.ablation == "invert" and isinstance(masks, dict)  # (not masks: said below)
            problem = not_from_scores(ctx, masks) if invert else None
            if problem:
                raise RemoteError(problem)
            if isinstance(masks, dict) and all(isinstance(k, str) and isinstance(v, Tensor) for k, v in masks.items()):
                return {}, {k: v.detach() for k, v in masks.items()}
            return {"not_masks": type(masks).__name__}, {}
        if op == "retrain_epochs":
            asked = method.retrain_epochs(self.context)
            return {"value": asked if asked is None or isinstance(asked, (int, float)) else str(asked)[:100]}, {}
        if op in ("on_step_end", "on_epoch_end"):
            if self.access is None:  # a job resumed mid-training: no prune() made it in this process
                self._pruning_context(header)
            keys = ("stage", "epoch", "step", "steps_per_epoch")
            ctx = StepContext(
                *(header[k] for k in keys), None, self.access, lr=float(header["lr"]), epochs=int(header["epochs"])
            )
            getattr(method, op)(ctx)
            return {}, {}
        if op == "layer_scores":
            if self.access is None:
                raise RemoteError("no layer-by-layer pass of this method is asking for scores")
            return self.access.layer_scores(header, args)
        if op == "state_dict":
            packed, tensors = pack(method.state_dict())
            return {"state": packed}, tensors
        if op == "load_state_dict":
            method.load_state_dict(unpack(header["state"], args))
            return {}, {}
        raise RemoteError(f"the engine called {op!r}, which a method process does not answer")

    def _pruning_context(self, header: dict[str, Any]) -> PruningContext:
        from prunebench.run.sandbox.remote import RemoteAccess

        job, p = self.job, self.job.protocol
        model = build_model(p.model, num_classes=self.task.num_classes, input_shape=self.task.input_shape)
        self.access = RemoteAccess(
            self.bridge,
            self.handle,
            model.to(self.device),
            prunable=[str(n) for n in header["prunable"]],
            device=self.device,
            num_classes=self.task.num_classes,
            input_shape=self.task.input_shape,
        )
        self.context = PruningContext(
            self.access,
            target_sparsity=None,
            target=job.target,
            generator=torch.Generator().manual_seed(derive_seed(job.seed, job.method_key, job.sparsity)),
            scoring_examples=p.pruning.scoring_examples,
            budget=job.budget,
            invert=job.ablation == "invert",
        )
        return self.context


def _overrides(method: Method[Any], hook: str) -> bool:
    return getattr(type(method), hook) is not getattr(Method, hook)


def main(conn: Connection, payload: bytes, stdout: Connection, stderr: Connection) -> None:
    """Load the job's method and answer the engine's calls until it says the job is over (or goes away)."""
    detach()
    redirect_output(stdout, stderr)
    bridge = Bridge(conn)
    _forward_warnings(conn)
    try:
        task: MethodTask = pickle.loads(payload)  # from the runner, which this process trusts
        task.environment.enter()
        host = MethodHost(task, bridge)
        while True:
            message = bridge.next()
            if message.kind == "call" and message.header.get("op") == "end":
                break
            bridge.serve(message, host.handle)
    except Closed:
        pass  # the engine's process is gone: so is the job
    finally:
        flush_output()
        with contextlib.suppress(OSError):
            conn.close()
    sys.exit(0)


def _forward_warnings(conn: Connection) -> None:
    sent: list[str] = []

    def show(message: Any, category: Any, filename: Any, lineno: Any, file: Any = None, line: Any = None) -> None:
        text = str(message)
        if text in sent or len(sent) >= 50:
            return
        sent.append(text)
        with contextlib.suppress(Exception):
            name = getattr(category, "__name__", "UserWarning")
            send(conn, "warning", {"category": name, "message": text[:10_000]})

    warnings.showwarning = show
