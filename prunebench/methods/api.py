"""The method contract: a name, a pydantic config of hyperparameters, a taxonomy, and hooks the engine calls.

A method only scores and chooses. The engine owns every training loop, applies the masks a method returns,
counts the budget and measures sparsity from the weights.

    class MyConfig(MethodConfig):
        alpha: float = Field(0.5, description="...")

    class MyMethod(Method[MyConfig]):
        name = "my_method"
        citation = "Me et al. 2026"
        taxonomy = Taxonomy(when="after_training", granularity="unstructured", scope="global",
                            schedule="one_shot", retraining="fine_tune")

        def prune(self, ctx: PruningContext) -> Masks:
            scores = {name: w.abs() ** self.config.alpha for name, w in ctx.weights().items()}
            return ctx.masks_from_scores(scores, scope="global")

`Method[MyConfig]` makes `self.config` a `MyConfig` and `MyMethod.Config` that class; a nested
`class Config(MethodConfig)` inside the method works as well.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict
from torch import Tensor, nn

from prunebench.masks import Masks
from prunebench.methods.context import PruningContext, StepContext
from prunebench.results.targets import Target, TargetKind
from prunebench.results.taxonomy import Taxonomy

# The taxonomy (`Taxonomy` and its vocabulary) is declared once, in prunebench.results.taxonomy: the result
# record keeps it too. A method imports it from prunebench.methods.
HookStage = Literal["pruning", "retrain"]


class MethodConfig(BaseModel):
    """Base of every method's hyperparameters: strict, so a misspelled key is an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)


C = TypeVar("C", bound=MethodConfig)


@dataclass(frozen=True)
class Reach:
    """What a method will prune to at a target, known from the shapes of the prunable weights alone
    (`Method.reach`): the fraction of all prunable weights it will prune, and, where that is off the target, why
    (one sentence, for the error that names the method)."""

    sparsity: float
    why: str = ""


