"""What a job is built from, the same in the runner and in a job's process: the protocol's architecture, its
prunable weights, and the engine over them."""

from __future__ import annotations

import torch
from torch import nn

from prunebench.data import DataBundle
from prunebench.engine import Engine, EngineObserver, derive_seed
from prunebench.errors import FieldError
from prunebench.masks import MaskSet, prunable_parameters
from prunebench.models import build_model, channel_parameters, layer_macs
from prunebench.protocol import Protocol, TrainingSpec
from prunebench.tasks import TASKS


def fresh_model(protocol: Protocol, data: DataBundle) -> nn.Module:
    """The protocol's architecture, initialized from torch's current RNG state."""
    try:
        return build_model(protocol.model, num_classes=data.num_classes, input_shape=data.input_shape)
    except FieldError as exc:
        raise protocol.locate(exc) from None


def seeded_model(protocol: Protocol, data: DataBundle, seed: int) -> nn.Module:
    """The protocol's architecture at the initialization of `seed`."""
    torch.manual_seed(derive_seed(seed, "init"))
    return fresh_model(protocol, data)


def reinitialized(protocol: Protocol, data: DataBundle, seed: int) -> dict[str, torch.Tensor]:
    """The weights of the reinit sanity ablation (prunebench.protocol.sanity): the protocol's architecture freshly
    initialized from derive_seed(seed, "reinit"), a second draw beside the seed's own initialization
    (derive_seed(seed, "init")), the same for every method and target of the seed. Frankle et al. 2021 ("Pruning
    neural networks at initialization: why are we missing the mark?", section 5) call it reinitialization. torch's
    global generator is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, "reinit"))
        return fresh_model(protocol, data).state_dict()


def prunable_of(
    protocol: Protocol, model: nn.Module, data: DataBundle
) -> tuple[dict[str, nn.Parameter], dict[str, int]]:
    """(the prunable weights by name in execution order, forward MACs per example of every conv/linear layer)."""
    macs = layer_macs(model, data.input_shape)
    try:
        return prunable_parameters(model, protocol.pruning.prunable, macs.keys()), macs
    except FieldError as exc:
        raise protocol.locate(exc) from None


def build_engine(
    protocol: Protocol,
    model: nn.Module,
    data: DataBundle,
    *,
    device: torch.device,
    seed: int,
    saved: dict[str, dict[str, torch.Tensor]],
    retrain: TrainingSpec | None = None,
    observer: EngineObserver | None = None,
    whole_filters: bool = False,
    limit: int | None = None,
) -> Engine:
    """The engine over `model`'s prunable weights. `whole_filters` (a filter-granularity method's job): a
    filter pruned whole takes its channel's bias and BatchNorm entries with it (MaskSet)."""
    p = protocol
    params, macs = prunable_of(p, model, data)
    prunable_macs = {name: macs[name.removesuffix(".weight")] for name in params}
    channels = {}
    if whole_filters:
        by_name = dict(model.named_parameters())
        for layer, names in channel_parameters(model, data.input_shape).items():
            channels[f"{layer}.weight"] = [by_name[n] for n in names]
    return Engine(
        model,
        data,
        device=device,
        masks=MaskSet(params, prunable_macs, channels),
        all_macs=macs,
        seed=seed,
        eval_batch_size=p.data.eval_batch_size,
        scoring_batch_size=p.pruning.scoring_batch_size,
        test_curves=p.evaluation.test_curves,
        top_k=tuple(p.evaluation.top_k),
        saved_states=saved,
        retrain_spec=retrain or p.retrain,  # a retraining variant's recipe, for the jobs of that variant
        base_spec=p.base,
        observer=observer,
        limit=limit,
        task=TASKS[p.task],
    )
