"""Plans the grid (method x sparsity x seed), shares the dense checkpoints, runs, resumes, writes.

Every job is independent and idempotent: its result file is written atomically when it ends, a
re-run skips jobs whose file is there, and a run killed at any moment loses at most the job in
flight. The dense base model of a seed is trained once, cached by the hash of what determines it,
verified by the hash of its weights, and shared by every method.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import subprocess
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
import torchvision

import prunebench
from prunebench.analyses import Analyses
from prunebench.data import DATASETS, DataBundle, check_data, load_data
from prunebench.errors import FieldError, JobFailed, PrunebenchError
from prunebench.masks import MaskSet, measure_sparsity, prunable_parameters
from prunebench.methods import GRANULARITY_ORDER, LoadedMethod, Method, PruningContext, instantiate
from prunebench.models import build_model, layer_macs
from prunebench.protocol import Protocol, TrainingSpec, content_hash
from prunebench.results import (
    BaseModelRecord,
    BudgetRecord,
    CostRecord,
    EpochRecord,
    LayerSparsity,
    Ledger,
    MethodRecord,
    Metrics,
    ProtocolRef,
    Provenance,
    ResultRecord,
    RetrainingRecord,
    SparsityRecord,
    StageLedger,
    load_result,
    save_result,
    write_atomic,
)
from prunebench.train import Engine, EpochCallback, derive_seed, state_copy
from prunebench.variants import PROTOCOL, variant_record

EPS = 1e-6


@dataclass(frozen=True)
class Job:
    method_index: int
    method_key: str
    sparsity: float
    seed: int
    variant: str | None = None  # a retraining variant (prunebench.variants); None: the protocol's own recipe

    @property
    def id(self) -> str:
        where = self.method_key if self.variant is None else f"{self.method_key}/{self.variant}"
        return f"{where}/sparsity-{self.sparsity:g}_seed-{self.seed}"

    def path(self, run_dir: Path) -> Path:
        # A variant's results sit one level down, within the three levels the reporter searches for protocol.json.
        folder = run_dir / self.method_key if self.variant is None else run_dir / self.method_key / self.variant
        return folder / f"sparsity-{self.sparsity:g}_seed-{self.seed}.json"


def _pick(values: Sequence[Any], wanted: Sequence[Any] | None, what: str) -> list[Any]:
    if not wanted:
        return list(values)
    unknown = [w for w in wanted if w not in values]
    if unknown:
        raise PrunebenchError(f"--{what}: {unknown[0]!r} is not in the protocol (it has {', '.join(map(str, values))})")
    return [v for v in values if v in wanted]


def plan(
    protocol: Protocol,
    *,
    methods: Sequence[str] | None = None,
    sparsities: Sequence[float] | None = None,
    seeds: Sequence[int] | None = None,
    shard: tuple[int, int] | None = None,
    variants: Sequence[str] | None = None,
) -> list[Job]:
    """The jobs of the grid, optionally filtered (filters may only narrow the protocol's grid).

    The protocol's own recipe comes first, then each retraining variant's own jobs (`variants` names them;
    `protocol` is the protocol's recipe). A variant whose job for a method is another's runs nothing more."""
    keys = [m.key for m in protocol.methods]
    chosen_methods = _pick(keys, methods, "methods")
    chosen_sparsities = _pick(protocol.pruning.sparsities, sparsities, "sparsities")
    chosen_seeds = _pick(protocol.seeds, seeds, "seeds")
    vplan = protocol.variant_plan()
    chosen_variants = _pick([PROTOCOL, *vplan.names], variants, "variants")
    wanted: dict[str, set[str | None]] = {
        k: {vplan.job_variant(v, k) for v in chosen_variants if v == PROTOCOL or k in vplan.get(v).methods}
        for k in chosen_methods
    }
    order: list[str | None] = [None, *vplan.names]
    jobs = [
        Job(keys.index(k), k, s, seed, variant)
        for seed in chosen_seeds  # seed-major: one dense checkpoint is trained, then reused
        for variant in order
        for k in chosen_methods
        if variant in wanted[k]
        for s in chosen_sparsities
    ]
    if shard is not None:
        index, count = shard
        jobs = [j for i, j in enumerate(jobs) if i % count == index]
    return jobs


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise PrunebenchError("--device cuda: no CUDA device is available (use --device cpu or auto)")
    if name not in ("cpu", "cuda"):
        raise PrunebenchError(f"--device must be auto, cpu or cuda (got {name!r})")
    return torch.device(name)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"cpu: {platform.machine()} x{torch.get_num_threads()} threads"


def code_revision() -> str | None:
    """The git revision of the prunebench source (and `+dirty` when it has local changes)."""
    root = Path(prunebench.__file__).resolve().parent.parent
    try:
        rev = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return rev + ("+dirty" if dirty else "")


def weights_sha256(state: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(name.encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def default_cache_dir() -> Path:
    return Path(os.environ.get("PRUNEBENCH_CACHE", Path.home() / ".cache" / "prunebench"))


@dataclass
class RunnerEvents:
    """Callbacks for a progress display; all optional."""

    job_started: Callable[[Job, int, int], None] = lambda job, i, n: None
    job_finished: Callable[[Job, ResultRecord], None] = lambda job, record: None
    base_started: Callable[[int, int], None] = lambda seed, epochs: None
    epoch: EpochCallback = lambda stage, epoch, total, record: None
    skipped: Callable[[Job, str], None] = lambda job, why: None


@dataclass
class BaseCheckpoint:
    key: str
    sha256: str
    states: dict[str, dict[str, torch.Tensor]]  # init, rewind, final
    test: dict[str, float | None]
    val_top1: float
    ledger: StageLedger
    curves: list[EpochRecord] = field(default_factory=list)


class Runner:
    def __init__(
        self,
        protocol: Protocol,
        *,
        results_dir: Path,
        cache_dir: Path | None = None,
        device: str = "auto",
        force: bool = False,
        retry_failed: bool = False,
        events: RunnerEvents | None = None,
    ) -> None:
        self.protocol = protocol
        self.run_dir = Path(results_dir) / protocol.run_name
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.device = resolve_device(device)
        self.force = force
        self.retry_failed = retry_failed
        self.events = events or RunnerEvents()
        self.methods: list[tuple[Method, LoadedMethod]] = []
        self._data: DataBundle | None = None
        self._bases: dict[int, BaseCheckpoint] = {}

    # ---- validation before anything runs ------------------------------------------------------
    def prepare(self) -> None:
        """Check everything a run needs (data, methods, their configs) before touching results;
        raises ProtocolError naming the file and line of the offending field."""
        p = self.protocol
        base_dir = p.source.parent if p.source else None
        try:
            check_data(p.data)
            # Build the model once on the data set's nominal shape: an unknown name, bad arguments or
            # an input it cannot take are reported now, not after hours of training.
            info = DATASETS[p.data.name]
            build_model(p.model, num_classes=info.num_classes or 1000, input_shape=info.input_shape)
            for i, spec in enumerate(p.methods):
                method, loaded = instantiate(spec, i, base_dir=base_dir)
                granularity = method.taxonomy.granularity
                if GRANULARITY_ORDER[granularity] < GRANULARITY_ORDER[p.pruning.granularity]:
                    raise FieldError(
                        ("methods", i, "name"),
                        f"{method.name} prunes at {granularity} granularity, finer than this protocol's "
                        f"{p.pruning.granularity}",
                    )
                self.methods.append((method, loaded))
        except FieldError as exc:
            raise p.locate(exc) from None

    def status_of(self, job: Job) -> str:
        """done, failed, corrupt or pending."""
        path = job.path(self.run_dir)
        if not path.exists():
            return "pending"
        try:
            record = load_result(path)
        except ValueError:
            return "corrupt"
        return "failed" if record.status == "failed" else "done"

    def pending(self, jobs: Sequence[Job]) -> list[Job]:
        if self.force:
            return list(jobs)
        out = []
        for job in jobs:
            status = self.status_of(job)
            if status == "done" or (status == "failed" and not self.retry_failed):
                self.events.skipped(job, status)
                continue
            if status == "corrupt":
                warnings.warn(f"{job.path(self.run_dir)} is not a valid result; it will be re-run", stacklevel=2)
            out.append(job)
        return out

    @property
    def data(self) -> DataBundle:
        if self._data is None:
            try:
                self._data = load_data(self.protocol.data)
            except FieldError as exc:
                raise self.protocol.locate(exc) from None
        return self._data

    def base_checkpoint_path(self, seed: int) -> tuple[Path, str]:
        key = content_hash(self.protocol.base_key(seed))
        return self.cache_dir / "base" / f"{self.protocol.model.name}-{key[:16]}.pt", key

    def base_is_cached(self, seed: int) -> bool:
        return self.base_checkpoint_path(seed)[0].exists()

    # ---- the run ------------------------------------------------------------------------------
    def run(self, jobs: Sequence[Job]) -> list[ResultRecord]:
        if not self.methods:
            self.prepare()
        todo = self.pending(jobs)
        if self.run_dir.exists():
            # Temporary files of a run killed mid-write; the result files themselves are never partial.
            for stale in self.run_dir.rglob(".*.tmp"):
                stale.unlink(missing_ok=True)
        if todo:
            resolved = {"hash": self.protocol.hash, "protocol": self.protocol.model_dump(mode="json")}
            write_atomic(self.run_dir / "protocol.json", json.dumps(resolved, indent=1))
        records = []
        for i, job in enumerate(todo):
            self.events.job_started(job, i, len(todo))
            record = self.run_job(job)
            save_result(job.path(self.run_dir), record)
            self.events.job_finished(job, record)
            records.append(record)
        return records

    def _build(self, seed: int) -> torch.nn.Module:
        data = self.data
        torch.manual_seed(derive_seed(seed, "init"))
        try:
            return build_model(self.protocol.model, num_classes=data.num_classes, input_shape=data.input_shape)
        except FieldError as exc:
            raise self.protocol.locate(exc) from None

    def _engine(
        self,
        model: torch.nn.Module,
        seed: int,
        saved: dict[str, dict[str, torch.Tensor]],
        retrain: TrainingSpec | None = None,
    ) -> Engine:
        p, data = self.protocol, self.data
        macs = layer_macs(model, data.input_shape)
        try:
            params = prunable_parameters(model, p.pruning.prunable, macs.keys())
        except FieldError as exc:
            raise p.locate(exc) from None
        prunable_macs = {name: macs[name.removesuffix(".weight")] for name in params}
        return Engine(
            model,
            data,
            device=self.device,
            masks=MaskSet(params, prunable_macs),
            all_macs=macs,
            seed=seed,
            eval_batch_size=p.data.eval_batch_size,
            test_curves=p.evaluation.test_curves,
            top_k=tuple(p.evaluation.top_k),
            saved_states=saved,
            retrain_spec=retrain or p.retrain,  # a retraining variant's recipe, for the jobs of that variant
            base_spec=p.base,
            on_epoch=self.events.epoch,
        )

    def base(self, seed: int) -> BaseCheckpoint:
        """The dense model of a seed: from the cache when its weights verify, else trained now."""
        if seed in self._bases:
            return self._bases[seed]
        path, key = self.base_checkpoint_path(seed)
        if path.exists():
            try:
                blob = torch.load(path, map_location="cpu", weights_only=True)
                if blob["key"] == key and weights_sha256(blob["states"]["final"]) == blob["sha256"]:
                    base = BaseCheckpoint(
                        key=key,
                        sha256=blob["sha256"],
                        states=blob["states"],
                        test=blob["test"],
                        val_top1=blob["val_top1"],
                        ledger=StageLedger.model_validate(blob["ledger"]),
                        curves=[EpochRecord.model_validate(c) for c in blob["curves"]],
                    )
                    self._bases[seed] = base
                    return base
                warnings.warn(f"cached base model {path} does not verify; training it again", stacklevel=2)
            except Exception as exc:  # a truncated or foreign cache file is retrained, never trusted
                warnings.warn(f"cached base model {path} is unreadable ({exc}); training it again", stacklevel=2)
        base = self._train_base(seed, key)
        buffer = io.BytesIO()
        torch.save(
            {
                "key": key,
                "sha256": base.sha256,
                "states": base.states,
                "test": base.test,
                "val_top1": base.val_top1,
                "ledger": base.ledger.model_dump(),
                "curves": [c.model_dump() for c in base.curves],
            },
            buffer,
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(buffer.getvalue())
        os.replace(tmp, path)
        self._bases[seed] = base
        return base

    def _train_base(self, seed: int, key: str) -> BaseCheckpoint:
        p = self.protocol
        self.events.base_started(seed, p.base.epochs)
        model = self._build(seed)
        init = state_copy(model)
        engine = self._engine(model, seed, {})
        steps_per_epoch = -(-self.data.train.num_examples // p.base.batch_size)
        rewind_step = round(p.pruning.rewind_epoch * steps_per_epoch)
        states = {"init": init, "rewind": init}

        def save_rewind(step: int, _: int) -> None:
            if step == rewind_step:
                states["rewind"] = state_copy(engine.model)

        engine.train(p.base, stage="base", on_step=save_rewind if rewind_step > 0 else None)
        states["final"] = state_copy(engine.model)
        test = engine.evaluate(self.data.test)
        val = engine.evaluate(self.data.val)
        return BaseCheckpoint(
            key=key,
            sha256=weights_sha256(states["final"]),
            states=states,
            test={"top1": test.top1, "top5": test.top5, "loss": test.loss},
            val_top1=val.top1,
            ledger=engine.ledger.base,
            curves=engine.curves,
        )

    def run_job(self, job: Job) -> ResultRecord:
        # A retraining variant's job runs and is audited under the protocol with the variant's recipe as `retrain`.
        p = self.protocol.for_variant(job.variant)
        method, loaded = self.methods[job.method_index]
        spec = p.methods[job.method_index]
        started = datetime.now(timezone.utc)
        t0 = time.perf_counter()
        ledger = Ledger()
        curves: list[EpochRecord] = []
        reasons: list[str] = []
        extra: dict[str, Any] = {}
        notes: dict[str, Any] = {}
        # The regime's recipe at the protocol's epochs; replaced below if the method asks for other epochs.
        try:
            recipe_name, retrain_spec = p.retraining_recipe(method.retraining)
        except ValueError:
            recipe_name, retrain_spec = "retrain", p.retrain
        try:
            base = self.base(job.seed)
            ledger.base = base.ledger
            model = self._build(job.seed)
            start = base.states["init" if method.taxonomy.when == "before_training" else "final"]
            model.load_state_dict(start)
            engine = self._engine(model, job.seed, base.states, p.retrain)
            engine.ledger = ledger
            engine.method = method
            analyses = Analyses(p.analyses, base.states, when=method.taxonomy.when, regime=method.retraining)
            if analyses.per_epoch:
                engine.analyses = analyses  # reads the weights after each epoch; never changes them
            dense_params = sum(t.numel() for t in model.parameters())
            dense_flops = engine.forward_flops
            ctx = PruningContext(
                engine,
                target_sparsity=job.sparsity,
                generator=torch.Generator().manual_seed(derive_seed(job.seed, job.method_key, job.sparsity)),
                scoring_examples=p.pruning.scoring_examples,
                budget=spec.budget or p.budget,
            )
            notes = engine.notes
            try:
                masks = method.prune(ctx)
            except JobFailed:
                raise
            except Exception as exc:
                raise JobFailed(f"{method.name}.prune raised {_describe(exc)}") from None
            if not engine.weights_changed:
                # A method scores and chooses; only the engine may change weights (by training or
                # rewinding through the context). Anything else would be retraining off the books.
                changed = changed_outside_engine(start, model, masks)
                if changed:
                    reasons.append(f"the method changed {changed} outside the engine while pruning")
            engine.set_masks(masks)
            regime = method.retraining
            if regime == "weight_rewinding":
                engine.load_weights(base.states["rewind"])
            elif regime == "scratch":
                torch.manual_seed(derive_seed(job.seed, job.method_key, job.sparsity, "scratch"))
                fresh = build_model(p.model, num_classes=self.data.num_classes, input_shape=self.data.input_shape)
                engine.load_weights(fresh.state_dict())
            try:
                asked = method.retrain_epochs(ctx)
            except Exception as exc:
                raise JobFailed(f"{method.name}.retrain_epochs raised {_describe(exc)}") from None
            if asked is not None and (isinstance(asked, bool) or not isinstance(asked, int) or asked < 0):
                raise JobFailed(f"{method.name}.retrain_epochs returned {asked!r}, not a number of epochs")
            try:
                recipe_name, retrain_spec = p.retraining_recipe(regime, asked)
            except ValueError as exc:
                raise JobFailed(f"no retraining recipe for {method.name}: {exc}") from None
            analyses.start_retraining(engine.masks.params, engine.masks.masks)
            try:
                engine.train(retrain_spec, stage="retrain")
            except JobFailed:
                raise
            except Exception as exc:
                raise JobFailed(f"retraining raised {_describe(exc)}") from None
            curves = engine.curves
            test = engine.evaluate(self.data.test)
            val = engine.evaluate(self.data.val)
            achieved, per_layer = measure_sparsity(engine.masks.params)
            kept = sum(n - z for n, z in per_layer.values())
            prunable_total = sum(n for n, _ in per_layer.values())
            extra = {
                "sparsity": SparsityRecord(
                    target=job.sparsity,
                    achieved=achieved,
                    tolerance=p.pruning.tolerance,
                    per_layer={k: LayerSparsity(numel=n, zeros=z) for k, (n, z) in per_layer.items()},
                ),
                "metrics": Metrics(
                    test_top1=test.top1,
                    test_top5=test.top5,
                    test_loss=test.loss,
                    val_top1=val.top1,
                    val_loss=val.loss,
                ),
                "base": BaseModelRecord(
                    checkpoint_sha256=base.sha256,
                    key=base.key,
                    test_top1=base.test["top1"],  # type: ignore[arg-type]
                    test_top5=base.test["top5"],
                    val_top1=base.val_top1,
                ),
                "cost": CostRecord(
                    params_dense=dense_params,
                    params_effective=dense_params - prunable_total + kept,
                    flops_dense=dense_flops,
                    flops_effective=engine.forward_flops,
                ),
            }
            extra["analyses"] = analyses.finish(curves, retrain_spec)
            if abs(achieved - job.sparsity) > p.pruning.tolerance + EPS:
                reasons.append(
                    f"achieved sparsity {achieved:.4f} is off the target {job.sparsity:g} by more than "
                    f"the tolerance {p.pruning.tolerance:g}"
                )
            budget = audit_budget(
                p,
                spec.budget,
                ledger,
                engine.pruning_specs,
                dense_flops,
                self.data.train.num_examples,
                retrain_used=retrain_spec,
                recipe=recipe_name,
            )
            reasons.extend(budget.violations)
            extra["budget"] = budget
            status = "violation" if reasons else "ok"
        except JobFailed as exc:
            status, reasons = "failed", [str(exc)]
        retraining = RetrainingRecord(
            regime=method.retraining,
            epochs=retrain_spec.epochs,
            optimizer=retrain_spec.optimizer.model_dump(),
            schedule=retrain_spec.schedule.model_dump(),
            recipe=recipe_name,
            batch_size=retrain_spec.batch_size,
        )
        finished = datetime.now(timezone.utc)
        return ResultRecord(
            job_id=job.id,
            protocol=ProtocolRef(
                name=p.name,
                hash=self.protocol.hash,
                comparison=p.comparison,
                source=str(p.source) if p.source else None,
            ),
            variant=variant_record(self.protocol, job.variant),
            method=MethodRecord(
                name=method.name,
                label=job.method_key,
                version=method.version,
                source=loaded.source,
                config=method.config.model_dump(mode="json"),
                taxonomy=method.taxonomy.model_dump(),
                citation=method.citation,
                notes=_jsonable(notes),
            ),
            seed=job.seed,
            target_sparsity=job.sparsity,
            status=status,
            reasons=reasons,
            retraining=retraining,
            ledger=ledger,
            curves=curves,
            provenance=Provenance(
                prunebench_version=prunebench.__version__,
                python=platform.python_version(),
                torch=torch.__version__,
                torchvision=torchvision.__version__,
                platform=platform.platform(),
                device=device_name(self.device),
                code_revision=code_revision(),
                command=" ".join(sys.argv),
                started_at=started.isoformat(timespec="seconds"),
                finished_at=finished.isoformat(timespec="seconds"),
                duration_s=round(time.perf_counter() - t0, 3),
            ),
            **extra,
        )


def changed_outside_engine(start: dict[str, torch.Tensor], model: torch.nn.Module, masks: Any) -> str | None:
    """The first parameter or buffer that differs from its start value (pruned positions aside)."""
    for name, value in model.state_dict().items():
        before = start[name].to(value.device)
        if name in masks and isinstance(masks[name], torch.Tensor) and masks[name].shape == value.shape:
            keep = masks[name].to(value.device).bool()
            if not torch.equal(value[keep], before[keep]):
                return name
        elif not torch.equal(value, before):
            return name
    return None


def _describe(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
    return f"{exc.__class__.__name__}: {exc}{where}"


def _jsonable(notes: dict[str, Any]) -> dict[str, Any]:
    """A method's notes as JSON values (a one-element tensor as its number, anything else as its text),
    so that a note can never break the result record."""

    def fallback(value: Any) -> Any:
        return value.item() if isinstance(value, torch.Tensor) and value.numel() == 1 else str(value)

    return json.loads(json.dumps(notes, default=fallback))


def recipe_differences(used: TrainingSpec, fixed: TrainingSpec) -> list[str]:
    """How a retraining recipe differs from the protocol's apart from its length (optimizer, batch size,
    loss, LR schedule), as `field used (protocol: fixed)`. Schedule fields measured in epochs are compared
    only when the lengths agree: a stretched schedule is the same schedule, its length judged as epochs."""

    def flat(spec: TrainingSpec) -> dict[str, Any]:
        raw = spec.model_dump(exclude={"epochs"})
        out = {f"{group}.{k}": v for group in ("optimizer", "schedule") for k, v in raw.pop(group).items()}
        out.update(raw)
        if used.epochs != fixed.epochs:
            for key in ("schedule.milestones", "schedule.step_size", "schedule.warmup_epochs"):
                out.pop(key)
        return out

    a, b = flat(used), flat(fixed)
    return [f"{k} {a[k]} (protocol: {b[k]})" for k in a if a[k] != b[k]]


def audit_budget(
    protocol: Protocol,
    stated: Any,
    ledger: Ledger,
    pruning_specs: Sequence[TrainingSpec],
    dense_flops: float,
    train_size: int,
    *,
    retrain_used: TrainingSpec | None = None,
    recipe: str = "retrain",
) -> BudgetRecord:
    """Check what a job spent (the ledger) against the budget and the comparison setup.

    `retrain_used` is the recipe the retraining stage ran (default: the protocol's) and `recipe` its name.
    S3.1 and above fix the retraining epochs; S3.2 and above also the retraining recipe (optimizer, batch
    size, LR schedule), so learning-rate rewinding is a violation there unless the protocol's `retrain`
    is that schedule. SX-A / SX-B judge only the totals, whatever the regime spends them on."""
    budget = stated or protocol.budget
    setup = protocol.comparison
    retrain = protocol.retrain
    total_epochs = budget.total_epochs if budget.total_epochs is not None else budget.pruning_epochs + retrain.epochs
    total_flops = (
        budget.total_train_flops
        if budget.total_train_flops is not None
        else 3.0 * dense_flops * train_size * retrain.epochs
    )
    limits: dict[str, float | None] = {
        "pruning_epochs": budget.pruning_epochs,
        "scoring_examples": float(protocol.pruning.scoring_examples),
        "retrain_epochs": float(retrain.epochs),
        "total_epochs": total_epochs,
        "total_train_flops": total_flops,
    }
    spent = ledger.after_base()
    violations = []
    if ledger.pruning.forward_examples > protocol.pruning.scoring_examples:
        violations.append(
            f"scored weights on {ledger.pruning.forward_examples} examples; the protocol allows "
            f"{protocol.pruning.scoring_examples}"
        )
    if ledger.pruning.epochs > budget.pruning_epochs + EPS:
        violations.append(
            f"trained {ledger.pruning.epochs:.2f} epochs while pruning; the budget allows {budget.pruning_epochs:g}"
        )
    order = ["S1", "S2", "S3.1", "S3.2", "S4.1", "S4.2"]
    level = order.index(setup) if setup in order else -1
    if level >= order.index("S3.1") and abs(ledger.retrain.epochs - retrain.epochs) > EPS:
        violations.append(f"{setup}: retrained {ledger.retrain.epochs:.2f} epochs; the protocol fixes {retrain.epochs}")
    differences = recipe_differences(retrain_used, retrain) if retrain_used is not None else []
    if level >= order.index("S3.2") and differences:
        violations.append(
            f"{setup}: retrained with the {recipe} recipe, not the protocol's retraining recipe that every "
            f"method shares: {'; '.join(differences)}"
        )
    if level >= order.index("S4.1") and abs(ledger.pruning.epochs - budget.pruning_epochs) > EPS:
        violations.append(
            f"{setup}: pruned over {ledger.pruning.epochs:.2f} epochs; every method must spend "
            f"{budget.pruning_epochs:g}"
        )
    if level >= order.index("S4.2"):
        for spec in pruning_specs:
            if spec.optimizer != retrain.optimizer or spec.schedule.name != retrain.schedule.name:
                violations.append(f"{setup}: trained while pruning with an optimizer or LR schedule of its own")
                break
    if setup == "SX-A" and spent.epochs > total_epochs + EPS:
        violations.append(f"SX-A: {spent.epochs:.2f} epochs after the base model; the budget is {total_epochs:g}")
    if setup == "SX-B" and spent.train_flops + spent.forward_flops > total_flops * (1 + EPS):
        violations.append(
            f"SX-B: {spent.train_flops + spent.forward_flops:.3g} training FLOPs after the base model; "
            f"the budget is {total_flops:.3g}"
        )
    return BudgetRecord(
        comparison=setup,
        stated_by="method" if stated is not None else "protocol",
        limits=limits,
        violations=violations,
    )
