"""The runner's measurement of a job's final weights, in the runner's own process, by its own code.

The weights a job's process returns are loaded into a fresh model of the protocol's architecture, strictly:
a parameter, buffer or module the architecture does not have (a dense copy, a shadow layer, extra capacity),
or one it has and the weights lack, is a violation naming it. Sparsity is counted from the weights' zeros,
FLOPs from the same zeros, parameters from the architecture, accuracy by evaluating the loaded model, so no
number of a record comes from what a method's process says about itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from prunebench.data import DataBundle, Split
from prunebench.engine import Evaluation, evaluate
from prunebench.masks import effective_macs, measure_sparsity, weight_density
from prunebench.protocol import Protocol
from prunebench.results import CostRecord, LayerSparsity, SparsityRecord
from prunebench.run.setup import fresh_model, prunable_of

MAX_NAMED = 5


@dataclass
class Measured:
    """What the runner measured of the final weights; `problems` are violations found loading them."""

    problems: list[str] = field(default_factory=list)
    sparsity: SparsityRecord | None = None
    cost: CostRecord | None = None
    test: Evaluation | None = None
    val: Evaluation | None = None


class Measurer:
    """A model of the protocol's architecture in the runner, to load reported weights into and measure."""

    def __init__(self, protocol: Protocol, data: DataBundle, device: torch.device) -> None:
        self.protocol, self.data, self.device = protocol, data, device
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
        )

    def measure(self, state: dict[str, Tensor], target: float, *, mixed_precision: bool) -> Measured:
        out = Measured(problems=self.load(state))
        if not self.loaded:
            return out
        achieved, per_layer = measure_sparsity(self.params)
        kept = sum(n - z for n, z in per_layer.values())
        prunable_total = sum(n for n, _ in per_layer.values())
        out.sparsity = SparsityRecord(
            target=target,
            achieved=achieved,
            tolerance=self.protocol.pruning.tolerance,
            per_layer={k: LayerSparsity(numel=n, zeros=z) for k, (n, z) in per_layer.items()},
        )
        out.cost = CostRecord(
            params_dense=self.params_dense,
            params_effective=self.params_dense - prunable_total + kept,
            flops_dense=self.flops_dense,
            # from the weights' own zeros, by the engine's rule
            flops_effective=2.0 * effective_macs(self.macs, weight_density(self.params)),
        )
        assert self.data.test is not None
        out.test = self.evaluate(self.data.test, mixed_precision=mixed_precision)
        out.val = self.evaluate(self.data.val, mixed_precision=mixed_precision)
        return out

    def test_top1(self, state: dict[str, Tensor], mixed_precision: bool) -> float | None:
        """Test top-1 of a reported state (a test curve's point); None when it is not the architecture's."""
        if self.data.test is None or self.load(state):
            return None
        return self.evaluate(self.data.test, mixed_precision=mixed_precision).top1


def _named(names: list[str]) -> str:
    shown = ", ".join(names[:MAX_NAMED])
    return shown + (f" and {len(names) - MAX_NAMED} more" if len(names) > MAX_NAMED else "")
