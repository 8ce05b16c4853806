"""The method as a job's engine process sees it when the method's code runs in a process of its own.

`remote_method` makes a `Method` whose hooks are calls across the bridge (prunebench.run.sandbox.bridge) to the
method process (prunebench.run.sandbox.method_process), so the engine and the job's steps call it as they would
call the method itself. While a hook runs there, the method's calls of the engine are served here by
`EngineServer`, through the same access objects (prunebench.engine.access) a method in this process would hold:
each is the engine's own operation, counted and checked where the engine runs. Nothing the method sends is
unpickled; masks, weights and specs are validated by the operations they go to.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from pydantic import ValidationError
from torch import Tensor

from prunebench.engine.access import EnginePruningAccess, EngineStepAccess
from prunebench.errors import JobFailed
from prunebench.masks import Masks
from prunebench.methods import Layerwise, Method, MethodConfig, PruningContext, StepContext, Taxonomy
from prunebench.methods.regularizers import validate_regularizers
from prunebench.protocol import TrainingSpec
from prunebench.run.sandbox.bridge import Bridge, Closed, RemoteError, pack, unpack

Header = dict[str, Any]
Args = dict[str, Tensor]
Reply = tuple[Header, Args]
# What a training hook may ask.
STEP_OPS = frozenset({"state", "masks", "weights", "set_masks", "next_call_at", "dense_gradients"})
# What a score may ask while the engine's layer-by-layer pass waits for it: reads of the model as the pass left it.
SCORE_OPS = frozenset({"state", "masks", "weights"})


class EngineServer:
    """Serves the method process's calls with one access object: a hook's (`EngineStepAccess`) or prune's."""

    def __init__(
        self, access: EngineStepAccess | None, bridge: Bridge | None = None, only: frozenset[str] | None = None
    ) -> None:
        self.access = access  # None: nothing may be asked (a method's state_dict, load_state_dict)
        self.bridge = bridge  # to the method process: for the scores a layer-by-layer pass asks of it
        self.only = only  # the operations that may be asked (None: all of the access's)
        self.streams: dict[int, Iterator[tuple[Tensor, Tensor]]] = {}

    def __call__(
        self, op: str, header: dict[str, Any], tensors: dict[str, dict[str, Tensor]]
    ) -> tuple[dict[str, Any], dict[str, Tensor]]:
        if self.access is None:
            raise RemoteError(f"{op} is not available here: a method's state_dict and load_state_dict ask nothing")
        if self.only is not None and op not in self.only:
            raise RemoteError(f"{op} is not available to a layer's score (only {', '.join(sorted(self.only))})")
        if op not in STEP_OPS and not isinstance(self.access, EnginePruningAccess):
            raise RemoteError(f"{op} is not available to a training hook (only {', '.join(sorted(STEP_OPS))})")
        serve = getattr(self, f"_{op}", None)
        if serve is None:
            raise RemoteError(f"the engine has no operation {op!r}")
        try:
            result: tuple[dict[str, Any], dict[str, Tensor]] = serve(header, tensors.get("args", {}))
            return result
        except JobFailed as exc:  # the engine failed the job (it keeps the reason): the method may not go on
            raise RemoteError(str(exc), fatal=True) from None
        except (KeyError, ValueError, TypeError, RuntimeError, ValidationError) as exc:
            raise RemoteError(f"{op}: {exc.__class__.__name__}: {exc}"[:2000]) from None

    @property
    def pruning(self) -> EnginePruningAccess:
        assert isinstance(self.access, EnginePruningAccess)
        return self.access

    # ---- what a training hook may ask -------------------------------------------------------------------------
    @property
    def step(self) -> EngineStepAccess:
        assert self.access is not None
        return self.access

    def _state(self, header: Header, args: Args) -> Reply:
        return {}, dict(self.step.model.state_dict())

    def _masks(self, header: Header, args: Args) -> Reply:
        return {}, self.step.masks()

    def _weights(self, header: Header, args: Args) -> Reply:
        return {}, {k: v.detach() for k, v in self.step.weights().items()}

    def _set_masks(self, header: Header, args: Args) -> Reply:
        self.step.set_masks(args)
        return {}, {}

    def _next_call_at(self, header: Header, args: Args) -> Reply:
        step = header.get("step")
        self.step.next_call_at(None if step is None else _count(header, "step"))
        return {}, {}

    def _dense_gradients(self, header: Header, args: Args) -> Reply:
        return {}, self.step.dense_gradients()

    # ---- what prune may ask besides -----------------------------------------------------------------------------
    def _layer_macs(self, header: Header, args: Args) -> Reply:
        return {"macs": self.pruning.layer_macs()}, {}

    def _forward_flops(self, header: Header, args: Args) -> Reply:
        return {"flops": self.pruning.forward_flops(dense=bool(header.get("dense")))}, {}

    def _retrain_epochs(self, header: Header, args: Args) -> Reply:
        return {"epochs": self.pruning.retrain_epochs()}, {}

    def _allowance(self, header: Header, args: Args) -> Reply:
        allowance = self.pruning.allowance()
        header = {"epochs": allowance.epochs, "train_flops": allowance.train_flops}
        return {**header, "train_examples": allowance.train_examples}, {}

    def _recipe(self, header: Header, args: Args) -> Reply:
        spec = self.pruning.recipe(header["regime"], _count(header, "epochs"))
        return {"spec": spec.model_dump(mode="json")}, {}

    def _batches(self, header: Header, args: Args) -> Reply:
        stream = len(self.streams)
        examples, backward = _count(header, "examples"), bool(header["backward"])
        self.streams[stream] = self.pruning.scoring_batches(examples, backward=backward)
        return {"stream": stream}, {}

    def _next_batch(self, header: Header, args: Args) -> Reply:
        batch = next(self.streams[header["stream"]], None)  # counted by the engine as it is drawn
        return ({"end": True}, {}) if batch is None else ({}, {"x": batch[0], "y": batch[1]})

    def _saved_state(self, header: Header, args: Args) -> Reply:
        return {}, self.pruning.saved_state(header["which"])

    def _load_weights(self, header: Header, args: Args) -> Reply:
        self.pruning.load_weights(args)
        return {}, {}

    def _train(self, header: Header, args: Args) -> Reply:
        spec = header.get("spec")
        recipe = TrainingSpec.model_validate(spec) if spec is not None else None
        declared = validate_regularizers(header.get("regularizers") or ())
        self.pruning.train(_count(header, "epochs"), recipe, declared)
        return {}, {}

    def _soft_mask_scores(self, header: Header, args: Args) -> Reply:
        return {}, self.pruning.soft_mask_scores()

    def _prune_layerwise(self, header: Header, args: Args) -> Reply:
        spec = Layerwise.model_validate(header["spec"])
        sparsity = header.get("sparsity")
        if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float)) or not 0 <= sparsity < 1:
            raise ValueError(f"sparsity must be a number in [0, 1), not {str(sparsity)[:40]}")
        score = self._remote_score if header.get("score") is True else None
        return {}, self.pruning.prune_layerwise(spec, score, float(sparsity))

    def _remote_score(self, name: str, weight: Tensor, statistic: Tensor | None) -> Tensor:
        """One layer's scores from the method process (its `score`, asked while its prune_layerwise call waits)."""
        assert self.bridge is not None
        tensors = {"weight": weight} if statistic is None else {"weight": weight, "statistic": statistic}
        header, out = self.bridge.call(
            "layer_scores", EngineServer(self.access, only=SCORE_OPS), {"name": name}, tensors
        )
        if "scores" not in out:
            raise ValueError(f"the method's score of {name} gave {str(header.get('not_scores'))[:40]}, not a tensor")
        return out["scores"]

    def _note(self, header: Header, args: Args) -> Reply:
        self.pruning.note(str(header["key"]), unpack(header.get("value"), args))
        return {}, {}


