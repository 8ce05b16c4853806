"""`prunebench methods`, `models` and `datasets`: what the registries hold, as a newcomer reads it."""

from __future__ import annotations

from prunebench.data import DATASETS
from prunebench.models import MODELS


def test_models_lists_every_registered_architecture_with_its_arguments(cli) -> None:
    result = cli("models")
    assert result.code == 0, result.err
    for name in MODELS:
        assert name in result.out
    assert "width=0.5" not in result.out and "width=1.0" in result.out  # the builder's default, not a protocol's
    assert "torchvision classification models" in result.out and "resnet50" in result.out
    verbose = cli("models", "-v")
    assert "vit_b_16" in verbose.out and "vit_b_16" not in result.out


def test_datasets_lists_every_data_set_and_with_v_its_layout(cli) -> None:
    result = cli("datasets")
    assert result.code == 0, result.err
    for name in DATASETS:
        assert name in result.out
    assert "cifar-10-batches-py" not in result.out
    verbose = cli("datasets", "--verbose")
    assert "cifar-10-batches-py" in verbose.out and "/usr/share/datasets/fashion-mnist" in verbose.out


def test_the_error_messages_point_to_commands_that_exist(cli, tmp_path) -> None:
    from prunebench.testing import TINY

    (tmp_path / "p.yaml").write_text(TINY.replace("small_cnn", "no_such_model"))
    result = cli("validate", tmp_path / "p.yaml")
    assert result.code == 2 and "`prunebench models` lists them all" in result.err
    assert cli("models").code == 0 and cli("datasets").code == 0 and cli("methods", "-v").code == 0
