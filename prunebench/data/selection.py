"""Selecting the examples a protocol uses: class-balanced subsets, the seeded validation split, and the
in-memory bundle of the three splits.

Subsets and the validation split are drawn from generators derived from `data.split_seed`, an independent
stream per purpose, so that e.g. the test subset does not shift with train_subset.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from prunebench.data.registry import ROOT, DataBundle, DatasetInfo
from prunebench.data.splits import Normalization, TensorSplit
from prunebench.errors import FieldError
from prunebench.protocol import DataSpec


def seeded_generator(split_seed: int, purpose: str) -> torch.Generator:
    """An independent stream per purpose, so that e.g. the test subset does not shift with train_subset."""
    digest = hashlib.sha256(f"prunebench.data/{purpose}/{split_seed}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)


def by_class(labels: Tensor, num_classes: int) -> list[Tensor]:
    """Positions of each class, in increasing order."""
    order = torch.argsort(labels, stable=True)
    sizes = torch.bincount(labels, minlength=num_classes).tolist()
    return list(torch.split(order, sizes))


def balanced_counts(sizes: Sequence[int], n: int, gen: torch.Generator) -> list[int]:
    """n split over classes as evenly as their sizes allow; the remainder goes to random classes."""
    counts = [0] * len(sizes)
    remaining = n
    while remaining > 0:
        open_ = [c for c, size in enumerate(sizes) if counts[c] < size]
        share = remaining // len(open_)
        if share == 0:
            for i in torch.randperm(len(open_), generator=gen)[:remaining].tolist():
                counts[open_[i]] += 1
            break
        for c in open_:
            add = min(share, sizes[c] - counts[c])
            counts[c] += add
            remaining -= add
    return counts


def balanced_subset(labels: Tensor, n: int | None, num_classes: int, gen: torch.Generator) -> Tensor:
    """Sorted positions of a class-balanced subset of n examples (all of them when n is None)."""
    if n is None:
        return torch.arange(labels.numel())
    groups = by_class(labels, num_classes)
    counts = balanced_counts([g.numel() for g in groups], n, gen)
    picked = [g[torch.randperm(g.numel(), generator=gen)[:k]] for g, k in zip(groups, counts, strict=True)]
    return torch.cat(picked).sort().values


def stratified_split(labels: Tensor, fraction: float, num_classes: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """Sorted positions (held out, kept): round(fraction * n) held out, at least one, each class held out
    in proportion (largest remainders, ties broken at random)."""
    n = labels.numel()
    groups = by_class(labels, num_classes)
    sizes = [g.numel() for g in groups]
    total = min(n, max(1, math.floor(fraction * n + 0.5)))
    counts = [math.floor(fraction * s) for s in sizes]
    tiebreak = torch.randperm(len(sizes), generator=gen).tolist()
    by_remainder = sorted(range(len(sizes)), key=lambda c: (-(fraction * sizes[c] - counts[c]), tiebreak[c]))
    short = total - sum(counts)
    while short > 0:
        for c in by_remainder:
            if short > 0 and counts[c] < sizes[c]:
                counts[c] += 1
                short -= 1
    held, kept = [], []
    for g, k in zip(groups, counts, strict=True):
        g = g[torch.randperm(g.numel(), generator=gen)]
        held.append(g[:k])
        kept.append(g[k:])
    return torch.cat(held).sort().values, torch.cat(kept).sort().values


def check_sizes(
    info: DatasetInfo, spec: DataSpec, n_train: int, n_test: int, where: str, num_classes: int | None = None
) -> None:
    """The subsets a protocol asks for fit the data, and leave every class in each split."""
    classes = num_classes or info.num_classes
    if classes and spec.test_subset is not None and spec.test_subset < classes:
        raise FieldError(
            ("data", "test_subset"),
            f"test_subset {spec.test_subset} is fewer than the {classes} classes of {info.title}: a class-balanced "
            "subset needs at least one example of each",
        )
    if classes and spec.train_subset is not None and spec.train_subset < 2 * classes:
        raise FieldError(
            ("data", "train_subset"),
            f"train_subset {spec.train_subset} is fewer than two examples of each of the {classes} classes of "
            f"{info.title}: one to train on and one to validate with",
        )
    if spec.train_subset is not None and spec.train_subset > n_train:
        raise FieldError(
            ("data", "train_subset"),
            f"train_subset {spec.train_subset} exceeds the {n_train} training examples of {info.title}{where}",
        )
    if spec.test_subset is not None and spec.test_subset > n_test:
        raise FieldError(
            ("data", "test_subset"),
            f"test_subset {spec.test_subset} exceeds the {n_test} test examples of {info.title}{where}",
        )
    used = spec.train_subset if spec.train_subset is not None else n_train
    if used - max(1, math.floor(spec.val_fraction * used + 0.5)) < 1:
        loc = ("data", "train_subset") if spec.train_subset is not None else ROOT
        raise FieldError(loc, f"{used} training examples leave none to train on after the validation split")


@dataclass(frozen=True)
class Pool:
    """The examples of one source (a data set's training or test files) before any selection."""

    source: str
    labels: Tensor  # int64
    fetch: Callable[[Tensor], Tensor]  # sorted positions -> images N x C x H x W
    origin: Tensor | None = None  # positions in `source` when the pool is a part of it (digits)

    def indices(self, positions: Tensor) -> Tensor:
        return positions if self.origin is None else self.origin[positions]


@dataclass(frozen=True)
class Selection:
    train: Tensor  # positions in the training pool
    val: Tensor
    test: Tensor  # positions in the test pool


def select(
    info: DatasetInfo, spec: DataSpec, train_labels: Tensor, test_labels: Tensor, num_classes: int, where: str
) -> Selection:
    check_sizes(info, spec, train_labels.numel(), test_labels.numel(), where, num_classes)
    pool = balanced_subset(train_labels, spec.train_subset, num_classes, seeded_generator(spec.split_seed, "train"))
    val, train = stratified_split(
        train_labels[pool], spec.val_fraction, num_classes, seeded_generator(spec.split_seed, "val")
    )
    test = balanced_subset(test_labels, spec.test_subset, num_classes, seeded_generator(spec.split_seed, "test"))
    return Selection(train=pool[train], val=pool[val], test=test)


def tensor_bundle(
    info: DatasetInfo,
    spec: DataSpec,
    train: Pool,
    test: Pool,
    classes: Sequence[str],
    norm: Normalization,
    where: str = "",
) -> DataBundle:
    num_classes = len(classes)
    for pool in (train, test):
        if pool.labels.numel() and not 0 <= int(pool.labels.min()) <= int(pool.labels.max()) < num_classes:
            raise FieldError(ROOT, f"{info.title} labels of the {pool.source} files are outside 0..{num_classes - 1}")
    sel = select(info, spec, train.labels, test.labels, num_classes, where)
    # Decode the training pool once (the chosen part of it), then split it.
    both = torch.cat([sel.train, sel.val])
    order = torch.argsort(both)
    images = train.fetch(both[order])
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel())
    fit_images = images[rank[: sel.train.numel()]]
    val_images = images[rank[sel.train.numel() :]]

    def split(pool: Pool, positions: Tensor, images: Tensor) -> TensorSplit:
        return TensorSplit(
            images=images,
            labels=pool.labels[positions].clone(),
            indices=pool.indices(positions),
            source=pool.source,
            augmentation=spec.augmentation,
            normalization=norm,
        )

    shape = tuple(fit_images.shape[1:])
    return DataBundle(
        name=info.name,
        train=split(train, sel.train, fit_images),
        val=split(train, sel.val, val_images),
        test=split(test, sel.test, test.fetch(sel.test)),
        num_classes=num_classes,
        input_shape=(int(shape[0]), int(shape[1]), int(shape[2])),
        classes=tuple(classes),
    )
