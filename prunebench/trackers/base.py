"""The tracker contract, what every tracker logs of a record, and choosing trackers by name."""

from __future__ import annotations

import importlib.util
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from prunebench.errors import PrunebenchError
from prunebench.results import ResultRecord

# name -> (module of prunebench.trackers, the package it needs, the extra that installs it)
TRACKERS: dict[str, tuple[str, str, str]] = {
    "tensorboard": ("tensorboard", "tensorboard", "tensorboard"),
    "mlflow": ("mlflow", "mlflow", "mlflow"),
    "wandb": ("wandb", "wandb", "wandb"),
}


class Tracker(ABC):
    """Logs finished jobs; `run_dir` is the run directory the records are in (local trackers write below it)."""

    def __init__(self, run_dir: Path, protocol: str, protocol_hash: str) -> None:
        self.run_dir, self.protocol, self.protocol_hash = run_dir, protocol, protocol_hash

    @property
    def group(self) -> str:
        """What a protocol's jobs are grouped under: its name and hash."""
        return f"{self.protocol}-{self.protocol_hash[:10]}"

    @abstractmethod
    def log(self, record: ResultRecord) -> None: ...

    def close(self) -> None:  # noqa: B027  (most trackers have nothing to close)
        pass


def params_of(record: ResultRecord) -> dict[str, Any]:
    """The job's identity and configuration, flat: what a tracker shows as a run's parameters."""
    params: dict[str, Any] = {
        "job": record.job_id,
        "protocol": record.protocol.name,
        "protocol_hash": record.protocol.hash,
        "comparison": record.protocol.comparison,
        "method": record.method.name,
        "label": record.method.label,
        "method_version": record.method.version,
        "seed": record.seed,
        "target_sparsity": record.target_sparsity,
        "retraining": record.retraining.regime,
        "retrain_epochs": record.retraining.epochs,
        "status": record.status,
    }
    params |= {f"config.{k}": v for k, v in sorted(record.method.config.items())}
    params |= {f"taxonomy.{k}": v for k, v in sorted(record.method.taxonomy.items())}
    if record.target is not None:  # a cost target: no sparsity to show
        del params["target_sparsity"]
        params |= {"target_kind": record.target.kind, "target": record.target.value}
    if record.variant is not None:
        params["variant"] = record.variant.name
    return params


def final_metrics(record: ResultRecord) -> dict[str, float]:
    """The measured numbers of the job: accuracy, sparsity, cost and what it spent."""
    out: dict[str, float] = {}
    if record.metrics is not None:
        m = record.metrics
        out |= {"test_top1": m.test_top1, "test_loss": m.test_loss, "val_top1": m.val_top1, "val_loss": m.val_loss}
        if m.test_top5 is not None:
            out["test_top5"] = m.test_top5
        if m.test_perplexity is not None:  # a causal LM's: its ranked metric
            out["test_perplexity"] = m.test_perplexity
        if m.val_perplexity is not None:
            out["val_perplexity"] = m.val_perplexity
    if record.sparsity is not None:
        out["sparsity_achieved"] = record.sparsity.achieved
    if record.cost is not None and record.cost.flops_dense:
        out["flops_reduction"] = 1 - record.cost.flops_effective / record.cost.flops_dense
        out["params_effective"] = float(record.cost.params_effective)
    for stage in ("pruning", "retrain"):
        ledger = getattr(record.ledger, stage)
        out |= {f"ledger.{stage}.epochs": ledger.epochs, f"ledger.{stage}.train_flops": ledger.train_flops}
    if record.base is not None:
        out["base_test_top1"] = record.base.test_top1
        if record.base.test_perplexity is not None:
            out["base_test_perplexity"] = record.base.test_perplexity
    return out


CURVE_METRICS = ("train_loss", "train_top1", "val_loss", "val_top1", "test_top1", "lr", "sparsity")


def curve_points(record: ResultRecord) -> Iterator[tuple[str, int, float]]:
    """(metric name `stage/metric`, step, value) of every epoch of the job's curves; the step counts epochs
    over the job's stages, so pruning's epochs come before retraining's on one axis."""
    for step, epoch in enumerate(record.curves, start=1):
        for name in CURVE_METRICS:
            value = getattr(epoch, name)
            if value is not None:
                yield f"{epoch.stage}/{name}", step, float(value)


def make_trackers(names: Sequence[str], run_dir: Path, protocol: str, protocol_hash: str) -> list[Tracker]:
    """The trackers named (checked before any work: a name that is none, a package that is not installed)."""
    out: list[Tracker] = []
    for name in names:
        if name not in TRACKERS:
            raise PrunebenchError(f"--log must be one of {', '.join(TRACKERS)} (got {name!r})")
        module, package, extra = TRACKERS[name]
        if importlib.util.find_spec(package) is None:
            raise PrunebenchError(
                f"--log {name} needs {package}, which is not installed: pip install 'prunebench[{extra}]'"
            )
        cls = importlib.import_module(f"prunebench.trackers.{module}").TRACKER
        out.append(cls(run_dir, protocol, protocol_hash))
    return out
