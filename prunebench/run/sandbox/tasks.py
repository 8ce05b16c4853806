"""What the runner asks of a job process, pickled to it: describe the protocol's methods, or run one job's
method; and what the runner knows of a method (`MethodInfo`), from the description."""

from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from prunebench import confine
from prunebench.errors import FieldError, one_line
from prunebench.fairness import assumes_shared_dense_model, off_target, trains_from_scratch
from prunebench.methods import Method, Reach, TargetKind, Taxonomy, instantiate
from prunebench.methods.layout import Layout
from prunebench.models import build_model
from prunebench.protocol import MethodSpec, ModelSpec
from prunebench.results.targets import Target

if TYPE_CHECKING:
    from prunebench.engine.distributed import Group
    from prunebench.run.jobs import Job


class MethodInfo(BaseModel):
    """What the runner knows of a method: what a job process reported after loading and configuring it."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
    name: str
    version: str
    citation: str
    source: str
    taxonomy: Taxonomy
    config: dict[str, Any]
    # Whether it has code inside the training step (loss_term, own_parameters): then it runs in its engine's
    # process, and its records say so; every other method's code runs in a process of its own.
    step_code: bool = False
    # The kinds of target it can prune to (Method.targets; prunebench.results.targets).
    targets: list[TargetKind] = Field(default_factory=lambda: ["sparsity"])
    # Whether its masks come from PruningContext.masks_from_scores (Method.scored): the `invert` ablation applies.
    scored: bool = False


@dataclass(frozen=True)
class Environment:
    """What a job process replays of the runner's: its working directory, import path and torch threads; and, in a
    confined fork server, the paths it must not see (prunebench.confine)."""

    cwd: str
    sys_path: tuple[str, ...]
    threads: int
    hidden: tuple[str, ...] = ()
    visible: tuple[str, ...] = ()  # directories of the protocol and its methods' files: kept visible

    @classmethod
    def here(
        cls, base_dir: Path | None = None, methods: tuple[MethodSpec, ...] = (), files: tuple[Path, ...] = ()
    ) -> Environment:
        """`files`: what the protocol's model is built from (a local model directory), kept visible."""
        import torch

        visible = [str(base_dir)] if base_dir is not None else []
        visible += [str(path.expanduser().absolute()) for path in files]
        for spec in methods:  # a method given by path: its file's directory
            if ".py:" in spec.name:
                file = Path(spec.name.rpartition(":")[0]).expanduser()
                visible.append(str((base_dir / file if base_dir and not file.is_absolute() else file).parent))
        return cls(os.getcwd(), tuple(sys.path), torch.get_num_threads(), confine.hidden(), tuple(visible))

    def enter(self) -> None:
        import torch

        # Before any method code (nothing where the server is not confined).
        confine.enter_job(self.hidden, (self.cwd, *self.sys_path, *self.visible))
        os.chdir(self.cwd)
        sys.path[:] = list(self.sys_path)
        torch.set_num_threads(self.threads)


@dataclass(frozen=True)
class ReachCheck:
    """What the described methods are checked against before any training (`Method.reach`): the shapes of the
    protocol's prunable weights on its model (and the model, built on demand), its targets and its tolerance."""

    model: str
    shapes: dict[str, tuple[int, ...]]
    targets: tuple[Target, ...]
    tolerance: float
    spec: ModelSpec | None = None  # to build the model from, with `num_classes` and `input_shape`
    num_classes: int | None = None
    input_shape: tuple[int, int, int] | None = None
    max_training_steps: int | None = None  # (Layout.max_training_steps)
    comparison: str = "S3.2"

    def layout(self) -> Layout:
        spec, classes, shape, steps = self.spec, self.num_classes, self.input_shape, self.max_training_steps
        if spec is None or classes is None or shape is None:
            return Layout(self.shapes, shape, max_training_steps=steps)
        build = lambda: build_model(spec, num_classes=classes, input_shape=shape)  # noqa: E731
        return Layout(self.shapes, shape, build, max_training_steps=steps)


@dataclass(frozen=True)
class DescribeTask:
    environment: Environment
    methods: tuple[MethodSpec, ...]
    base_dir: Path | None
    reach: ReachCheck | None = None


