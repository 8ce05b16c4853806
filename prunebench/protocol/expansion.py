"""Retraining variants, expanded: a protocol's `variants:` section (protocol.variants) as named variants.

- `retrain_sweep`: candidate recipes `lr-0.01`, `cosine`, `lr-0.01_cosine`, ... (every method). The
  protocol's own recipe is always a candidate, named `protocol`.
- `retrain_extension`: `ext-10` (the protocol's recipe over retrain.epochs + 10 epochs) and
  `lr-0.01_ext-10` (each sweep candidate, extended likewise); schedules are stretched.
- `swap`: `recipe-A`, the own recipe of method A, run for A and for every method it is paired with.
- `sanity`: `layer_shuffle`, `reinit`, `invert` (prunebench.protocol.sanity), each under the protocol's own
  recipe, for every method: a job of its own always (its masks are not the protocol's job's). Which methods an
  ablation applies to is known once the methods are described (prunebench.run.scheduling.plan).

Each variant is a recipe and the methods it runs for. A job of a variant runs under
`Protocol.for_variant(name)`: the protocol with the variant's recipe as its `retrain`, so the engine,
the retraining regimes and the budget audit all see the recipe the variant fixes, shared by every
method of the variant (S3.2 holds per variant). Jobs are never run twice: a variant's job for a method
whose recipe equals the protocol's, or an earlier variant's, *stands for* that job (`runs_as`).

The dense checkpoints depend only on data, model, base training and seed (Protocol.base_key), so a
variant's jobs start from the very checkpoints of the protocol's own jobs. Everything here is pure: it
reads the sections and recipes and returns new ones.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ValidationError

from prunebench.protocol.recipes import TrainingSpec
from prunebench.protocol.sanity import DEFINITIONS
from prunebench.protocol.sections import BudgetSpec
from prunebench.protocol.variants import (
    RecipeChange,
    RetrainExtensionSpec,
    RetrainSweepSpec,
    SwapSpec,
    VariantsSpec,
)

PROTOCOL = "protocol"  # the name of the protocol's own recipe among sweep candidates and in reports
RESERVED = (PROTOCOL, "selected")
VariantKind = Literal["sweep", "extension", "swap", "sanity"]


class VariantError(ValueError):
    """A variant that cannot be expanded; `loc` is relative to the protocol's `variants` field."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message


@dataclass(frozen=True)
class RetrainVariant:
    name: str
    kind: VariantKind
    retrain: TrainingSpec  # the recipe the variant puts in place of the protocol's `retrain`
    methods: tuple[str, ...]  # the method labels it runs for
    runs_as: Mapping[str, str | None]  # per method: the variant whose job this one is (None: the protocol's)
    extra_epochs: int = 0  # extension: epochs added to the protocol's retraining
    lr: float | None = None  # sweep: the candidate's peak LR (None: the protocol's)
    schedule: str | None = None  # sweep: the candidate's schedule name (None: the protocol's)
    recipe_of: str | None = None  # swap: the method whose own recipe this is
    loc: tuple[str | int, ...] = ()  # where it is declared, under `variants`
    ablation: str | None = None  # sanity: the ablation the engine makes (prunebench.protocol.sanity)

    @property
    def description(self) -> str:
        parts = []
        if self.ablation is not None:
            parts.append(DEFINITIONS[self.ablation])
        elif self.kind == "swap":
            parts.append(f"the own retraining recipe of {self.recipe_of} (swap test)")
        else:
            if self.lr is not None:
                parts.append(f"retraining LR {self.lr:g}")
            if self.schedule is not None:
                parts.append(f"schedule {self.schedule}")
            if not parts:
                parts.append("the protocol's retraining recipe")
            if self.extra_epochs:
                parts.append(f"extended by {self.extra_epochs} epochs")
        return ", ".join(parts) + f" ({recipe_summary(self.retrain)})"


@dataclass(frozen=True)
class VariantPlan:
    variants: tuple[RetrainVariant, ...] = ()
    # Sweep candidates per extension level (0: the protocol's epochs); the protocol's own recipe first.
    sweep: Mapping[int, tuple[str, ...]] = field(default_factory=dict)
    swap_pairs: tuple[tuple[str, str], ...] = ()
    swap_recipes: Mapping[str, str] = field(default_factory=dict)  # method label -> its recipe's variant

    def __bool__(self) -> bool:
        return bool(self.variants)

    @property
    def names(self) -> list[str]:
        return [v.name for v in self.variants]

    def get(self, name: str) -> RetrainVariant:
        for v in self.variants:
            if v.name == name:
                return v
        known = ", ".join(self.names) or "none"
        raise KeyError(f"no retraining variant {name!r} in this protocol (it has: {known})")

    def job_variant(self, name: str | None, label: str) -> str | None:
        """The variant whose job gives `label`'s result under variant `name` (None and `protocol`: the
        protocol's own recipe); the variant itself unless its recipe equals an earlier one's."""
        if name is None or name == PROTOCOL:
            return None
        variant = self.get(name)
        if label not in variant.runs_as:
            raise KeyError(f"variant {name!r} does not run method {label!r}")
        return variant.runs_as[label]

    @property
    def ablations(self) -> list[str]:
        """The names of the sanity ablations, in the protocol's order."""
        return [v.name for v in self.variants if v.kind == "sanity"]

    def own_jobs(self, label: str) -> list[str]:
        """The variants that run a job of their own for a method."""
        return [v.name for v in self.variants if v.runs_as.get(label, None) == v.name]


