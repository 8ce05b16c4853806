"""The jobs of a protocol's grid (method x sparsity x seed, and each retraining variant's own jobs), each carrying
what it runs under. `grid` expands a protocol whose methods are labelled; `prunebench.run.scheduling.plan`
labels them first."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from prunebench.errors import PrunebenchError
from prunebench.protocol import PROTOCOL, BudgetSpec, MethodSpec, Protocol, RetrainVariant
from prunebench.protocol.sanity import Applicability
from prunebench.results import RunDirectory
from prunebench.results.targets import Target, TargetKind


@dataclass(frozen=True)
class Job:
    """One job of the grid, and what it runs under (resolved when planned)."""

    method_index: int
    method_key: str
    sparsity: float  # the target's value: a sparsity, or for a cost target (target_kind) the reduction factor
    seed: int
    variant: str | None  # a retraining variant's name; None: the protocol's own recipe
    # The protocol the job runs and is audited under: the protocol itself, or for a retraining variant's job
    # the protocol with the variant's recipe as `retrain` (and budgets stated in epochs moved with it).
    protocol: Protocol = field(compare=False, repr=False)
    retraining_variant: RetrainVariant | None = field(default=None, compare=False, repr=False)
    target_kind: TargetKind = "sparsity"

    @property
    def target(self) -> Target:
        """What the job prunes to (prunebench.results.targets)."""
        return Target(self.target_kind, self.sparsity)

    @property
    def id(self) -> str:
        return RunDirectory.job_id(self.method_key, self.variant, self.sparsity, self.seed, self.target_kind)

    def path(self, run_dir: Path) -> Path:
        return RunDirectory(run_dir).result_path(
            self.method_key, self.variant, self.sparsity, self.seed, self.target_kind
        )

    @property
    def ablation(self) -> str | None:
        """The sanity ablation this job makes (prunebench.protocol.sanity); None for any other job."""
        return self.retraining_variant.ablation if self.retraining_variant is not None else None

    def as_method_sees_it(self) -> Job:
        """The job as its method's process gets it: for an ablation the engine makes after the method (layer_shuffle,
        reinit), the method's own job, so that nothing there tells the method which of the two it prunes for."""
        if self.ablation in (None, "invert"):
            return self
        return replace(self, variant=None, retraining_variant=None)

    @property
    def method_spec(self) -> MethodSpec:
        return self.protocol.methods[self.method_index]

    @property
    def stated_budget(self) -> BudgetSpec | None:
        """The budget the protocol states for this method alone, if any."""
        return self.method_spec.budget

    @property
    def budget(self) -> BudgetSpec:
        """The budget in force: the method's own when the protocol states one, else the protocol's."""
        return self.stated_budget or self.protocol.budget


def _pick(values: Sequence[Any], wanted: Sequence[Any] | None, what: str) -> list[Any]:
    if not wanted:
        return list(values)
    unknown = [w for w in wanted if w not in values]
    if unknown:
        raise PrunebenchError(f"--{what}: {unknown[0]!r} is not in the protocol (it has {', '.join(map(str, values))})")
    return [v for v in values if v in wanted]


def grid(
    protocol: Protocol,
    *,
    methods: Sequence[str] | None = None,
    sparsities: Sequence[float] | None = None,
    seeds: Sequence[int] | None = None,
    shard: tuple[int, int] | None = None,
    variants: Sequence[str] | None = None,
    sanity: Applicability | None = None,
) -> list[Job]:
    """The jobs of the grid, optionally filtered (filters may only narrow the protocol's grid).

    The protocol's own recipe comes first, then each retraining variant's own jobs (`variants` names them;
    `protocol` is the protocol's recipe). A variant whose job for a method is another's runs nothing more. A sanity
    ablation runs for the methods `sanity` says it applies to (prunebench.protocol.sanity.applicability; without
    it, for none). The protocol's methods given by path must be labelled (prunebench.run.scheduling.plan does
    that)."""
    keys = [m.key for m in protocol.methods]
    chosen_methods = _pick(keys, methods, "methods")
    chosen_sparsities = _pick(protocol.pruning.target_values, sparsities, "sparsities")
    kind = protocol.pruning.target_kind
    chosen_seeds = _pick(protocol.seeds, seeds, "seeds")
    vplan = protocol.variant_plan()
    chosen_variants = _pick([PROTOCOL, *vplan.names], variants, "variants")

    def runs(v: str, k: str) -> bool:
        if v == PROTOCOL:
            return True
        variant = vplan.get(v)
        if variant.kind == "sanity":
            return sanity is not None and k in sanity and sanity[k].get(v, "") is None
        return k in variant.methods

    wanted: dict[str, set[str | None]] = {
        k: {vplan.job_variant(v, k) for v in chosen_variants if runs(v, k)} for k in chosen_methods
    }
    order: list[str | None] = [None, *vplan.names]
    under = {name: protocol.for_variant(name) for name in order}
    jobs = [
        Job(
            keys.index(k),
            k,
            s,
            seed,
            variant,
            under[variant],
            None if variant is None else vplan.get(variant),
            target_kind=kind,
        )
        for seed in chosen_seeds  # seed-major: one dense checkpoint is trained, then reused
        for variant in order
        for k in chosen_methods
        if variant in wanted[k]
        for s in chosen_sparsities
        if protocol.methods[keys.index(k)].sparsities is None or s in (protocol.methods[keys.index(k)].sparsities or [])
    ]
    if shard is not None:
        index, count = shard
        jobs = [j for i, j in enumerate(jobs) if i % count == index]
    return jobs
