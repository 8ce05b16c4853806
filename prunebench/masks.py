"""Which tensors are prunable, keep-masks, enforcing them, and measuring sparsity from weights."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable

import torch
from torch import Tensor, nn

from prunebench.errors import FieldError
from prunebench.protocol import PrunableSpec
from prunebench.results.taxonomy import Scope

Masks = dict[str, Tensor]  # parameter name -> bool tensor of the weight's shape, True = kept

LAYER_TYPES: dict[str, tuple[type[nn.Module], ...]] = {
    "conv": (nn.Conv1d, nn.Conv2d, nn.Conv3d),
    "linear": (nn.Linear,),
}


def prunable_parameters(
    model: nn.Module, spec: PrunableSpec, execution_order: Iterable[str]
) -> dict[str, nn.Parameter]:
    """The prunable weights by parameter name, in execution order.

    `execution_order` names the conv/linear modules in the order their forward runs, so that
    "first" and "last" layer mean what a reader expects even where registration order differs.
    """
    modules = dict(model.named_modules())
    kinds = tuple(t for kind in spec.layer_types for t in LAYER_TYPES[kind])
    order = [name for name in dict.fromkeys(execution_order) if isinstance(modules.get(name), kinds)]
    if not order:
        raise FieldError(("pruning", "prunable", "layer_types"), "the model has no layer of these types")
    chosen = order[:]
    if not spec.include_first:
        chosen = [n for n in chosen if n != order[0]]
    if not spec.include_last:
        chosen = [n for n in chosen if n != order[-1]]
    params: dict[str, nn.Parameter] = {}
    for module_name in chosen:
        pname = f"{module_name}.weight" if module_name else "weight"
        if any(fnmatch.fnmatchcase(pname, pattern) for pattern in spec.exclude):
            continue
        params[pname] = modules[module_name].weight
    if not params:
        raise FieldError(("pruning", "prunable"), "no weight is left prunable")
    return params


def measure_sparsity(params: dict[str, Tensor]) -> tuple[float, dict[str, tuple[int, int]]]:
    """Zeros among the given weights: global fraction, and (numel, zeros) per tensor."""
    per_layer = {name: (p.numel(), int((p.detach() == 0).sum())) for name, p in params.items()}
    total = sum(n for n, _ in per_layer.values())
    zeros = sum(z for _, z in per_layer.values())
    return zeros / total, per_layer


def masks_from_scores(
    scores: dict[str, Tensor],
    sparsity: float,
    *,
    scope: Scope,
    current: Masks | None = None,
) -> Masks:
    """Prune the lowest scores so that exactly round(sparsity * n) weights are pruned (globally, or
    in each tensor). Weights already pruned in `current` stay pruned and count toward the target;
    ties are broken by position, so the result is deterministic. Scores are ranked in float64 when
    any is float64 (criteria such as SynFlow's span more than float32's range), else in float32."""
    if not 0 <= sparsity < 1:
        raise ValueError(f"sparsity {sparsity} outside [0, 1)")
    dtype = torch.float64 if any(s.dtype == torch.float64 for s in scores.values()) else torch.float32
    scores = {k: s.detach().to(dtype) for k, s in scores.items()}
    if current is not None:
        scores = {k: s.masked_fill(~current[k].to(s.device), float("-inf")) for k, s in scores.items()}

    def prune_lowest(flat: Tensor, k: int) -> Tensor:
        keep = torch.ones_like(flat, dtype=torch.bool)
        if k > 0:
            keep[torch.argsort(flat, stable=True)[:k]] = False
        return keep

    if scope == "layerwise":
        return {k: prune_lowest(s.flatten(), round(sparsity * s.numel())).view_as(s) for k, s in scores.items()}
    flat = torch.cat([s.flatten().cpu() for s in scores.values()])
    keep = prune_lowest(flat, round(sparsity * flat.numel()))
    out: Masks = {}
    offset = 0
    for name, s in scores.items():
        out[name] = keep[offset : offset + s.numel()].view_as(s).to(s.device)
        offset += s.numel()
    return out


def shuffle_within_layers(masks: Masks, generator: torch.Generator) -> Masks:
    """Each mask's kept positions moved uniformly at random within its own tensor: exactly as many kept weights
    per tensor, at positions drawn from `generator` (one permutation per tensor, in the order of `masks`). The
    layer_shuffle sanity ablation (Frankle et al. 2021, "Pruning neural networks at initialization: why are we
    missing the mark?", section 5; Su et al. 2020, "Sanity-checking pruning methods: random tickets can win the
    jackpot"): what survives it is a method's per-layer densities, nothing of which weights it chose."""
    shuffled: Masks = {}
    for name, mask in masks.items():
        flat = (mask != 0).flatten()
        order = torch.randperm(flat.numel(), generator=generator).to(flat.device)
        shuffled[name] = flat[order].view(mask.shape)
    return shuffled


class MaskSet:
    """The engine's masks over the prunable weights, and their enforcement.

    Gradients of pruned weights are zeroed before each optimizer step (so clipping, momentum and
    Adam's moments never see them) and the weights are masked again after it; optimizer state is
    masked whenever the masks change, so stale momentum cannot revive a pruned weight.
    """

    def __init__(
        self,
        params: dict[str, nn.Parameter],
        macs: dict[str, int],
        channels: dict[str, list[nn.Parameter]] | None = None,
    ) -> None:
        self.params = params
        self.macs = macs  # per prunable weight: forward MACs of its layer per example
        self.masks: Masks = {n: torch.ones_like(p, dtype=torch.bool) for n, p in params.items()}
        self._float = {n: m.to(p.dtype) for (n, m), p in zip(self.masks.items(), params.values(), strict=True)}
        # Filter pruning (`channels` given): per prunable weight, the parameters indexed by its output channels
        # (its bias, the BatchNorm on its output). A filter pruned whole takes its channel: these entries are
        # held at zero with it, so the channel computes exactly zero, as when the filter is removed.
        self.channels = {n: ps for n, ps in (channels or {}).items() if n in params}
        self._channel_float: dict[str, Tensor] = {}

    def validate(self, masks: Masks) -> Masks:
        """Check a method's masks: every prunable weight, right shape; returned as bool on device."""
        missing = set(self.params) - set(masks)
        extra = set(masks) - set(self.params)
        if missing or extra:
            raise ValueError(
                f"masks must cover exactly the prunable weights (missing: {sorted(missing)[:3]}, "
                f"not prunable: {sorted(extra)[:3]})"
            )
        out = {}
        for name, p in self.params.items():
            m = masks[name]
            if not isinstance(m, Tensor) or m.shape != p.shape:
                raise ValueError(f"mask of {name} has shape {getattr(m, 'shape', None)}, weight has {tuple(p.shape)}")
            if m.dtype != torch.bool:
                if not bool(((m == 0) | (m == 1)).all()):
                    raise ValueError(f"mask of {name} is not binary")
                m = m != 0
            out[name] = m.to(p.device)
        return out

    def set(self, masks: Masks, optimizer: torch.optim.Optimizer | None = None) -> None:
        self.masks = self.validate(masks)
        self._float = {n: m.to(self.params[n].dtype) for n, m in self.masks.items()}
        self._channel_float = {
            n: self.masks[n].flatten(1).any(1).to(self.params[n].dtype)
            for n in self.channels
            if self.params[n].dim() > 1
        }
        self.apply_to_weights()
        if optimizer is not None:
            self.apply_to_optimizer(optimizer)

    @torch.no_grad()
    def apply_to_weights(self) -> None:
        for name, p in self.params.items():
            p.mul_(self._float[name])
        for name, keep in self._channel_float.items():
            for q in self.channels[name]:
                q.mul_(keep)

    @torch.no_grad()
    def apply_to_grads(self) -> None:
        for name, p in self.params.items():
            if p.grad is not None:
                p.grad.mul_(self._float[name])
        for name, keep in self._channel_float.items():
            for q in self.channels[name]:
                if q.grad is not None:
                    q.grad.mul_(keep)

    @torch.no_grad()
    def apply_to_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        for name, p in self.params.items():
            for value in optimizer.state.get(p, {}).values():
                if isinstance(value, Tensor) and value.shape == p.shape:
                    value.mul_(self._float[name])
        for name, keep in self._channel_float.items():
            for q in self.channels[name]:
                for value in optimizer.state.get(q, {}).values():
                    if isinstance(value, Tensor) and value.shape == q.shape:
                        value.mul_(keep)

    def to(self, device: torch.device) -> None:
        self.masks = {n: m.to(device) for n, m in self.masks.items()}
        self._float = {n: m.to(device) for n, m in self._float.items()}
        self._channel_float = {n: m.to(device) for n, m in self._channel_float.items()}

    def density(self) -> dict[str, float]:
        return {n: float(m.float().mean()) for n, m in self.masks.items()}

    def effective_macs(self, all_macs: dict[str, int]) -> float:
        return effective_macs(all_macs, self.density())


def weight_density(params: dict[str, Tensor]) -> dict[str, float]:
    """The fraction of each weight that is not zero: the density the weights themselves have."""
    return {n: float((p.detach() != 0).float().mean()) for n, p in params.items()}


def effective_macs(all_macs: dict[str, int], density: dict[str, float]) -> float:
    """Forward MACs per example with pruned weights skipped: each prunable layer's MACs scale with the fraction
    of its weights kept (`density`, by weight name); other conv/linear layers count in full."""
    prunable_modules = {n.removesuffix(".weight"): n for n in density}
    total = 0.0
    for module, macs in all_macs.items():
        pname = prunable_modules.get(module)
        total += macs * (density[pname] if pname is not None else 1.0)
    return total
