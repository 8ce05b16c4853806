"""Checking a protocol before anything runs: the data, the model on the data's shape, the prunable weights it
leaves, the user's dense checkpoint, and every method (loaded and configured in a job process) against the
protocol's granularity and base model, and against its targets where the method knows from the prunable weights'
shapes what it will reach (`Method.reach`). Errors name the protocol's file, line and field."""

from __future__ import annotations

import math

import torch
from torch import nn

from prunebench.data import DATASETS, check_data
from prunebench.efficiency import CompactionError
from prunebench.errors import FieldError
from prunebench.fairness import assumes_shared_dense_model, total_limits, trains_from_scratch
from prunebench.masks import prunable_parameters
from prunebench.methods import GRANULARITY_ORDER
from prunebench.models import build_model, layer_macs
from prunebench.protocol import Protocol, RecipeError
from prunebench.protocol.sanity import applicability, unused
from prunebench.run.dense.pretrained import load_into, read_pretrained
from prunebench.run.measurement.targets import max_reduction
from prunebench.run.sandbox import MethodInfo, describe
from prunebench.run.sandbox.tasks import ReachCheck


def validate(protocol: Protocol) -> list[MethodInfo]:
    """The protocol's methods as their job process described them; raises ProtocolError naming the offending
    field."""
    p = protocol
    try:
        if p.task == "causal_lm":
            require_language_libraries()
        check_data(p.data)
        # Build the model once on the data set's nominal shape: an unknown name, bad arguments or
        # an input it cannot take are reported now, not after hours of training.
        info = DATASETS[p.data.name]
        if p.evaluation.robustness is not None and not info.in_memory:
            raise FieldError(
                ("evaluation", "robustness"),
                f"not supported for {info.title}, streamed from disk: corruptions are applied to a test split held in "
                "memory",
            )
        shape, classes = info.shape_of(p.data), info.classes_of(p.data)
        model = build_model(p.model, num_classes=classes, input_shape=shape)
        # Which weights are prunable, as a job will see them: a rule that leaves none is an error now.
        params = prunable_parameters(model, p.pruning.prunable, layer_macs(model, shape).keys())
        if p.pruning.targets is not None:
            check_cost_targets(p, model, params, shape)
        if p.base.checkpoint is not None:
            load_into(model, read_pretrained(p.base), p.model.name)
        # What a method says it will reach is checked on these shapes, where they are the jobs' own: not where
        # the classes are counted only when the data set is read (its classifier's shape is not known yet).
        reach = None
        if info.num_classes is not None or (p.data.text is not None and p.data.text.tokenizer is None):
            shapes = {name: tuple(w.shape) for name, w in params.items()}
            targets = tuple(p.pruning.target(v) for v in p.pruning.target_values)
            reach = ReachCheck(
                p.model.name,
                shapes,
                targets,
                p.pruning.tolerance,
                spec=p.model,
                num_classes=classes,
                input_shape=shape,
                max_training_steps=max_training_steps(p, info.train_examples),
                comparison=p.comparison,
            )
        methods = describe(p, reach)
        for i, method in enumerate(methods):
            check_method(p, i, method)
        check_sanity(p, methods)
    except FieldError as exc:
        raise p.locate(exc) from None
    return methods


def require_language_libraries() -> None:
    """The language-model track's libraries (the `lm` extra) are installed, or one line saying how to get them."""
    try:
        import tokenizers  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as exc:
        raise FieldError(
            ("task",), f"a causal_lm protocol needs transformers and tokenizers ({exc}): pip install 'prunebench[lm]'"
        ) from None


def max_training_steps(p: Protocol, train_examples: int | None) -> int | None:
    """An upper bound on the optimizer steps of the training a method's hooks run in (Layout.max_training_steps):
    the training examples before the validation split, in the retraining recipe's batches, over the retraining
    epochs or, under SX-A, the totals a method training from scratch may take (prunebench.fairness.total_limits).
    None where the examples are not known before the data is read, or under SX-B (whose epochs a method derives
    from its FLOPs)."""
    used = p.data.train_subset if p.data.train_subset is not None else train_examples
    if used is None or p.comparison == "SX-B":
        return None
    epochs = float(p.retrain.epochs)
    if p.comparison == "SX-A":
        budgets = [None, *(m.budget for m in p.methods if m.budget is not None)]
        epochs = max(epochs, *(total_limits(p, budget, 0.0, 0)[0] for budget in budgets))
    return math.ceil(used / p.retrain.batch_size) * math.floor(epochs + 1e-9)


