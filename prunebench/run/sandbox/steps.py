"""The part of a job that runs the method's code, in the job's process, as named steps read top to bottom: set
up, prune, apply the retraining regime, retrain; then hand the final weights back.

Everything is measured by the runner, in its own process, from what this returns: the final weights (the
protocol's architecture, nothing more) and the violations the engine's seal saw. Every step that runs a
method's code turns what it raises into a `JobFailed` naming the hook.
"""

from __future__ import annotations

import contextlib
import json
import math
import pickle
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import Tensor

from prunebench.data import DataBundle
from prunebench.engine import EngineObserver, EnginePruningAccess, EpochReport, Snapshot, TrainState, derive_seed
from prunebench.errors import FieldError, JobFailed
from prunebench.fairness import allowance, uses_dense_model
from prunebench.masks import Masks, shuffle_within_layers
from prunebench.methods import Method, PruningContext, Taxonomy, load_method, validated_config
from prunebench.protocol import RecipeError, TrainingSpec
from prunebench.run.sandbox.bridge import Bridge, Closed, RemoteError
from prunebench.run.sandbox.messages import Message, send
from prunebench.run.sandbox.patches import CodeInventory
from prunebench.run.sandbox.proxy import EngineServer, remote_method
from prunebench.run.sandbox.tasks import JobTask
from prunebench.run.setup import build_engine, fresh_model, reinitialized, seeded_model

T = TypeVar("T")


class Reporter(EngineObserver):
    """Sends the engine's reports to the runner as they happen."""

    def __init__(self, conn: Connection, snapshots: bool) -> None:
        self.conn = conn
        self.wants_snapshots = snapshots

    def stage_started(self, stage: str, spec: TrainingSpec, snapshot: Snapshot | None) -> None:
        send(self.conn, "stage", {"stage": stage, "spec": spec.model_dump(mode="json")}, _groups(snapshot))

    def scored(self, examples: int, flops: float) -> None:
        send(self.conn, "scored", {"examples": examples, "flops": flops})

    def reconstructed(self, names: list[str]) -> None:
        send(self.conn, "reconstructed", {"names": [str(name) for name in names]})

    def epoch_ended(self, report: EpochReport, snapshot: Snapshot | None) -> None:
        header = {
            "stage": report.stage,
            "total_epochs": report.total_epochs,
            "record": report.record.model_dump(mode="json"),
            "step_examples": report.step_examples,
            "step_flops": report.step_flops,
        }
        send(self.conn, "epoch", header, _groups(snapshot))


def _groups(snapshot: Snapshot | None) -> dict[str, dict[str, Tensor]] | None:
    if snapshot is None:
        return None
    return {"state": snapshot.state, "weights": snapshot.weights, "masks": snapshot.masks}