class Method(Generic[C]):
    """Base class of a pruning method. Subclasses set the class attributes and implement `prune`.

    The class's taxonomy is its default. A method whose taxonomy follows a hyperparameter says so in
    `taxonomy_from_config` (e.g. `{"scope": "scope"}`), and every instance's taxonomy takes those fields from its
    config; one whose taxonomy follows something else (another method it builds on) assigns `self.taxonomy` in
    `__init__`. The runner and the result record read the instance's. The runner makes a fresh instance for every
    job, so state kept on `self` never outlives the job."""

    name: ClassVar[str]
    version: ClassVar[str] = "1.0"
    citation: ClassVar[str] = ""
    taxonomy: Taxonomy  # set on the class; an instance may refine it (see above)
    # Taxonomy fields that follow a hyperparameter: {taxonomy field: config field}.
    taxonomy_from_config: ClassVar[Mapping[str, str]] = {}
    Config: ClassVar[type[MethodConfig]] = MethodConfig
    # The kinds of target the method can prune to (prunebench.results.targets): a protocol whose targets are of
    # another kind refuses it before any training.
    targets: ClassVar[tuple[TargetKind, ...]] = ("sparsity",)
    # The training stages whose steps call loss_term, on_step_end and on_epoch_end, and whose optimizer leaves
    # own_parameters out: a method that hooks only its own pruning stage says ("pruning",).
    hook_stages: ClassVar[tuple[HookStage, ...]] = ("pruning", "retrain")
    # Whether on_step_end reads the dense gradient of the prunable weights (`StepContext.dense_gradients`, RigL's
    # growth criterion). At the steps where the hook is called (its cadence: `StepContext.next_call_at`) the engine
    # keeps it and counts its cost: a weight gradient of the dense layers in place of the sparse one.
    dense_gradients: ClassVar[bool] = False
    # Whether its final masks are what `PruningContext.masks_from_scores` returned for its scores (the last call):
    # then the `invert` sanity ablation applies, and in its jobs the context keeps the lowest scores instead
    # (prunebench.protocol.sanity). A job of that ablation whose masks are not that call's fails. An instance whose
    # config decides it sets its own in `__init__`.
    scored: bool = False
    config: C

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "Config" not in cls.__dict__:
            # Its own generic bases only: a subclass of a method inherits that method's Config, not its base's.
            for base in cls.__dict__.get("__orig_bases__", ()):
                origin = typing.get_origin(base)
                if isinstance(origin, type) and issubclass(origin, Method):
                    (arg,) = typing.get_args(base)
                    if isinstance(arg, type) and issubclass(arg, MethodConfig):
                        cls.Config = arg
        unknown = [kind for kind in cls.targets if kind not in typing.get_args(TargetKind)]
        if unknown or not cls.targets:
            raise TypeError(
                f"{cls.__name__}.targets: {unknown or 'empty'}; the kinds are {', '.join(typing.get_args(TargetKind))}"
            )
        # A misspelled field fails here, where the class is defined, not in its first job.
        for field, hyperparameter in cls.taxonomy_from_config.items():
            if field not in Taxonomy.model_fields or hyperparameter not in cls.Config.model_fields:
                raise TypeError(
                    f"{cls.__name__}.taxonomy_from_config maps {field!r} to {hyperparameter!r}: the keys are taxonomy "
                    f"fields ({', '.join(Taxonomy.model_fields)}), the values fields of {cls.Config.__name__}"
                )

    def __init__(self, config: C | None = None) -> None:
        self.config = config if config is not None else self.Config()  # type: ignore[assignment]
        if self.taxonomy_from_config:
            follows = {field: getattr(self.config, name) for field, name in self.taxonomy_from_config.items()}
            # Validated: a hyperparameter's value must be a word of the taxonomy's vocabulary.
            self.taxonomy = Taxonomy.model_validate({**type(self).taxonomy.model_dump(), **follows})

    def prune(self, ctx: PruningContext) -> Masks:
        """Return keep-masks (bool, True = kept) for every prunable weight at ctx.target: its weight sparsity
        (ctx.target_sparsity), or, for a method whose `targets` say so, the compacted model's FLOPs or parameter
        reduction."""
        raise NotImplementedError

    def reach(self, shapes: Mapping[str, tuple[int, ...]], target: Target) -> Reach | None:
        """Before any training: what this method will prune to at `target`, from the shapes of the protocol's
        prunable weights alone (by parameter name, in execution order; no values, no data; `shapes` is a
        prunebench.methods.Layout, whose `model()` also builds the protocol's model fresh, for a reach that
        follows the model's structure, such as coupled channels under a cap). A method whose
        structure decides its sparsity (whole filters, N:M groups) returns it: the protocol is refused when that
        misses the target by more than pruning.tolerance, in one line naming the method, instead of a violation
        after training. Raise ValueError (one sentence) for a target it cannot prune to at all. None (the
        default): only the engine's measurement after pruning judges it. For a cost target (a FLOPs or
        parameter reduction) only a ValueError counts: the reduction is counted from the compacted model. Called in
        a job process when the protocol is validated, once for each target of a kind the method declares."""
        return None

    def retrain_epochs(self, ctx: PruningContext) -> int | None:
        """Retraining epochs this method asks for, or None for the protocol's. Called after pruning, with
        the final masks applied. The runner runs them (the regime's recipe stretched in proportion), the
        result records them, and the audit judges them: a violation under S3.1 and above, counted against
        the total under SX-A / SX-B (e.g. Scratch-B: as many epochs as the dense model's FLOPs allow)."""
        return None

    def own_parameters(self) -> list[Tensor]:
        """Parameters the method added to the model and steps itself (e.g. mask scores with their own
        optimizer): the engine's optimizer, weight decay and gradient clipping leave them out. Soft masks
        declared to the engine (`SoftMasks`, prunebench.methods.regularizers) need none of this code."""
        return []

    def state_dict(self) -> dict[str, Any]:
        """What the method keeps between the epochs of a stage its hooks run in (counters, schedules, its own
        parameters' values), saved with every epoch's checkpoint; tensors and plain values only. Empty by default:
        a method that keeps no state across epochs needs nothing here."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take back what `state_dict` returned, when a stage resumes from its checkpoint."""

    # Optional hooks, called in the stages of `hook_stages`.
    def loss_term(self, model: nn.Module) -> Tensor | None:
        """A term added to the training loss (a regularizer), or None. Method code in the engine's step: where a
        declared regularizer (`BatchNormL1`, `GroupLasso`, `SoftMasks`; `PruningContext.train(regularizers=...)`)
        says it, the engine computes it instead."""
        return None

    def on_step_end(self, ctx: StepContext) -> None:
        """After each optimizer step (and after the engine re-applied the masks)."""

    def on_epoch_end(self, ctx: StepContext) -> None:
        """After each training epoch."""
