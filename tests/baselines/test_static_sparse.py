"""ERK allocation and static sparse training (Evci et al. 2020): the layers' sparsities equal google-research/rigl's
`sparse_utils.get_sparsities_erdos_renyi`, restated below step by step on TensorFlow's kernel layout; a layer that
would exceed density 1 is dense; the masks hold exactly floor(s n) zeros a layer; the method draws them per job."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from prunebench_baselines.static_sparse import StaticSparse

from prunebench.methods import erk_sparsities, random_masks, registered_methods, uniform_sparsities
from prunebench.testing import digits, engine_for, pruning_context, seeded_model


def rigl_erdos_renyi(tf_shapes: dict[str, list[int]], default_sparsity: float, power: float = 1.0) -> dict[str, float]:
    """rigl/sparse_utils.py, get_sparsities_erdos_renyi (include_kernel=True, no custom sparsities), restated: the
    masks' shapes are TensorFlow's (kh, kw, in, out) for convolutions and (in, out) for dense layers."""
    dense_layers: set[str] = set()
    while True:
        divisor, rhs, raw = 0.0, 0.0, {}
        for name, shape in tf_shapes.items():
            n_param = int(np.prod(shape))
            n_zeros = int(np.floor(default_sparsity * n_param))  # get_n_zeros
            if name in dense_layers:
                rhs -= n_zeros
            else:
                rhs += n_param - n_zeros
                raw[name] = (np.sum(shape) / np.prod(shape)) ** power
                divisor += raw[name] * n_param
        eps = rhs / divisor
        max_prob = np.max(list(raw.values()))
        if max_prob * eps > 1:
            dense_layers |= {name for name, p in raw.items() if p == max_prob}
        else:
            break
    return {name: 0.0 if name in dense_layers else 1.0 - eps * raw[name] for name in tf_shapes}


def shapes_of(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {n: tuple(p.shape) for n, p in model.named_parameters() if p.dim() > 1}


def tf_layout(shape: tuple[int, ...]) -> list[int]:
    return [*shape[2:], shape[1], shape[0]] if len(shape) == 4 else [shape[1], shape[0]]


@pytest.mark.parametrize("sparsity", [0.5, 0.8, 0.9, 0.95, 0.99])
@pytest.mark.parametrize("model", ["cifar_resnet20", "cifar_wrn22_2", "resnet50", "small_cnn", "lenet_300_100"])
def test_erk_is_rigls(model: str, sparsity: float) -> None:
    shape = (1, 28, 28) if model == "lenet_300_100" else (3, 32, 32) if model.startswith("cifar") else (1, 8, 8)
    shape = (3, 224, 224) if model == "resnet50" else shape  # torchvision's ResNet-50: RigL's ImageNet model
    shapes = shapes_of(seeded_model(model, shape))
    ours = erk_sparsities(shapes, sparsity)
    theirs = rigl_erdos_renyi({n: tf_layout(s) for n, s in shapes.items()}, sparsity)
    assert ours.keys() == theirs.keys()
    assert all(abs(ours[n] - theirs[n]) < 1e-12 for n in ours), (ours, theirs)
    kept = sum((1 - ours[n]) * math.prod(s) for n, s in shapes.items())
    everything = sum(math.prod(s) for s in shapes.values())
    floors = sum(math.floor(sparsity * math.prod(s)) for s in shapes.values())
    assert kept == pytest.approx(everything - floors)  # as many weights as uniform sparsity keeps


def test_a_layer_erk_would_make_denser_than_dense_is_dense_and_the_rest_solved_again() -> None:
    shapes = {"first": (8, 1, 3, 3), "middle": (128, 128, 3, 3), "last": (100, 4096)}
    sparsities = erk_sparsities(shapes, 0.9)
    assert sparsities["first"] == 0.0 and 0 < sparsities["last"] < sparsities["middle"] < 1
    kept = sum((1 - sparsities[n]) * math.prod(s) for n, s in shapes.items())
    assert kept == pytest.approx(sum(math.prod(s) - math.floor(0.9 * math.prod(s)) for s in shapes.values()))
    assert uniform_sparsities(shapes, 0.9) == dict.fromkeys(shapes, 0.9)


def test_random_masks_hold_exactly_their_counts_and_follow_the_generator() -> None:
    shapes = {"a": (16, 3, 3, 3), "b": (10, 64)}
    sparsities = {"a": 0.7, "b": 0.95}
    one = random_masks(shapes, sparsities, torch.Generator().manual_seed(0))
    again = random_masks(shapes, sparsities, torch.Generator().manual_seed(0))
    other = random_masks(shapes, sparsities, torch.Generator().manual_seed(1))
    for name, shape in shapes.items():
        assert one[name].shape == shape and int((~one[name]).sum()) == math.floor(sparsities[name] * math.prod(shape))
        assert torch.equal(one[name], again[name])
    assert any(not torch.equal(one[n], other[n]) for n in shapes)


@pytest.mark.parametrize("distribution", ["erk", "uniform"])
def test_static_sparse_draws_its_allocation_at_the_target(distribution: str) -> None:
    assert registered_methods()["static_sparse"].cls is StaticSparse
    engine = engine_for(digits(), width=1.0)
    ctx = pruning_context(engine, 0.9)
    masks = StaticSparse(StaticSparse.Config(distribution=distribution)).prune(ctx)
    shapes = {n: tuple(w.shape) for n, w in ctx.weights().items()}
    wanted = erk_sparsities(shapes, 0.9) if distribution == "erk" else uniform_sparsities(shapes, 0.9)
    for name, keep in masks.items():
        assert int((~keep).sum()) == math.floor(wanted[name] * keep.numel())
    zeros = sum(int((~k).sum()) for k in masks.values())
    assert abs(zeros / sum(k.numel() for k in masks.values()) - 0.9) < 0.005
    layers = [int((~k).sum()) / k.numel() for k in masks.values()]
    assert (max(layers) - min(layers) > 0.05) == (distribution == "erk")