class MethodSteps:
    """The job's steps in its engine process. With `method_conn`, the method's code runs in a process of its own
    (prunebench.run.sandbox.method_process) and its hooks are calls across that connection; without, it runs here,
    beside the engine (a method with code inside the training step, or `run --in-process`)."""

    def __init__(
        self, task: JobTask, conn: Connection, inventory: CodeInventory, method_conn: Connection | None = None
    ) -> None:
        self.task = task
        self.method_conn = method_conn
        self.inventory = inventory
        self.violations: list[str] = []
        self.job = task.job
        self.protocol = task.job.protocol
        self.reporter = Reporter(conn, task.snapshots)
        self.asked: int | None = None

    def run(self) -> tuple[dict[str, Any], dict[str, dict[str, Tensor]]]:
        try:
            if self.task.group is not None:
                self.task.group.join()  # before the engine: it trains under DDP when a group is there
            self.set_up()
            if self.task.resume is not None:
                self.resume(*self.task.resume)
            else:
                masks = self.prune()
                self.apply_regime(masks)
            self.retrain()
            self.end()
        except JobFailed as exc:
            seen = self.engine.seal.violations + self.violations if hasattr(self, "engine") else self.violations
            raise JobFailed(f"{exc}; before that: {'; '.join(seen)}" if seen else str(exc)) from None
        return self.result()

    # ---- the steps ------------------------------------------------------------------------------------
    def set_up(self) -> None:
        """A fresh instance of the method; the job's model from its seed's dense checkpoint (its initialization
        for methods that prune before training), its engine and pruning context."""
        job, p, task = self.job, self.protocol, self.task
        self.method: Method[Any] = self._remote_method() if self.method_conn is not None else self._local_method()
        self.regime = self.method.taxonomy.retraining
        self.data: DataBundle = pickle.loads(task.data)
        states: dict[str, dict[str, Tensor]] = pickle.loads(task.states)
        model = seeded_model(p, self.data, job.seed)
        model.load_state_dict(states["init" if self.method.taxonomy.when == "before_training" else "final"])
        engine = build_engine(
            p,
            model,
            self.data,
            device=torch.device(task.device),
            seed=job.seed,
            saved=states,
            observer=self.reporter,
            whole_filters=self.method.taxonomy.granularity == "filter",
            limit=task.limit,
        )
        engine.method = self.method
        engine.allowance = allowance(
            p,
            job.stated_budget,
            engine.dense_forward_flops,
            self.data.train.num_examples,
            dense_model=uses_dense_model(self.method.taxonomy.when),
        )
        # The method's code in a process of its own: nothing of it runs here for the seal to watch.
        engine.seal.enabled = self.method_conn is None
        self.engine = engine
        self.ctx = PruningContext(
            EnginePruningAccess(engine),
            target_sparsity=None,
            target=job.target,
            generator=torch.Generator().manual_seed(derive_seed(job.seed, job.method_key, job.sparsity)),
            scoring_examples=p.pruning.scoring_examples,
            budget=job.budget,
            invert=job.ablation == "invert",
        )

    def _local_method(self) -> Method[Any]:
        """The job's method, loaded and configured in this process."""
        job, spec = self.job, self.job.method_spec
        try:
            loaded = load_method(spec.name, base_dir=self.task.base_dir)
            config = validated_config(spec, job.method_index, loaded)
        except FieldError as exc:
            raise JobFailed(f"the method cannot be loaded: {exc}") from None
        except Exception as exc:  # a module that imported in one process and not in this one
            raise JobFailed(f"the method cannot be loaded: {describe(exc)}") from None
        self._check_code("when its module was imported")
        return self._call("__init__", lambda: loaded.instantiate(config))

    def _remote_method(self) -> Method[Any]:
        """The job's method in its own process, which has loaded it (or says why it could not), as a stand-in whose
        hooks are calls to that process (prunebench.run.sandbox.proxy). Its taxonomy is the one the runner planned
        the job with."""
        assert self.method_conn is not None
        bridge = Bridge(self.method_conn, on_other=self._relay, peer="the method's process")
        try:
            hello, _ = bridge.call("hello", EngineServer(None))
        except RemoteError as exc:
            raise JobFailed(exc.reason) from None
        except Closed:
            raise JobFailed("the method's process ended before it loaded the method") from None
        planned = self.task.taxonomy
        if planned is None or Taxonomy.model_validate(hello.get("taxonomy")) != planned:
            raise JobFailed("the method's taxonomy in its job differs from the one it was planned with")
        if {"loss_term", "own_parameters"} & set(hello.get("hooks", [])):
            raise JobFailed("the method has code inside the training step (loss_term, own_parameters) in its job only")
        return remote_method(bridge, hello, planned)

    def _relay(self, message: Message) -> None:
        """A warning the method's process raised, on to the runner as the engine's own are."""
        if message.kind == "warning":
            send(self.reporter.conn, "warning", message.header)

    def end(self) -> None:
        """Tell the method's process the job is over (it exits); nothing is waited for."""
        if self.method_conn is not None:
            with contextlib.suppress(OSError, ValueError):
                send(self.method_conn, "call", {"op": "end"})

    def prune(self) -> Masks:
        """The method scores and chooses, under the engine's seal: weights it changes itself (outside training
        or rewinding through the context) are undone, except where its masks prune them anyway."""
        engine = self.engine
        engine.seal.seal()
        masks = self._call("prune", lambda: self.method.prune(self.ctx))
        exempt = {}
        if isinstance(masks, dict):
            for name, param in engine.masks.params.items():
                keep = masks.get(name)
                if isinstance(keep, Tensor) and keep.shape == param.shape:
                    exempt[id(param)] = keep.to(param.device) != 0
        engine.seal.verify("prune()", exempt=exempt)
        self._check_code("in prune()")
        if self.job.ablation == "invert" and self.method_conn is None and isinstance(masks, dict):
            problem = not_from_scores(self.ctx, masks)
            if problem:
                raise JobFailed(problem)
        return masks

    def apply_regime(self, masks: Masks) -> None:
        """Enforce the final masks, put the weights retraining starts from in place, and fix its recipe."""
        job, engine = self.job, self.engine
        engine.set_masks(self.shuffled(masks) if job.ablation == "layer_shuffle" else masks)
        if self.regime == "weight_rewinding":
            engine.load_weights(engine.saved["rewind"])
        elif self.regime == "scratch":
            torch.manual_seed(derive_seed(job.seed, job.method_key, job.sparsity, "scratch"))
            engine.load_weights(fresh_model(self.protocol, self.data).state_dict())
        if job.ablation == "reinit":
            engine.load_weights(reinitialized(self.protocol, self.data, job.seed))
        asked = self._call(
            "retrain_epochs",
            lambda: engine.call_method("retrain_epochs()", lambda: self.method.retrain_epochs(self.ctx)),
        )
        if asked is not None and (isinstance(asked, bool) or not isinstance(asked, int) or asked < 0):
            raise JobFailed(f"{self.method.name}.retrain_epochs returned {str(asked)[:100]}, not a number of epochs")
        self.asked = asked
        try:
            self.recipe_name, self.retrain_spec = self.protocol.retraining_recipe(self.regime, asked)
        except RecipeError as exc:
            raise JobFailed(f"no retraining recipe for {self.method.name}: {exc}") from None
        # From here the model is the protocol's architecture: a parametrization left on it is a violation.
        engine.seal.wrappers_allowed = False
        engine.seal.verify("prune() (left on for retraining)")

    def shuffled(self, masks: Masks) -> Masks:
        """The layer_shuffle ablation of the method's masks (prunebench.protocol.sanity): each prunable tensor's kept
        positions moved uniformly at random within it, drawn from the job's seed and target (SHUFFLE_DRAW)."""
        try:
            valid = self.engine.masks.validate(masks)
        except ValueError:
            return masks  # set_masks fails the job, saying why
        draw = derive_seed(self.job.seed, SHUFFLE_DRAW, self.job.sparsity)
        return shuffle_within_layers(valid, torch.Generator().manual_seed(draw))

    def resume(self, header: dict[str, Any], blob: bytes) -> None:
        """Instead of pruning: the masks, recipe and findings of the earlier job process whose retraining was
        interrupted, and the engine's state after its last completed epoch (the method's own state with it)."""
        engine = self.engine
        self.resume_state: TrainState | None = TrainState.from_bytes(blob)
        engine.seal.seal()
        if self.resume_state.masks is not None:
            engine.set_masks(self.resume_state.masks)
        self.asked = header["asked"]
        self.recipe_name, self.retrain_spec = self.protocol.retraining_recipe(self.regime, self.asked)
        self.violations = list(header["violations"])
        engine.seal.violations.extend(header["seal_violations"])
        engine.notes = dict(header["notes"])
        engine.seal.wrappers_allowed = False

    def checkpoint(self, state: TrainState) -> None:
        """Retraining's state after an epoch, to the runner, which keeps it in the cache."""
        header = {
            "asked": self.asked,
            "violations": self.violations,
            "seal_violations": self.engine.seal.violations,
            "notes": _jsonable(self.engine.notes),
            "epochs_done": state.epochs_done,
        }
        blob = torch.frombuffer(bytearray(state.to_bytes()), dtype=torch.uint8)
        send(self.reporter.conn, "checkpoint", header, {"state": {"blob": blob}})

    def retrain(self) -> None:
        if self.job.ablation is not None:  # the ablation's masks stay as the engine made them (no mask moves)
            self.engine.frozen_masks = (
                f"the method changed its masks while retraining a {self.job.ablation} sanity ablation, whose masks "
                "are the engine's"
            )
        try:
            self.engine.train(
                self.retrain_spec,
                stage="retrain",
                checkpoint=self.checkpoint if self.task.group is None or self.task.group.rank == 0 else None,
                resume=getattr(self, "resume_state", None),
                checkpoint_every=self.protocol.runtime.checkpoint_every,
            )
        except JobFailed:
            raise
        except BaseException as exc:  # a hook's SystemExit fails the job, named
            raise JobFailed(f"retraining raised {describe(exc)}") from None
        if self.engine.failure:
            raise JobFailed(self.engine.failure)
        self._check_code("while retraining")

    def result(self) -> tuple[dict[str, Any], dict[str, dict[str, Tensor]]]:
        method = self.method
        header = {
            "taxonomy": method.taxonomy.model_dump(),
            "asked_epochs": self.asked,
            "notes": _jsonable(self.engine.notes),
            "violations": self.engine.seal.violations + self.violations,
        }
        final = {k: v.detach().cpu().clone() for k, v in self.engine.model.state_dict().items()}
        return header, {"final": final}

    # ---- helpers --------------------------------------------------------------------------------------
    def _check_code(self, where: str) -> None:
        if self.method_conn is None:  # (the method's code in its own process cannot patch this one's)
            self.violations.extend(self.inventory.check(where))

    def _call(self, hook: str, call: Callable[[], T]) -> T:
        """Run a method's hook; whatever it raises fails the job, named; so does a failure of the engine that
        the method caught."""
        try:
            result = call()
        except JobFailed:
            raise
        except BaseException as exc:
            raise JobFailed(f"{self.method_name}.{hook} raised {describe(exc)}") from None
        failure = getattr(getattr(self, "engine", None), "failure", None)
        if failure:
            raise JobFailed(failure)
        return result

    @property
    def method_name(self) -> str:
        method = getattr(self, "method", None)
        return str(method.name) if method is not None else self.job.method_key


