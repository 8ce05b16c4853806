"""Whether a job met a cost target (prunebench.results.targets): the reduction of FLOPs or parameters the runner
counted from the physically compacted final model, against the target the protocol states."""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from prunebench.efficiency import compact
from prunebench.efficiency.compact import output_layers
from prunebench.models import layer_macs
from prunebench.results import CostRecord
from prunebench.results.schema import CostTargetRecord
from prunebench.results.targets import Target


def cost_target_record(target: Target, tolerance: float, cost: CostRecord | None) -> CostTargetRecord:
    """A cost target and the reduction counted from the compacted model (None when it was not compacted: a
    reduction counted from masks is not what structured papers compare)."""
    achieved = None
    if cost is not None and cost.counted == "compacted":
        dense, pruned = (
            (cost.flops_dense, cost.flops_effective)
            if target.kind == "flops_reduction"
            else (cost.params_dense, cost.params_effective)
        )
        achieved = dense / pruned if pruned > 0 else None
    assert target.kind != "sparsity"
    return CostTargetRecord(kind=target.kind, value=target.value, tolerance=tolerance, achieved=achieved)


def cost_target_miss(cost: CostTargetRecord, not_compacted: str | None) -> str:
    """Why a job's cost target is not met, in one line."""
    what = Target(cost.kind, cost.value).label()
    if cost.achieved is None:
        return f"the {what} target could not be counted from a compacted model ({not_compacted or 'not compacted'})"
    return (
        f"the compacted model's reduction {cost.achieved:.3g}x is off the {what} target by more than "
        f"{100 * cost.tolerance:g} % of it"
    )


def max_reduction(model: nn.Module, prunable: dict[str, nn.Parameter], example: Tensor, kind: str) -> float:
    """The largest reduction of FLOPs or parameters (`kind`) whole filters can reach on `model`: every prunable
    layer keeping one output channel, compacted (coupled channels go only where every layer writing them is
    prunable; the output layer keeps its classes). A target beyond it no method can reach."""
    model = copy.deepcopy(model).eval()
    keep = {id(m) for m in output_layers(model, example)}
    modules = dict(model.named_modules())
    with torch.no_grad():
        for name in prunable:
            layer = modules[name.removesuffix(".weight")]
            weight = layer.weight
            if id(layer) in keep or weight.shape[0] < 2:
                continue
            layer.weight[1:] = 0  # type: ignore[index]
            if getattr(layer, "bias", None) is not None:
                layer.bias[1:] = 0  # type: ignore[index]
    dense_macs = sum(layer_macs(model, tuple(example.shape[1:])).values())  # type: ignore[arg-type]
    dense_params = sum(p.numel() for p in model.parameters())
    compacted = compact(model, example)
    if kind == "flops_reduction":
        return dense_macs / max(1, compacted.macs)
    return dense_params / max(1, compacted.params)
