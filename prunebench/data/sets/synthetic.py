"""Synthetic class-conditional images, generated from data.split_seed: for tests."""

from __future__ import annotations

import torch
from torch import Tensor

from prunebench.data.registry import DataBundle, DatasetInfo, register_dataset
from prunebench.data.selection import Pool, check_sizes, seeded_generator, tensor_bundle
from prunebench.data.splits import Normalization
from prunebench.protocol import DataSpec

_SYNTHETIC_TRAIN, _SYNTHETIC_TEST, _SYNTHETIC_AMPLITUDE = 1000, 200, 0.2


def _synthetic_arrays(split_seed: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Class prototypes (smooth, left-right symmetric, so flip_crop keeps the class) plus unit noise;
    the amplitude makes the classes learnable but not trivially (a linear model gets about 95%)."""
    gen = seeded_generator(split_seed, "synthetic")
    coarse = torch.randn(10, 3, 4, 4, generator=gen)
    protos = torch.nn.functional.interpolate(coarse, size=(16, 16), mode="bilinear", align_corners=False)
    protos = (protos + protos.flip(-1)) / 2
    protos = protos / protos.flatten(1).std(1).view(-1, 1, 1, 1)

    def draw(n: int) -> tuple[Tensor, Tensor]:
        labels = (torch.arange(n) % 10)[torch.randperm(n, generator=gen)]
        noise = torch.randn(n, 3, 16, 16, generator=gen)
        return _SYNTHETIC_AMPLITUDE * protos[labels] + noise, labels

    train_x, train_y = draw(_SYNTHETIC_TRAIN)
    test_x, test_y = draw(_SYNTHETIC_TEST)
    return train_x, train_y, test_x, test_y


def _probe(info: DatasetInfo, spec: DataSpec) -> None:
    check_sizes(info, spec, _SYNTHETIC_TRAIN, _SYNTHETIC_TEST, "")


def _read(info: DatasetInfo, spec: DataSpec) -> DataBundle:
    train_x, train_y, test_x, test_y = _synthetic_arrays(spec.split_seed)
    mean = train_x.mean(dim=(0, 2, 3)).tolist()
    std = train_x.std(dim=(0, 2, 3)).tolist()
    train = Pool("train", train_y, lambda p: train_x[p])
    test = Pool("test", test_y, lambda p: test_x[p])
    return tensor_bundle(
        info, spec, train, test, [str(i) for i in range(10)], Normalization(tuple(mean), tuple(std), 1.0)
    )


register_dataset(
    DatasetInfo(
        name="synthetic",
        title="synthetic",
        description="for tests: class-conditional Gaussian 3x16x16 images, 10 classes, 1,000 training "
        "and 200 test images generated from data.split_seed",
        layout="nothing: the data is generated (data.root is ignored)",
        augmentations=("none", "flip_crop"),
        num_classes=10,
        input_shape=(3, 16, 16),
        train_examples=1000,
        probe=_probe,
        read=_read,
        needs_root=False,
    )
)