# The layer_shuffle ablation's permutations are drawn from derive_seed(seed, SHUFFLE_DRAW, target): the same draws
# for every method at a seed and target, and those random_shuffled (baselines/random_pruning.py) always made under
# its registered name, so that its masks are this ablation of its source, bit for bit, for a source that draws
# nothing from the job's generator (global magnitude).
SHUFFLE_DRAW = "random_shuffled"


def not_from_scores(ctx: PruningContext, masks: Any) -> str | None:
    """Why the masks of an `invert` ablation's job are not what the context's masks_from_scores returned last (the
    only masks that ablation inverts; Method.scored says they are), or None when they are."""
    last = ctx.last_from_scores
    same = (
        last is not None
        and isinstance(masks, dict)
        and set(masks) == set(last)
        and all(isinstance(m, Tensor) and torch.equal(m.to(last[k].device) != 0, last[k]) for k, m in masks.items())
    )
    if same:
        return None
    return "the invert sanity ablation: the method's masks are not what masks_from_scores returned last (Method.scored)"


def describe(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
    return f"{exc.__class__.__name__}: {exc}{where}"


def _jsonable(notes: dict[str, Any]) -> dict[str, Any]:
    """A method's notes as JSON values (a one-element tensor as its number, anything else as its text),
    so that a note can never break the result record."""

    def fallback(value: Any) -> Any:
        return value.item() if isinstance(value, torch.Tensor) and value.numel() == 1 else str(value)

    def finite(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return str(value)
        if isinstance(value, list):
            return [finite(v) for v in value]
        if isinstance(value, dict):
            return {k: finite(v) for k, v in value.items()}
        return value

    return finite(json.loads(json.dumps(notes, default=fallback)))
