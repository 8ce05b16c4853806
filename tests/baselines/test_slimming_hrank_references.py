"""`network_slimming` and `hrank` against their references on the same seeded weights and scoring batches: the
scales' scores are Torch-Pruning's `BNScaleImportance` and remove what the authors' `vggprune.py` threshold removes,
the L1 term's gradient is their `updateBN`; HRank's average ranks are what the authors' `rank_generation.py`
computes (restated below)."""

from __future__ import annotations

import copy

import pytest
import torch
import torch_pruning as tp
from prunebench_baselines.hrank import HRank
from prunebench_baselines.network_slimming import NetworkSlimming
from torch import Tensor, nn

from prunebench.data import DataBundle, load_data
from prunebench.efficiency.compact import WRITERS, output_layers
from prunebench.engine.regularizers import batch_norm_l1
from prunebench.methods import PruningContext, channel_groups, removal_order
from prunebench.protocol import DataSpec
from prunebench.testing import engine_for, pruning_context, seeded_model

MODELS = {
    "cifar_resnet20": {"width": 8},
    "cifar_vgg11_bn": {"width": 0.25},
    "cifar_mobilenetv2": {"width": 0.25},
    "small_cnn": {"width": 0.5},
}


@pytest.fixture(scope="module")
def synthetic() -> DataBundle:
    return load_data(DataSpec(name="synthetic"))  # 3x16x16, 10 classes


def context(data: DataBundle, name: str) -> tuple[nn.Module, PruningContext]:
    engine = engine_for(data, model=seeded_model(name, data.input_shape, **MODELS[name]), whole_filters=True)
    engine.scoring_batch_size = 32
    return copy.deepcopy(engine.model), pruning_context(engine, 0.5, scoring_examples=96)


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("normalizer", ["none", "mean"])
def test_the_scales_scores_are_torch_prunings_bn_scale_importance(
    synthetic: DataBundle, name: str, normalizer: str
) -> None:
    model, ctx = context(synthetic, name)
    groups = channel_groups(ctx)
    config = NetworkSlimming.Config(sparsity_epochs=0, normalizer=normalizer)  # type: ignore[arg-type]
    ours = NetworkSlimming(config).scores(ctx, groups)
    example = torch.zeros(1, *synthetic.input_shape)
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=example)
    names = {m: n for n, m in model.named_modules()}
    reference = {
        names[g[0].dep.target.module]: g
        for g in graph.get_all_groups(ignored_layers=output_layers(model, example), root_module_types=WRITERS)
    }
    importance = tp.importance.BNScaleImportance(normalizer=None if normalizer == "none" else normalizer)
    for c, score in zip(groups.couplings, ours, strict=True):
        torch.testing.assert_close(score, importance(reference[c.root]), rtol=1e-6, atol=0, msg=c.root)


def test_the_channels_removed_are_under_the_authors_threshold(synthetic: DataBundle) -> None:
    """vggprune.py: every BatchNorm's |gamma| in one list, the threshold its sorted value at int(total * percent),
    the channels at or below it pruned; and main.py's updateBN adds s * sign(gamma) to the scales' gradients."""
    model, ctx = context(synthetic, "cifar_vgg11_bn")
    norms = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)]
    scales = torch.cat([m.weight.detach().abs() for _, m in norms])
    threshold = scales.sort().values[int(len(scales) * 0.4)]
    expected = {
        (n, j) for n, m in norms for j in torch.nonzero(m.weight.detach().abs() <= threshold).flatten().tolist()
    }
    groups = channel_groups(ctx)
    scores = NetworkSlimming(NetworkSlimming.Config(sparsity_epochs=0)).scores(ctx, groups)
    order = removal_order(groups, scores, scope="global")
    norm_of = [next(s for s in c.slices if s.kind == "norm") for c in groups.couplings]
    ours = {(norm_of[i].module, norm_of[i].positions[ch][0]) for i, ch in order[: len(expected)]}
    assert ours == expected
    batch_norm_l1(model, 1e-4).backward()  # type: ignore[union-attr]
    for _, m in norms:
        torch.testing.assert_close(m.weight.grad, 1e-4 * torch.sign(m.weight.detach()), rtol=0, atol=0)


def authors_average_ranks(
    model: nn.Module, relus: list[nn.Module], batches: list[tuple[Tensor, Tensor]]
) -> list[Tensor]:
    """rank_generation.py, restated: a forward hook on each ReLU (`get_feature_hook`) ranks every image's every
    channel's map (`torch.matrix_rank`, now torch.linalg.matrix_rank with the same default tolerance) and keeps the
    running mean over images, `feature_result = (feature_result * total + c) / (total + a)`; evaluation mode."""
    results: list[Tensor] = []
    for relu in relus:
        feature_result, total = torch.tensor(0.0), torch.tensor(0.0)

        def hook(_m: nn.Module, _i: object, output: Tensor) -> None:
            nonlocal feature_result, total
            a, b = output.shape[0], output.shape[1]
            c = torch.tensor([torch.linalg.matrix_rank(output[i, j, :, :]).item() for i in range(a) for j in range(b)])
            c = c.view(a, -1).float().sum(0)
            feature_result = (feature_result * total + c) / (total + a)
            total = total + a

        handle = relu.register_forward_hook(hook)
        with torch.no_grad():
            for x, _ in batches:
                model.eval()(x)
        handle.remove()
        results.append(feature_result)
    return results


@pytest.mark.parametrize("name", ["cifar_vgg11_bn", "small_cnn"])
def test_the_average_ranks_are_the_authors(synthetic: DataBundle, name: str) -> None:
    model, ctx = context(synthetic, name)
    units = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Sequential) and len(m) == 3]
    assert units and all(isinstance(m[2], nn.ReLU) for _, m in units)  # conv, BatchNorm, ReLU
    expected = authors_average_ranks(model, [m[2] for _, m in units], list(ctx.batches(96)))
    groups = channel_groups(ctx)
    ours = dict(zip([c.root for c in groups.couplings], HRank().scores(ctx, groups), strict=True))
    assert set(ours) == {f"{n}.0" for n, _ in units}
    for (n, _), e in zip(units, expected, strict=True):
        torch.testing.assert_close(ours[f"{n}.0"], e, rtol=0, atol=1e-5, msg=n)
        assert len(set(e.tolist())) > 1, "the ranks must tell the channels apart"
