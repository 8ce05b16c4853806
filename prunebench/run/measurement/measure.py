"""The runner's measurement of a job's final weights, in the runner's own process, by its own code.

The weights a job's process returns are loaded into a fresh model of the protocol's architecture, strictly:
a parameter, buffer or module the architecture does not have (a dense copy, a shadow layer, extra capacity),
or one it has and the weights lack, is a violation naming it. Sparsity is counted from the weights' zeros,
FLOPs from the same zeros, effective sparsity and disconnection from the same zeros (`connectivity`), parameters
from the architecture, accuracy by evaluating the loaded model, so no number of a record comes from what a
method's process says about itself.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from prunebench.data import DataBundle, Split
from prunebench.efficiency import Compacted, CompactionError, compact
from prunebench.engine import Evaluation, evaluate
from prunebench.masks import effective_macs, measure_sparsity, weight_density
from prunebench.protocol import Protocol
from prunebench.results import CompactionRecord, CostRecord, LayerSparsity, SparsityRecord
from prunebench.run.measurement.connectivity import measure_connectivity
from prunebench.run.setup import fresh_model, prunable_of
from prunebench.tasks import TASKS

MAX_NAMED = 5


@dataclass
class Measured:
    """What the runner measured of the final weights; `problems` are violations found loading them."""

    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # what could not be measured, the job's results kept
    compacted: Compacted | None = None
    sparsity: SparsityRecord | None = None
    cost: CostRecord | None = None
    test: Evaluation | None = None
    val: Evaluation | None = None


class Measurer:
    """A model of the protocol's architecture in the runner, to load reported weights into and measure."""

    def __init__(self, protocol: Protocol, data: DataBundle, device: torch.device, *, limit: int | None = None) -> None:
        self.protocol, self.data, self.device = protocol, data, device
        self.limit = limit  # a smoke run's: evaluations of this many batches
        with torch.random.fork_rng(devices=[]):  # the runner's random state is not the model's business
            model = fresh_model(protocol, data)
        self.params, self.macs = prunable_of(protocol, model, data)
        self.model = model.to(device)
        self.keys = dict(model.state_dict())
        self.params_dense = sum(t.numel() for t in model.parameters())
        self.flops_dense = 2.0 * sum(self.macs.values())

    def load(self, state: dict[str, Tensor]) -> list[str]:
        """Load `state` strictly enough to measure it; returns the violations (extra, missing or reshaped
        entries). Missing or reshaped entries leave nothing to measure: see `loaded`."""
        extra = sorted(set(state) - set(self.keys))
        missing = sorted(set(self.keys) - set(state))
        reshaped = sorted(
            k
            for k in set(state) & set(self.keys)
            if state[k].shape != self.keys[k].shape or state[k].dtype != self.keys[k].dtype
        )
        problems = []
        if extra:
            problems.append(
                f"the final model has {len(extra)} parameter(s) or buffer(s) the protocol's architecture does not "
                f"({_named(extra)}): capacity that no count sees"
            )
        if missing:
            problems.append(
                f"the final weights lack {len(missing)} entry(ies) of the protocol's architecture ({_named(missing)})"
            )
        if reshaped:
            problems.append(
                f"the final weights have {len(reshaped)} entry(ies) of another shape or type ({_named(reshaped)})"
            )
        self.loaded = not missing and not reshaped
        if self.loaded:
            self.model.load_state_dict({k: state[k] for k in self.keys}, strict=True)
        return problems

    def evaluate(self, split: Split, *, mixed_precision: bool) -> Evaluation:
        p = self.protocol
        return evaluate(
            self.model,
            split,
            num_classes=self.data.num_classes,
            batch_size=p.data.eval_batch_size,
            device=self.device,
            top_k=tuple(p.evaluation.top_k),
            mixed_precision=mixed_precision,
            limit=self.limit,
            task=TASKS[p.task],
        )

    def measure(
        self,
        state: dict[str, Tensor],
        target: float | None,
        *,
        mixed_precision: bool,
        granularity: str = "unstructured",
    ) -> Measured:
        """Sparsity, cost and accuracy of `state`. A filter-granularity method's model is compacted physically
        and its cost counted from the compacted module (its zeros must then lie in whole filters)."""
        out = Measured(problems=self.load(state))
        if not self.loaded:
            return out
        achieved, per_layer = measure_sparsity(self.params)
        kept = sum(n - z for n, z in per_layer.values())
        prunable_total = sum(n for n, _ in per_layer.values())
        connected = measure_connectivity(self.model, per_layer, self.data.input_shape, self.protocol.task)
        ineffective = connected.effective_zeros or {}
        out.sparsity = SparsityRecord(
            target=target,
            achieved=achieved,
            tolerance=self.protocol.pruning.tolerance,
            per_layer={
                k: LayerSparsity(numel=n, zeros=z, effective_zeros=ineffective.get(k))
                for k, (n, z) in per_layer.items()
            },
            effective=connected.effective(per_layer),
            effective_margin=self.protocol.pruning.effective_margin,
            connectivity=connected.record,
        )
        out.cost = CostRecord(
            params_dense=self.params_dense,
            params_effective=self.params_dense - prunable_total + kept,
            flops_dense=self.flops_dense,
            # from the weights' own zeros, by the engine's rule
            flops_effective=2.0 * effective_macs(self.macs, weight_density(self.params)),
        )
        assert self.data.test is not None
        if granularity == "filter":
            self._compact(out)
        out.test = self.evaluate(self.data.test, mixed_precision=mixed_precision)
        out.val = self.evaluate(self.data.val, mixed_precision=mixed_precision)
        return out

    def dense_model(self, state: dict[str, Tensor]) -> nn.Module:
        """A model of the architecture holding `state` (the dense base model), beside the measured one."""
        model = copy.deepcopy(self.model)
        model.load_state_dict(state, strict=True)
        return model

    def check_batch(self) -> Tensor:
        """Test inputs a compaction is checked on: the test split's first examples (64 at most)."""
        assert self.data.test is not None
        size = min(64, self.data.test.num_examples)
        x, _ = next(iter(self.data.test.batches(size, shuffle=False, train=False, generator=None, device=self.device)))
        return x

    def _compact(self, out: Measured) -> None:
        """Zeros in whole filters, and in the input channels that go with removed channels, only; then the
        compacted model's own parameters and MACs as the cost."""
        compacted: Compacted | None = None
        failure: CompactionError | None = None
        try:
            compacted = compact(self.model, self.check_batch())
        except CompactionError as exc:
            failure = exc
        scattered = scattered_zeros(self.params, compacted.inputs_removed if compacted is not None else {})
        if scattered:
            total = sum(scattered.values())
            out.problems.append(
                f"the method claims filter granularity, but {total} zero weight(s) of its final model lie outside "
                f"whole filters and removed channels' input slices ({_named(sorted(scattered))})"
            )
            out.warnings.append("not compacted: the masks are not whole filters")
            return
        if compacted is None:
            out.warnings.append(f"not compacted: {failure}")
            return
        out.compacted = compacted
        assert out.cost is not None
        out.cost = out.cost.model_copy(
            update={
                "params_effective": compacted.params,
                "flops_effective": 2.0 * compacted.macs,
                "counted": "compacted",
                "compaction": CompactionRecord(
                    channels_removed=compacted.channels_removed,
                    params=compacted.params,
                    macs=float(compacted.macs),
                    max_abs_diff=compacted.max_abs_diff,
                ),
            }
        )

    def test_top1(self, state: dict[str, Tensor], mixed_precision: bool) -> float | None:
        """Test top-1 of a reported state (a test curve's point); None when it is not the architecture's."""
        if self.data.test is None or self.load(state):
            return None
        return self.evaluate(self.data.test, mixed_precision=mixed_precision).top1


def scattered_zeros(params: dict[str, Tensor], inputs_removed: dict[str, list[int]]) -> dict[str, int]:
    """By prunable weight: its zeros outside whole zero filters (dim 0) and outside the input channels (dim 1)
    that compaction removed with their channels (`inputs_removed`, by layer name); only weights that have some."""
    found = {}
    for name, p in params.items():
        if p.dim() < 2:
            continue
        zero = p.detach() == 0
        covered = zero.flatten(1).all(1).view(-1, *[1] * (p.dim() - 1)).expand_as(zero).clone()
        columns = inputs_removed.get(name.removesuffix(".weight"), [])
        if columns:
            covered[:, torch.tensor(columns, dtype=torch.long, device=p.device)] = True
        count = int((zero & ~covered).sum())
        if count:
            found[name] = count
    return found


def _named(names: list[str]) -> str:
    shown = ", ".join(names[:MAX_NAMED])
    return shown + (f" and {len(names) - MAX_NAMED} more" if len(names) > MAX_NAMED else "")