def describe_in_child(task: DescribeTask) -> dict[str, Any]:
    """In a job process: load and configure every method, and check what it says it will reach (when the task
    has the shapes); the first that fails is reported with its field."""
    infos = []
    layout = task.reach.layout() if task.reach is not None else None  # one model, whatever the methods
    for i, spec in enumerate(task.methods):
        try:
            method, loaded = instantiate(spec, i, base_dir=task.base_dir)
        except FieldError as exc:
            return {"error": {"loc": list(exc.loc), "message": exc.message}}
        check = task.reach
        if check is not None and spec.sparsities is not None:  # only the targets the method runs at
            check = dataclasses.replace(check, targets=tuple(t for t in check.targets if t.value in spec.sparsities))
        refused = refusal(method, check, layout) if check is not None and layout is not None else None
        if refused is not None:
            return {"error": {"loc": ["methods", i, "name"], "message": refused}}
        infos.append(
            {
                "name": str(method.name),
                "version": str(method.version),
                "citation": str(method.citation),
                "source": loaded.source,
                "taxonomy": method.taxonomy.model_dump(),
                "config": method.config.model_dump(mode="json"),
                "step_code": any(_overrides(method, hook) for hook in ("loss_term", "own_parameters")),
                "targets": [str(kind) for kind in method.targets],
                "scored": getattr(method, "scored", False) is True,
            }
        )
    return {"methods": infos}


def refusal(method: Method[Any], check: ReachCheck, layout: Layout) -> str | None:
    """Why the protocol cannot run `method`, known before any training: a target it says it cannot prune to, or
    a sparsity it will miss by more than the tolerance (`Method.reach`); None when neither. Sparse training from
    scratch under a setup that assumes a shared dense model is not checked here: the runner refuses it for that
    (prunebench.run.validation.check_method), in a line that says why."""
    if trains_from_scratch(method.taxonomy.when, method.taxonomy.schedule) and assumes_shared_dense_model(
        check.comparison
    ):
        return None
    for target in check.targets:
        if target.kind not in method.targets:
            continue  # refused by the runner for the kind itself (prunebench.run.validation.check_method)
        try:
            reach = method.reach(layout, target)
        except ValueError as exc:
            return f"{method.name} cannot prune {check.model} to {target.label()}: {one_line(str(exc))}"
        if reach is None or target.kind != "sparsity":
            continue  # a cost target's reduction is counted from the compacted model, not stated
        valid = isinstance(reach, Reach) and isinstance(reach.sparsity, (int, float)) and 0 <= reach.sparsity <= 1
        if not valid:
            return f"{method.name}.reach returned {str(reach)[:100]}, not a Reach with a sparsity in [0, 1]"
        if off_target(reach.sparsity, target.value, check.tolerance):
            why = f": {one_line(str(reach.why))}" if reach.why else ""
            return (
                f"{method.name} prunes {reach.sparsity:.4f} of {check.model}'s prunable weights at target sparsity "
                f"{target.value:g}, off by more than pruning.tolerance {check.tolerance:g}{why}"
            )
    return None


@dataclass(frozen=True)
class JobTask:
    """What a job's process gets: the job, its data without the test split, and the dense model's states."""

    environment: Environment
    job: Job
    base_dir: Path | None
    device: str
    data: bytes  # pickled DataBundle, test split removed
    states: bytes  # pickled {init, rewind, final} states of the seed's dense model
    snapshots: bool  # send the weights with every report (test curves, analyses)
    # Retraining's last checkpoint from an earlier job process (its header, the engine's TrainState bytes): the
    # job goes on from there instead of pruning again.
    resume: tuple[dict[str, Any], bytes] | None = None
    # On several ranks: the job's process group, which this rank's job process joins (prunebench.run.ranks).
    group: Group | None = None
    limit: int | None = None  # a smoke run: batches of every stage and evaluation (`run --limit`)
    taxonomy: Taxonomy | None = None  # what the runner planned the job with (its method's description)


def _overrides(method: Any, hook: str) -> bool:
    from prunebench.methods import Method

    return getattr(type(method), hook) is not getattr(Method, hook)