def recipe_summary(spec: TrainingSpec) -> str:
    s = spec.schedule
    sched = s.name + (f" {s.milestones}" if s.milestones else "") + (f" every {s.step_size}" if s.step_size else "")
    return f"{spec.optimizer.name} lr {spec.optimizer.lr:g}, {sched}, {spec.epochs} epochs"


def apply_change(retrain: TrainingSpec, change: RecipeChange) -> TrainingSpec:
    """The protocol's recipe with a RecipeChange applied; ValueError when the result is not a valid recipe."""
    spec = retrain.with_epochs(change.epochs) if change.epochs is not None and change.schedule is None else retrain
    raw = spec.model_dump()
    raw["optimizer"].update({k: v for k, v in change.optimizer.model_dump().items() if v is not None})
    for key in ("batch_size", "label_smoothing", "grad_clip", "epochs"):
        value = getattr(change, key)
        if value is not None:
            raw[key] = value
    if change.schedule is not None:
        raw["schedule"] = change.schedule.model_dump()
    try:
        return TrainingSpec.model_validate(raw)
    except ValidationError as exc:
        raise ValueError(exc.errors()[0]["msg"].removeprefix("Value error, ")) from None


def _spec(raw: dict[str, Any], loc: tuple[str | int, ...]) -> TrainingSpec:
    try:
        return TrainingSpec.model_validate(raw)
    except ValidationError as exc:
        raise VariantError(loc, exc.errors()[0]["msg"].removeprefix("Value error, ")) from None


def _lr_name(lr: float) -> str:
    return f"lr-{lr:g}"


# A variant before its jobs are resolved: name, kind, retrain (its recipe), methods, loc, and the fields of its kind
# (lr, schedule, extra_epochs, recipe_of), as RetrainVariant names them.
Draft = dict[str, Any]


def expand_variants(
    spec: VariantsSpec,
    *,
    retrain: TrainingSpec,
    labels: Sequence[str],
    trainability_epochs: int | None = None,
    task: str = "classification",
) -> VariantPlan:
    """The variants of a protocol's `variants:` section, in order: sweep candidates, extensions, swap recipes,
    sanity ablations. Raises VariantError (with the offending field) for a recipe that is not valid, an unknown
    method, or sanity ablations of another task than classification.

    The steps, in this order (each raises on what it finds wrong): the sweep's candidates (`_sweep_drafts`);
    the extensions of the protocol's recipe and of each candidate (`_extension_drafts`); the swap test's own
    recipes (`_swap_drafts`); the sanity ablations (`_sanity_drafts`); the checks every variant passes
    (`_check_drafts`); and which job each variant's job is for each method (`_resolve_jobs`)."""
    labels = list(labels)
    candidates = _sweep_drafts(spec.retrain_sweep, retrain)
    extensions, extension_levels = _extension_drafts(spec.retrain_extension, retrain, candidates)
    drafts = [*candidates, *extensions]
    for d in drafts:
        d["methods"] = tuple(labels)  # sweep and extension variants run for every method
    # Sweep candidates per extension level (0: the protocol's epochs), the protocol's own recipe first.
    sweep_levels: dict[int, tuple[str, ...]] = {}
    if spec.retrain_sweep is not None:
        sweep_levels = {0: (PROTOCOL, *(c["name"] for c in candidates)), **extension_levels}
    pairs: list[tuple[str, str]] = []
    own: dict[str, str] = {}
    if spec.swap is not None:
        swaps, pairs, own = _swap_drafts(spec.swap, retrain, labels, earlier=drafts)
        drafts.extend(swaps)
    drafts.extend(_sanity_drafts(spec.sanity, retrain, labels, task))
    _check_drafts(drafts, trainability_epochs)
    return VariantPlan(_resolve_jobs(drafts, retrain), sweep_levels, tuple(pairs), own)


