"""UCI optical digits, bundled with scikit-learn: read from the one file scikit-learn ships them in (what
`sklearn.datasets.load_digits` reads), which is also what job processes must not see (`files`)."""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from prunebench.data.registry import DataBundle, DatasetInfo, package_file, read_error, register_dataset
from prunebench.data.selection import Pool, check_sizes, seeded_generator, stratified_split, tensor_bundle
from prunebench.data.splits import Normalization
from prunebench.protocol import DataSpec

_DIGITS_TEST_FRACTION = 0.2
_DIGITS_TEST_SEED = 20240501  # the test split of digits is fixed: the same for every protocol


def _digits_files() -> tuple[Path, ...]:
    """The file the digits are read from: scikit-learn's (rows of 64 pixels then the label), where it is installed.
    Job processes must not see it: with the fixed split below it is the test split."""
    return package_file("sklearn", "datasets", "data", "digits.csv.gz")


def _digits_arrays(info: DatasetInfo) -> tuple[Tensor, Tensor]:
    files = _digits_files()
    if not files:
        raise read_error(info, "scikit-learn", "its digits.csv.gz is not installed (pip install scikit-learn)")
    try:  # as sklearn.datasets.load_digits reads it
        with gzip.open(files[0], mode="rt", encoding="utf-8") as text:
            rows = np.loadtxt(text, delimiter=",", ndmin=2)
    except (OSError, EOFError, ValueError) as exc:
        raise read_error(info, files[0], f"{exc.__class__.__name__}: {exc}") from None
    if rows.shape != (1797, 65):
        raise read_error(info, files[0], f"{rows.shape[0]} rows of {rows.shape[1]} values, expected 1797 of 65")
    images = torch.from_numpy(rows[:, :-1].reshape(-1, 8, 8).astype(np.uint8)).unsqueeze(1)  # values 0..16
    return images, torch.from_numpy(rows[:, -1].astype(np.int64))


def _digits_split(labels: Tensor) -> tuple[Tensor, Tensor]:
    test, train = stratified_split(labels, _DIGITS_TEST_FRACTION, 10, seeded_generator(_DIGITS_TEST_SEED, "digits"))
    return train, test


def _probe(info: DatasetInfo, spec: DataSpec) -> None:
    n = 1797
    n_test = max(1, math.floor(_DIGITS_TEST_FRACTION * n + 0.5))
    check_sizes(info, spec, n - n_test, n_test, "")


def _read(info: DatasetInfo, spec: DataSpec) -> DataBundle:
    images, labels = _digits_arrays(info)
    train, test = _digits_split(labels)
    # Normalization constants from the fixed training part: the same for every split_seed.
    pixels = images[train].double() / 16
    norm = Normalization((float(pixels.mean()),), (float(pixels.std()),), 16.0)
    pools = [Pool("digits", labels[pos], lambda p, pos=pos: images[pos[p]], origin=pos) for pos in (train, test)]
    return tensor_bundle(info, spec, pools[0], pools[1], [str(i) for i in range(10)], norm)


register_dataset(
    DatasetInfo(
        name="digits",
        title="digits",
        description="UCI optical digits from scikit-learn: 1,797 grayscale 8x8 images, 10 classes; "
        "a fixed stratified 20% test split",
        layout="nothing: the data ships with scikit-learn (data.root is ignored)",
        augmentations=("none",),
        num_classes=10,
        input_shape=(1, 8, 8),
        train_examples=1438,
        probe=_probe,
        read=_read,
        needs_root=False,
        files=_digits_files,
    )
)