def check_cost_targets(
    p: Protocol, model: nn.Module, prunable: dict[str, nn.Parameter], shape: tuple[int, int, int]
) -> None:
    """A cost target beyond what whole filters can reach on the model (every prunable layer keeping one
    channel), or a model Torch-Pruning cannot trace (so no reduction could be counted): one line, before any
    training."""
    targets = p.pruning.targets
    assert targets is not None
    with torch.random.fork_rng(devices=[]):
        try:
            most = max_reduction(model, prunable, torch.zeros(1, *shape), targets.kind)
        except CompactionError as exc:
            raise FieldError(("model", "name"), f"cost targets need a compacted model: {exc}") from None
    beyond = [v for v in targets.values if v * (1 - targets.tolerance) > most]
    if beyond:
        raise FieldError(
            ("pruning", "targets", targets.kind),
            f"{beyond[0]:g}x is beyond what whole filters reach on {p.model.name}: at most {most:.3g}x, every "
            "prunable layer keeping one channel",
        )


def check_sanity(p: Protocol, methods: list[MethodInfo]) -> None:
    """A sanity ablation that applies to none of the protocol's methods (prunebench.protocol.sanity): its field,
    and why for each method."""
    ablations = p.variant_plan().ablations
    described = {m.key: (info.taxonomy, info.scored) for m, info in zip(p.methods, methods, strict=True)}
    found = unused(ablations, applicability(ablations, described)) if ablations else None
    if found is not None:
        raise FieldError(("variants", "sanity", found[0]), found[1])


def check_method(p: Protocol, i: int, method: MethodInfo) -> None:
    """A method the protocol cannot run: one that rewinds to an iterate a user's checkpoint lacks, or that prunes
    before training and would rewind to an iterate of base training (prunebench.fairness.job_states), whose regime
    has no retraining recipe under the protocol, or that prunes finer than the protocol's granularity."""
    if p.base.checkpoint is not None and method.taxonomy.retraining == "weight_rewinding":
        raise FieldError(
            ("methods", i, "name"),
            f"{method.name} rewinds to an early iterate of base training (weight rewinding); the dense "
            "model from base.checkpoint has none",
        )
    if (
        method.taxonomy.when == "before_training"
        and method.taxonomy.retraining == "weight_rewinding"
        and p.pruning.rewind_epoch > 0
    ):
        raise FieldError(
            ("methods", i, "name"),
            f"{method.name} prunes before training and rewinds to pruning.rewind_epoch "
            f"{p.pruning.rewind_epoch:g}, an iterate of base training: a method that prunes before training gets "
            "only the initialization (rewind_epoch 0)",
        )
    if trains_from_scratch(method.taxonomy.when, method.taxonomy.schedule) and assumes_shared_dense_model(p.comparison):
        raise FieldError(
            ("methods", i, "name"),
            f"{method.name} trains a sparse network from scratch (dynamic sparse training), using no dense model; "
            f"comparison {p.comparison} compares methods on one trained dense model and would give it the retraining "
            "stage alone: compare it under SX-A or SX-B (equal totals, dense training included) or S1",
        )
    try:
        p.retraining_recipe(method.taxonomy.retraining)
    except RecipeError as exc:
        raise FieldError(("methods", i, "name"), f"{method.name} has no retraining recipe here: {exc}") from None
    kind = p.pruning.target_kind
    if kind not in method.targets:
        raise FieldError(
            ("methods", i, "name"),
            f"{method.name} prunes to {' or '.join(method.targets)} targets; this protocol's are {kind} "
            "(pruning.targets)",
        )
    granularity = method.taxonomy.granularity
    if GRANULARITY_ORDER[granularity] < GRANULARITY_ORDER[p.pruning.granularity]:
        raise FieldError(
            ("methods", i, "name"),
            f"{method.name} prunes at {granularity} granularity, finer than this protocol's {p.pruning.granularity}",
        )