def _sweep_drafts(sweep: RetrainSweepSpec | None, retrain: TrainingSpec) -> list[Draft]:
    """The sweep's candidates `lr-0.01`, `cosine`, `lr-0.01_cosine`, ... (every LR with every schedule), the
    protocol's own recipe and repeats left out: one candidate, one job."""
    candidates: list[Draft] = []
    if sweep is None:
        return candidates
    lrs: list[float | None] = list(sweep.lr) or [None]
    schedules: list[str | None] = list(sweep.schedules) or [None]
    for lr, sched in itertools.product(lrs, schedules):
        raw = retrain.model_dump()
        loc: tuple[str | int, ...] = ("retrain_sweep",)
        if lr is not None:
            raw["optimizer"]["lr"] = lr
            loc = ("retrain_sweep", "lr", sweep.lr.index(lr))
        if sched is not None:
            raw["schedule"] = sweep.schedules[sched].model_dump()
            loc = ("retrain_sweep", "schedules", sched)
        recipe = _spec(raw, loc)
        if recipe == retrain or any(c["retrain"] == recipe for c in candidates):
            continue  # the protocol's recipe (always a candidate) or a repeat: one candidate, one job
        name = "_".join(x for x in (None if lr is None else _lr_name(lr), sched) if x)
        candidates.append({"name": name, "kind": "sweep", "retrain": recipe, "lr": lr, "schedule": sched, "loc": loc})
    if not candidates:
        raise VariantError(("retrain_sweep",), "every candidate is the protocol's own recipe: nothing to choose from")
    return candidates


def _extension_drafts(
    extension: RetrainExtensionSpec | None, retrain: TrainingSpec, candidates: Sequence[Draft]
) -> tuple[list[Draft], dict[int, tuple[str, ...]]]:
    """`ext-10` (the protocol's recipe over retrain.epochs + 10 epochs, its schedule stretched) and each sweep
    candidate extended likewise (`lr-0.01_ext-10`); with the names of each extension level, by epochs added."""
    drafts: list[Draft] = []
    levels: dict[int, tuple[str, ...]] = {}
    if extension is None:
        return drafts, levels
    for i, extra in enumerate(extension.epochs):
        loc = ("retrain_extension", "epochs", i)
        n = retrain.epochs + extra
        level = [f"ext-{extra}"]
        drafts.append(
            {
                "name": f"ext-{extra}",
                "kind": "extension",
                "retrain": _stretch(retrain, n, loc),
                "extra_epochs": extra,
                "loc": loc,
            }
        )
        for c in candidates:
            name = f"{c['name']}_ext-{extra}"
            level.append(name)
            drafts.append({**c, "name": name, "retrain": _stretch(c["retrain"], n, loc), "extra_epochs": extra})
        levels[extra] = tuple(level)
    return drafts, levels


def _swap_drafts(
    swap: SwapSpec, retrain: TrainingSpec, labels: Sequence[str], *, earlier: Sequence[Draft]
) -> tuple[list[Draft], list[tuple[str, str]], dict[str, str]]:
    """The swap test: `recipe-A`, method A's own recipe, run for A and every method it is paired with; with the
    pairs and each method's recipe variant. Two paired methods with the same recipe are an error."""
    pairs = _swap_pairs(swap.recipes, swap.pairs, labels)
    drafts: list[Draft] = []
    own: dict[str, str] = {}
    for label, change in swap.recipes.items():
        loc = ("swap", "recipes", label)
        try:
            recipe = apply_change(retrain, change)
        except ValueError as exc:
            raise VariantError(loc, str(exc)) from None
        partners = {x for pair in pairs if label in pair for x in pair}
        own[label] = f"recipe-{label}"
        drafts.append(
            {
                "name": own[label],
                "kind": "swap",
                "retrain": recipe,
                "methods": tuple(m for m in labels if m in partners),
                "recipe_of": label,
                "loc": loc,
            }
        )
    every = [*earlier, *drafts]  # a recipe is looked up by name among every variant so far, as it is named
    for i, (a, b) in enumerate(pairs):
        ra = next(d["retrain"] for d in every if d["name"] == own[a])
        rb = next(d["retrain"] for d in every if d["name"] == own[b])
        if ra == rb:
            raise VariantError(
                ("swap", "pairs", i) if swap.pairs else ("swap", "recipes", b),
                f"{a} and {b} have the same retraining recipe: swapping them tests nothing",
            )
    return drafts, pairs, own


def _sanity_drafts(
    sanity: Sequence[str] | None, retrain: TrainingSpec, labels: Sequence[str], task: str
) -> list[Draft]:
    """One variant per ablation, named by it, under the protocol's own recipe, for every method (those it does not
    apply to are left out when the jobs are planned). Classification only: a causal LM is pruned one-shot, without
    the retraining these ablations are judged after."""
    if not sanity:
        return []
    if task != "classification":
        raise VariantError(
            ("sanity",),
            f"the sanity ablations are for classification protocols with retraining; task {task} is pruned one-shot",
        )
    return [
        {"name": a, "kind": "sanity", "retrain": retrain, "methods": tuple(labels), "ablation": a, "loc": ("sanity", i)}
        for i, a in enumerate(sanity)
    ]


