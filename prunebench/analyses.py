"""The analyses of a job that the protocol asks for: cascade weight shedding, weight correlation and
trainability accuracy, measured from the weights the job trained (docs/analyses.md: the exact definitions and
the papers).

The functions here are pure: they read weights, masks and reference states and return numbers.
`Analyses` is the driver, held by the runner (prunebench.run), never by the engine: the engine only sends
the weights and masks with its reports (a Snapshot, when its observer wants them), and the runner analyses
the weights of the end of every pruning-stage and retraining epoch (stored in `EpochRecord.analyses`), the
weights retraining starts from, and, once retraining ends, the trainability accuracy of the curve (both in
`ResultRecord.analyses`). Nothing here changes weights, draws random numbers or reads data, and it runs in
the runner's process, not the job's, so turning analyses on cannot change what is trained or selected.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

if TYPE_CHECKING:
    from prunebench.protocol import AnalysesSpec, ScheduleSpec, TrainingSpec
    from prunebench.results import EpochRecord

# The protocol's names of the reference states, and the keys the base checkpoint stores them under.
REFERENCE_STATES = {"init": "init", "rewind": "rewind", "base": "final"}
DIGITS = 6  # decimals kept in the records: plenty for fractions, and it keeps result files small


def _magnitudes(t: Tensor) -> Tensor:
    return t.detach().reshape(-1).abs().float()


def _fraction(num: float, den: float) -> float | None:
    return round(num / den, DIGITS) if den else None


def _significant(x: float) -> float:
    return float(f"{x:.6g}")  # thresholds are magnitudes of any scale: keep significant digits, not decimals


def _p_key(p: float) -> str:
    return f"{p:g}"


# ---- cascade weight shedding (Azarian & Porikli 2021) ---------------------------------------------
def kth_smallest(values: Tensor, k: int) -> float:
    """The k-th smallest entry (1-based) of a flat tensor; 0.0 for k = 0 (nothing pruned, no threshold)."""
    if k <= 0:
        return 0.0
    return float(torch.kthvalue(values.cpu(), k).values)


def shedding_thresholds(
    reference: Mapping[str, Tensor],
    masks: Mapping[str, Tensor],
    *,
    rule: str,
    factor: float,
) -> dict[str, float]:
    """The magnitude below which a kept weight of each layer counts as shed.

    global_pruning: factor x the threshold of global magnitude pruning of the reference weights to
    the masks' sparsity (the k-th smallest |w| over all layers, k = weights the masks remove).
    layer_pruning: the same per layer (k_l = weights the mask removes in that layer).
    layer_scale: factor x the root mean square of the layer's reference weights.
    """
    if rule == "global_pruning":
        pruned = sum(int((~m.bool()).sum()) for m in masks.values())
        flat = torch.cat([_magnitudes(reference[name]).cpu() for name in masks])
        t = factor * kth_smallest(flat, pruned)
        return dict.fromkeys(masks, t)
    if rule == "layer_pruning":
        return {
            name: factor * kth_smallest(_magnitudes(reference[name]), int((~m.bool()).sum()))
            for name, m in masks.items()
        }
    if rule == "layer_scale":
        return {name: factor * float(reference[name].detach().float().pow(2).mean().sqrt()) for name in masks}
    raise ValueError(f"unknown shedding threshold rule {rule!r}")


@dataclass(frozen=True)
class LayerShedding:
    numel: int
    pruned: int  # removed by the mask
    shed: int  # kept by the mask, yet |w| < threshold
    threshold: float

    @property
    def kept(self) -> int:
        return self.numel - self.pruned


def shedding_counts(
    weights: Mapping[str, Tensor], masks: Mapping[str, Tensor], thresholds: Mapping[str, float]
) -> dict[str, LayerShedding]:
    """Per layer: weights pruned by the mask, and kept weights whose magnitude is below the threshold."""
    out = {}
    for name, w in weights.items():
        keep = masks[name].to(w.device).bool()
        t = thresholds[name]
        shed = int((keep & (w.detach().abs() < t)).sum()) if t > 0 else 0
        out[name] = LayerShedding(numel=w.numel(), pruned=int((~keep).sum()), shed=shed, threshold=t)
    return out


def shedding_summary(counts: Mapping[str, LayerShedding], *, per_layer: bool) -> dict[str, Any]:
    """shed_fraction: shed / kept. effective_sparsity: (pruned + shed) / all, the sparsity a final
    magnitude prune at the threshold would find."""
    numel = sum(c.numel for c in counts.values())
    pruned = sum(c.pruned for c in counts.values())
    shed = sum(c.shed for c in counts.values())
    out: dict[str, Any] = {
        "shed": shed,
        "shed_fraction": _fraction(shed, numel - pruned),
        "effective_sparsity": _fraction(pruned + shed, numel),
    }
    if per_layer:
        out["layers"] = {
            name: {
                "threshold": _significant(c.threshold),
                "shed": c.shed,
                "shed_fraction": _fraction(c.shed, c.kept),
                "effective_sparsity": _fraction(c.pruned + c.shed, c.numel),
            }
            for name, c in counts.items()
        }
    return out


# ---- weight correlation (Liu et al. 2021) ---------------------------------------------------------
def top_count(p: float, numel: int) -> int:
    """k = p x N rounded half up: the size of Top-p of a layer of N weights."""
    return math.floor(p * numel + 0.5)


@dataclass(frozen=True)
class Cut:
    """Top-k of a magnitude vector: everything above `value` is in; of the `ties` entries equal to
    it, `share` of each is in (k - #above spread evenly), which is the expected membership under
    a random tie-break and keeps pruned zeros from counting as agreement."""

    value: float
    share: float

    def membership(self, magnitudes: Tensor) -> Tensor:
        return (magnitudes > self.value).float() + (magnitudes == self.value).float() * self.share


def top_cuts(magnitudes: Tensor, ks: Sequence[int]) -> list[Cut | None]:
    """The cut of Top-k for each k (None for k = 0), from one sort of the magnitudes."""
    ordered = magnitudes.sort(descending=True).values
    cuts: list[Cut | None] = []
    for k in ks:
        if k <= 0:
            cuts.append(None)
            continue
        value = ordered[k - 1]
        above = int((ordered > value).sum())
        ties = int((ordered == value).sum())
        cuts.append(Cut(float(value), (k - above) / ties))
    return cuts


def overlaps(
    magnitudes: Tensor, cuts: Sequence[Cut | None], other: Tensor, other_cuts: Sequence[Cut | None]
) -> list[float]:
    """|Top-k(a) ∩ Top-k(b)| for each pair of cuts, ties counted by expected membership."""
    return [
        0.0 if ca is None or cb is None else float((ca.membership(magnitudes) * cb.membership(other)).sum())
        for ca, cb in zip(cuts, other_cuts, strict=True)
    ]


def layer_overlaps(
    a: Mapping[str, Tensor], b: Mapping[str, Tensor], ps: Sequence[float]
) -> dict[str, list[tuple[float, int]]]:
    """Per layer and p: (|Top-p(a_l) ∩ Top-p(b_l)|, k_l)."""
    out = {}
    for name, ta in a.items():
        ma = _magnitudes(ta)
        mb = _magnitudes(b[name]).to(ma.device)
        ks = [top_count(p, ma.numel()) for p in ps]
        out[name] = list(zip(overlaps(ma, top_cuts(ma, ks), mb, top_cuts(mb, ks)), ks, strict=True))
    return out


def weight_correlation(a: Mapping[str, Tensor], b: Mapping[str, Tensor], p: float) -> float | None:
    """R_p(a, b) = sum_l |Top-p(a_l) ∩ Top-p(b_l)| / sum_l k_l; p for independent weights, 1 for equal ones."""
    rows = layer_overlaps(a, b, [p])
    return _fraction(sum(r[0][0] for r in rows.values()), sum(r[0][1] for r in rows.values()))


# ---- trainability accuracy (Wang et al. 2023) -----------------------------------------------------
def first_lr_stage_epochs(schedule: ScheduleSpec, epochs: int) -> int:
    """Epochs of the first LR stage of a stage of `epochs` epochs: up to the first LR decay after the
    stage starts. multistep: the first milestone; step: the first step; constant: every epoch;
    cosine (which decays continuously): until the LR has fallen halfway from its peak to min_lr, i.e.
    the first half of the decay after any warmup. A stage entered part-way into a longer schedule
    (start_epoch, as learning-rate rewinding does) counts from where it enters; when the schedule
    holds no further decay point, every epoch. Rounded up, at least 1, at most `epochs`."""
    if epochs <= 0:
        return 0
    start = schedule.start_epoch
    span = schedule.span_epochs or epochs
    end: float | None = None  # the schedule epoch at which the first LR stage ends
    if schedule.name == "multistep":
        end = next((m for m in schedule.milestones if m > start), None)
    elif schedule.name == "step":
        assert schedule.step_size is not None
        end = (math.floor(start / schedule.step_size) + 1) * schedule.step_size
    elif schedule.name == "cosine":
        middle = (span + schedule.warmup_epochs) / 2
        end = middle if middle > start else None
    n = epochs if end is None else math.ceil(end - start - 1e-9)
    return max(1, min(n, epochs))


def trainability_accuracy(val_top1: Sequence[float], epochs: int) -> float:
    """Mean validation accuracy over the first `epochs` retraining epochs."""
    if epochs <= 0 or len(val_top1) < epochs:
        raise ValueError(f"trainability over {epochs} epochs needs that many epochs; the curve has {len(val_top1)}")
    return sum(val_top1[:epochs]) / epochs


# ---- the driver ---------------------------------------------------------------------------------
def shedding_reference(when: str, regime: str) -> str:
    """The reference state that `reference: auto` means: the dense weights retraining starts from."""
    if regime == "weight_rewinding":
        return "rewind"
    if regime == "scratch" or when == "before_training":
        return "init"  # a scratch run starts from a fresh draw of the same distribution as init
    return "base"


class Analyses:
    """What the runner calls on the weights of the end of each epoch (pruning stage and retraining),
    of the start of retraining, and once retraining ends. It holds the reference states and caches
    what depends only on them (their Top-p cuts, the shedding thresholds of a set of masks)."""

    def __init__(
        self, spec: AnalysesSpec, states: Mapping[str, Mapping[str, Tensor]], *, when: str, regime: str
    ) -> None:
        self.spec = spec
        self.states = states
        self.shedding_reference = (
            shedding_reference(when, regime) if spec.shedding.reference == "auto" else spec.shedding.reference
        )
        self._thresholds: dict[tuple[int, ...], dict[str, float]] = {}
        self._reference_cuts: dict[tuple[str, str], list[Cut | None]] = {}
        self._start: dict[str, Any] = {}
        self._warned = False

    @property
    def per_epoch(self) -> bool:
        return self.spec.shedding.enabled or self.spec.correlation.enabled

    def _reference(self, which: str, name: str) -> Tensor:
        return self.states[REFERENCE_STATES[which]][name]

    def shedding(self, weights: Mapping[str, Tensor], masks: Mapping[str, Tensor]) -> dict[str, Any]:
        spec = self.spec.shedding
        key = tuple(int((~m.bool()).sum()) for m in masks.values())  # masks change only while pruning
        if key not in self._thresholds:
            reference = {name: self._reference(self.shedding_reference, name) for name in masks}
            self._thresholds[key] = shedding_thresholds(reference, masks, rule=spec.threshold, factor=spec.factor)
        thresholds = self._thresholds[key]
        counts = shedding_counts(weights, masks, thresholds)
        out = shedding_summary(counts, per_layer=spec.per_layer)
        if spec.threshold == "global_pruning":
            out["threshold"] = _significant(next(iter(thresholds.values())))
        return out

    def correlation(self, weights: Mapping[str, Tensor]) -> dict[str, Any]:
        spec = self.spec.correlation
        sums = {which: [[0.0, 0] for _ in spec.p] for which in spec.against}
        layers: dict[str, dict[str, dict[str, float | None]]] = {}
        for name, w in weights.items():
            mw = _magnitudes(w)
            ks = [top_count(p, mw.numel()) for p in spec.p]
            # One sort and one membership vector per p of the current weights serve every reference.
            members = [None if c is None else c.membership(mw) for c in top_cuts(mw, ks)]
            for which in spec.against:
                mr = _magnitudes(self._reference(which, name)).to(mw.device)
                if (which, name) not in self._reference_cuts:
                    self._reference_cuts[(which, name)] = top_cuts(mr, ks)
                row = [
                    0.0 if m is None or c is None else float((m * c.membership(mr)).sum())
                    for m, c in zip(members, self._reference_cuts[(which, name)], strict=True)
                ]
                for i, (overlap, k) in enumerate(zip(row, ks, strict=True)):
                    sums[which][i][0] += overlap
                    sums[which][i][1] += k
                if spec.per_layer:
                    layers.setdefault(name, {})[which] = {
                        _p_key(p): _fraction(row[i], ks[i]) for i, p in enumerate(spec.p)
                    }
        out: dict[str, Any] = {
            which: {_p_key(p): _fraction(*sums[which][i]) for i, p in enumerate(spec.p)} for which in spec.against
        }
        if spec.per_layer:
            out["layers"] = layers
        return out

    @torch.no_grad()
    def __call__(self, stage: str, weights: Mapping[str, Tensor], masks: Mapping[str, Tensor]) -> dict[str, Any]:
        """The per-epoch analyses of the current weights. An analysis that fails is recorded as an
        error and never fails the job: a bug here must not cost a training run."""
        out: dict[str, Any] = {}
        jobs: list[tuple[str, Callable[[], dict[str, Any]]]] = []
        if self.spec.shedding.enabled:
            jobs.append(("shedding", lambda: self.shedding(weights, masks)))
        if self.spec.correlation.enabled:
            jobs.append(("correlation", lambda: self.correlation(weights)))
        for name, run in jobs:
            try:
                out[name] = run()
            except Exception as exc:
                out[name] = {"error": f"{exc.__class__.__name__}: {exc}"}
                if not self._warned:
                    warnings.warn(f"analysis {name} failed in the {stage} stage: {exc}", stacklevel=2)
                    self._warned = True
        return out

    def start_retraining(self, weights: Mapping[str, Tensor], masks: Mapping[str, Tensor]) -> None:
        """Analyse the pruned weights retraining starts from: the baseline of every curve (random
        pruning, say, keeps small weights that count as shed before any retraining)."""
        if self.per_epoch:
            self._start = self("retrain", weights, masks)

    def finish(self, curves: Sequence[EpochRecord], retrain: TrainingSpec) -> dict[str, Any]:
        """What goes into ResultRecord.analyses: the retraining-start snapshot and the trainability."""
        out: dict[str, Any] = {}
        if self.spec.shedding.enabled:
            out["shedding_reference"] = self.shedding_reference
        if self._start:
            out["retrain_start"] = self._start
        spec = self.spec.trainability
        if spec.enabled:
            n = spec.epochs if spec.epochs is not None else first_lr_stage_epochs(retrain.schedule, retrain.epochs)
            retraining = sorted((c for c in curves if c.stage == "retrain"), key=lambda c: c.epoch)
            val = [c.val_top1 for c in retraining]
            if n <= 0 or len(val) < n:
                out["trainability"] = {"error": f"needs {n} retraining epochs; the curve has {len(val)}"}
            else:
                source = "protocol" if spec.epochs is not None else f"first LR stage ({retrain.schedule.name})"
                out["trainability"] = {
                    "accuracy": round(trainability_accuracy(val, n), DIGITS),
                    "epochs": n,
                    "epochs_from": source,
                    "split": "val",
                }
        return out