def _count(header: dict[str, Any], key: str) -> int:
    value = header.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{key} must be a number of at least 0, not {str(value)[:40]}")
    return value


class RemoteMethod(Method[MethodConfig]):
    """A method whose hooks run in its own process; `remote_method` makes the subclass with the hooks it has."""

    name: ClassVar[str] = "remote"
    bridge: Bridge
    stepped = False  # whether a training hook was called yet

    def _call(
        self,
        hook: str,
        access: EngineStepAccess | None,
        header: dict[str, Any] | None = None,
        tensors: dict[str, Tensor] | None = None,
    ) -> Any:
        try:
            return self.bridge.call(hook, EngineServer(access, self.bridge), header, tensors)
        except RemoteError as exc:
            raise JobFailed(exc.reason) from None
        except Closed as exc:
            raise JobFailed(f"{self.name}.{hook}: {exc}") from None

    def prune(self, ctx: PruningContext) -> Masks:
        access = ctx._access
        assert isinstance(access, EnginePruningAccess)
        header, tensors = self._call("prune", access, {"prunable": list(access.weights())})
        return header.get("not_masks", tensors)  # (not masks: refused by the engine's set_masks)

    def retrain_epochs(self, ctx: PruningContext) -> int | None:
        assert isinstance(ctx._access, EnginePruningAccess)
        return self._call("retrain_epochs", ctx._access)[0].get("value")  # type: ignore[no-any-return]

    def _step_hook(self, hook: str, ctx: StepContext) -> None:
        access = ctx._access
        assert isinstance(access, EngineStepAccess)
        header = {"stage": ctx.stage, "epoch": ctx.epoch, "step": ctx.step, "steps_per_epoch": ctx.steps_per_epoch}
        # The prunable weights' names: what a method process that did not prune (a resumed job) builds its view from.
        prunable = list(access.weights()) if not self.stepped else None
        self.stepped = True
        self._call(hook, access, {**header, "lr": ctx.lr, "epochs": ctx.epochs, "prunable": prunable})

    def _state_dict(self) -> dict[str, Any]:
        header, tensors = self._call("state_dict", None)
        return unpack(header.get("state"), tensors)  # type: ignore[no-any-return]

    def _load_state_dict(self, state: dict[str, Any]) -> None:
        packed, tensors = pack(state)
        self._call("load_state_dict", None, {"state": packed}, tensors)