def _check_drafts(drafts: Sequence[Draft], trainability_epochs: int | None) -> None:
    """Every variant's name is its own and not reserved, and it retrains at least as long as the trainability
    analysis looks."""
    names = [d["name"] for d in drafts]
    for d in drafts:
        if d["name"] in RESERVED or names.count(d["name"]) > 1:
            raise VariantError(d["loc"], f"variant name {d['name']!r} is reserved or given twice; rename a schedule")
        if trainability_epochs is not None and trainability_epochs > d["retrain"].epochs:
            raise VariantError(
                d["loc"],
                f"analyses.trainability.epochs {trainability_epochs} exceeds the {d['retrain'].epochs} retraining "
                f"epochs of variant {d['name']}",
            )


def _resolve_jobs(drafts: Sequence[Draft], retrain: TrainingSpec) -> tuple[RetrainVariant, ...]:
    """The variants, each with the job it runs as for each method (`runs_as`): None where its recipe is the
    protocol's, the first earlier variant with the same recipe that runs its own job, else itself."""
    variants: list[RetrainVariant] = []
    for d in drafts:
        runs_as: dict[str, str | None] = {}
        for m in d["methods"]:
            if d["kind"] == "sanity":  # an ablation's masks are its own: never another job's
                runs_as[m] = d["name"]
                continue
            if d["retrain"] == retrain:
                runs_as[m] = None
                continue
            earlier = next(
                (v.name for v in variants if v.runs_as.get(m, "") == v.name and v.retrain == d["retrain"]), d["name"]
            )
            runs_as[m] = earlier
        variants.append(
            RetrainVariant(
                name=d["name"],
                kind=d["kind"],
                retrain=d["retrain"],
                methods=d["methods"],
                runs_as=runs_as,
                extra_epochs=d.get("extra_epochs", 0),
                lr=d.get("lr"),
                schedule=d.get("schedule"),
                recipe_of=d.get("recipe_of"),
                loc=d["loc"],
                ablation=d.get("ablation"),
            )
        )
    return tuple(variants)


def _stretch(spec: TrainingSpec, epochs: int, loc: tuple[str | int, ...]) -> TrainingSpec:
    try:
        return spec.with_epochs(epochs)
    except ValidationError as exc:
        raise VariantError(loc, exc.errors()[0]["msg"].removeprefix("Value error, ")) from None


def _swap_pairs(
    recipes: Mapping[str, RecipeChange], pairs: Sequence[tuple[str, str]] | None, labels: Sequence[str]
) -> list[tuple[str, str]]:
    for label in recipes:
        if label not in labels:
            raise VariantError(
                ("swap", "recipes", label), f"{label!r} is not a method label of this protocol ({', '.join(labels)})"
            )
    if len(recipes) < 2:
        raise VariantError(("swap", "recipes"), "the swap test needs the recipes of at least two methods")
    if pairs is None:
        return list(itertools.combinations(recipes, 2))
    seen: set[frozenset[str]] = set()
    for i, (a, b) in enumerate(pairs):
        for x in (a, b):
            if x not in recipes:
                raise VariantError(("swap", "pairs", i), f"{x!r} has no recipe in swap.recipes")
        if a == b or frozenset((a, b)) in seen:
            raise VariantError(("swap", "pairs", i), f"pair ({a}, {b}) pairs a method with itself or repeats")
        seen.add(frozenset((a, b)))
    unpaired = [x for x in recipes if not any(x in p for p in pairs)]
    if unpaired:
        raise VariantError(("swap", "recipes", unpaired[0]), f"{unpaired[0]!r} is in no pair of swap.pairs")
    return [(a, b) for a, b in pairs]


def stretch_budget(budget: BudgetSpec, protocol_epochs: int, variant_epochs: int) -> BudgetSpec:
    """A budget moved by a variant's change of retraining epochs: an explicit total of epochs by the same
    epochs, an explicit total of FLOPs in proportion to the total epochs. Defaults follow by themselves."""
    extra = variant_epochs - protocol_epochs
    if not extra or (budget.total_epochs is None and budget.total_train_flops is None):
        return budget
    total = budget.total_epochs if budget.total_epochs is not None else budget.pruning_epochs + protocol_epochs
    update: dict[str, float] = {}
    if budget.total_epochs is not None:
        update["total_epochs"] = budget.total_epochs + extra
    if budget.total_train_flops is not None:
        update["total_train_flops"] = budget.total_train_flops * (total + extra) / total
    return budget.model_copy(update=update)