def remote_method(bridge: Bridge, hello: dict[str, Any], taxonomy: Taxonomy) -> Method[Any]:
    """The method of the process across `bridge`, as its `hello` described it, with the taxonomy the runner
    knows (from the description it made before the run: the one its records keep)."""
    hooks = set(hello.get("hooks", []))
    namespace: dict[str, Any] = {"name": str(hello.get("name", "remote")), "version": str(hello.get("version", ""))}
    namespace["taxonomy"] = taxonomy
    namespace["dense_gradients"] = hello.get("dense_gradients") is True
    namespace["hook_stages"] = tuple(s for s in hello.get("hook_stages", []) if s in ("pruning", "retrain"))
    if "on_step_end" in hooks:
        namespace["on_step_end"] = lambda self, ctx: self._step_hook("on_step_end", ctx)
    if "on_epoch_end" in hooks:
        namespace["on_epoch_end"] = lambda self, ctx: self._step_hook("on_epoch_end", ctx)
    if "state_dict" in hooks:
        namespace["state_dict"] = RemoteMethod._state_dict
    if "load_state_dict" in hooks:
        namespace["load_state_dict"] = RemoteMethod._load_state_dict
    cls = type("RemoteMethod", (RemoteMethod,), namespace)
    method: RemoteMethod = cls()
    method.bridge = bridge
    return method
