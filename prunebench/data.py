"""The data set registry: loaders that turn a protocol's `data:` section into train/val/test splits.

Every data set is read from local files or generated; nothing is ever downloaded. Small data sets are
decoded once into uint8 tensors in memory and batched by slicing, with the augmentation applied to the
whole batch at once (a per-example DataLoader is far slower on a few CPU cores). ImageNet does not fit
in memory and is streamed from disk through a DataLoader.

All randomness is explicit. Subsets and the validation split are drawn from generators derived from
`data.split_seed`; shuffling and augmentation draw only from the generator passed to `Split.batches`
(ImageNet: per-example seeds drawn from it), so the same seeds give bit-identical batches whatever the
number of workers.
"""

from __future__ import annotations

import difflib
import gzip
import hashlib
import math
import os
import pickle
import struct
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from prunebench.errors import FieldError
from prunebench.protocol import DataSpec

__all__ = [
    "AUGMENTATIONS",
    "DATASETS",
    "DataBundle",
    "DatasetInfo",
    "Normalization",
    "Split",
    "StreamingSplit",
    "TensorSplit",
    "check_data",
    "load_data",
]

AUGMENTATIONS: dict[str, str] = {
    "none": "no augmentation: training batches are transformed as evaluation batches are",
    "flip_crop": "pad 4 zero pixels, crop back to the input size at a random offset, random horizontal flip",
    "imagenet": "RandomResizedCrop(224) and a random horizontal flip (evaluation: Resize(256), CenterCrop(224))",
}
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
ROOT: tuple[str, ...] = ("data", "root")


# ---- normalization and augmentation ---------------------------------------------------------------
@dataclass(frozen=True)
class Normalization:
    """Stored pixels / scale are in [0, 1]; batches hold (pixels / scale - mean) / std per channel."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    scale: float

    def affine(self, device: torch.device) -> tuple[Tensor, Tensor]:
        # Folded into one multiply-add: x * a + b.
        mean = torch.tensor(self.mean, dtype=torch.float64).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float64).view(1, -1, 1, 1)
        a = (1.0 / (self.scale * std)).float().to(device)
        b = (-mean / std).float().to(device)
        return a, b


def _normalize(x: Tensor, a: Tensor, b: Tensor) -> Tensor:
    return torch.addcmul(b, x.float(), a)  # out of place: x may be the stored data itself


def _flip_crop(x: Tensor, generator: torch.Generator, pad: int = 4) -> Tensor:
    """Pad with zeros, crop back to H x W at a random offset, flip half the images; one gather."""
    n, c, h, w = x.shape
    # Drawn on the CPU from the caller's generator, whatever the device, so that batches agree.
    top = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    left = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    device = x.device
    padded = x.new_zeros((n, c, h + 2 * pad, w + 2 * pad))
    padded[:, :, pad : pad + h, pad : pad + w] = x
    rows = top.to(device)[:, None] + torch.arange(h, device=device)
    cols = left.to(device)[:, None] + torch.arange(w, device=device)
    cols = torch.where(flip.to(device)[:, None], cols.flip(1), cols)
    batch = torch.arange(n, device=device)[:, None, None, None]
    chan = torch.arange(c, device=device)[None, :, None, None]
    return padded[batch, chan, rows[:, None, :, None], cols[:, None, None, :]]


def _check_batch_args(batch_size: int, random: bool, generator: torch.Generator | None) -> None:
    # Programming errors of the caller, not user input: plain ValueErrors.
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if random and generator is None:
        raise ValueError("shuffling and augmentation draw only from `generator`: pass a torch.Generator")
    if generator is not None and generator.device.type != "cpu":
        raise ValueError(f"the generator must be a CPU torch.Generator, got one on {generator.device}")


# ---- splits ---------------------------------------------------------------------------------------
class Split(ABC):
    """One split (train, val or test) as the engine holds it.

    `labels` are the int64 labels in the split's unshuffled order; `indices` are the positions of the
    examples in `source` (the data set's training or test files, or for digits the whole data set), so
    that splits drawn from the same source can be checked for overlap. `augmentation` is what
    `train=True` applies; `normalization` maps stored pixels to what `batches` yields.
    """

    def __init__(
        self, *, labels: Tensor, indices: Tensor, source: str, augmentation: str, normalization: Normalization
    ) -> None:
        self.labels = labels
        self.indices = indices
        self.source = source
        self.augmentation = augmentation
        self.normalization = normalization

    @property
    def num_examples(self) -> int:
        return int(self.labels.numel())

    def __len__(self) -> int:
        return self.num_examples

    def num_batches(self, batch_size: int) -> int:
        """Batches per pass; the last partial batch is kept."""
        return math.ceil(self.num_examples / batch_size)

    def batches(
        self,
        batch_size: int,
        *,
        shuffle: bool,
        train: bool,
        generator: torch.Generator | None,
        device: torch.device,
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """Yields (inputs float32 NCHW normalized, labels int64) on `device`. `train=True` applies the
        training augmentation; False applies the evaluation transform. Shuffling and every random
        augmentation draw only from `generator` (a CPU torch.Generator), so the same generator seed gives
        bit-identical batches. The last partial batch is kept."""
        # The data set accepted the augmentation's name when it was loaded; "none" is the only no-op.
        augment = train and self.augmentation != "none"
        _check_batch_args(batch_size, shuffle or augment, generator)
        return self._batches(batch_size, shuffle, augment, generator, torch.device(device))

    @abstractmethod
    def _batches(
        self,
        batch_size: int,
        shuffle: bool,
        augment: bool,
        generator: torch.Generator | None,
        device: torch.device,
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """The batches, with augmentation already decided and the arguments checked."""


class TensorSplit(Split):
    """A split held in memory: `images` is uint8 (float32 for generated data) N x C x H x W on the CPU."""

    def __init__(
        self,
        *,
        images: Tensor,
        labels: Tensor,
        indices: Tensor,
        source: str,
        augmentation: str,
        normalization: Normalization,
    ) -> None:
        super().__init__(
            labels=labels,
            indices=indices,
            source=source,
            augmentation=augmentation,
            normalization=normalization,
        )
        self.images = images
        # One copy per device: slicing on the GPU beats copying every batch from the host.
        self._on: dict[str, tuple[Tensor, Tensor, Tensor, Tensor]] = {}

    def _tensors(self, device: torch.device) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        key = str(device)
        if key not in self._on:
            a, b = self.normalization.affine(device)
            self._on[key] = (self.images.to(device), self.labels.to(device), a, b)
        return self._on[key]

    def _batches(
        self,
        batch_size: int,
        shuffle: bool,
        augment: bool,
        generator: torch.Generator | None,
        device: torch.device,
    ) -> Iterator[tuple[Tensor, Tensor]]:
        images, labels, a, b = self._tensors(device)
        n = self.num_examples
        order = torch.randperm(n, generator=generator) if shuffle else None
        for start in range(0, n, batch_size):
            if order is None:
                x = images[start : start + batch_size]
                y = labels[start : start + batch_size].clone()
            else:
                idx = order[start : start + batch_size].to(device)
                x = images.index_select(0, idx)
                y = labels.index_select(0, idx)
            if augment:
                assert generator is not None
                x = _flip_crop(x, generator)
            yield _normalize(x, a, b), y


class StreamingSplit(Split):
    """A split of an image folder streamed from disk (ImageNet): decoding and transforms run in
    `num_workers` DataLoader workers; normalization runs on `device`."""

    def __init__(
        self,
        *,
        directory: Path,
        paths: np.ndarray,
        labels: Tensor,
        indices: Tensor,
        source: str,
        augmentation: str,
        normalization: Normalization,
        num_workers: int,
        size: int = 224,
        resize: int = 256,
    ) -> None:
        super().__init__(
            labels=labels,
            indices=indices,
            source=source,
            augmentation=augmentation,
            normalization=normalization,
        )
        self.directory = directory
        self.paths = paths  # bytes relative to `directory`: no per-string objects for workers to copy
        self.num_workers = num_workers
        self.size = size
        self.resize = resize

    def _batches(
        self,
        batch_size: int,
        shuffle: bool,
        augment: bool,
        generator: torch.Generator | None,
        device: torch.device,
    ) -> Iterator[tuple[Tensor, Tensor]]:
        from torch.utils.data import DataLoader

        n = self.num_examples
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        # One seed per example, not per worker: the augmentation of an example does not depend on
        # which worker decodes it, so num_workers=0 and num_workers=8 give the same batches.
        seeds = torch.randint(0, 2**63 - 1, (n,), generator=generator) if augment else None
        # The loader draws its workers' base seed from this generator; without one it would draw
        # from (and so perturb) the global RNG.
        loader_seed = int(torch.randint(0, 2**63 - 1, (1,), generator=generator)) if generator is not None else 0
        dataset = _FolderDataset(os.fsencode(self.directory), self.paths, self.labels.numpy(), self.size, self.resize)
        loader = DataLoader(
            dataset,
            batch_sampler=_Plan(order, seeds, batch_size),
            num_workers=self.num_workers,
            collate_fn=_collate,
            pin_memory=device.type == "cuda",
            generator=torch.Generator().manual_seed(loader_seed),
        )
        a, b = self.normalization.affine(device)
        for item in loader:
            if isinstance(item, str):
                raise FieldError(ROOT, item)
            x, y = item
            yield _normalize(x.to(device, non_blocking=True), a, b), y.to(device, non_blocking=True)


class _Plan:
    """The batch sampler of one pass: lists of (file index, augmentation seed or None)."""

    def __init__(self, order: Tensor, seeds: Tensor | None, batch_size: int) -> None:
        self.order = order
        self.seeds = seeds
        self.batch_size = batch_size

    def __len__(self) -> int:
        return math.ceil(len(self.order) / self.batch_size)

    def __iter__(self) -> Iterator[list[tuple[int, int | None]]]:
        for start in range(0, len(self.order), self.batch_size):
            idx = self.order[start : start + self.batch_size].tolist()
            if self.seeds is None:
                yield [(i, None) for i in idx]
            else:
                yield list(zip(idx, self.seeds[start : start + self.batch_size].tolist(), strict=True))


class _FolderDataset(torch.utils.data.Dataset):  # type: ignore[type-arg]
    def __init__(self, directory: bytes, paths: np.ndarray, labels: np.ndarray, size: int, resize: int) -> None:
        self.directory = directory
        self.paths = paths
        self.labels = labels
        self.size = size
        self.resize = resize

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key: tuple[int, int | None]) -> tuple[Tensor, int] | str:
        import torchvision.transforms.functional as tf
        from PIL import Image

        index, seed = key
        path = os.fsdecode(os.path.join(self.directory, self.paths[index]))
        try:
            with Image.open(path) as opened:
                image = opened.convert("RGB")
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            # Returned, not raised: a worker's exception loses its type on the way back.
            return f"cannot read the image {path}: {exc}"
        if seed is None:
            image = tf.center_crop(tf.resize(image, self.resize), [self.size, self.size])
        else:
            gen = torch.Generator().manual_seed(seed)
            top, left, height, width = _resized_crop_params(image.width, image.height, gen)
            image = tf.resized_crop(image, top, left, height, width, [self.size, self.size], antialias=True)
            if float(torch.rand(1, generator=gen)) < 0.5:
                image = tf.hflip(image)
        return tf.pil_to_tensor(image), int(self.labels[index])


def _collate(items: list[tuple[Tensor, int] | str]) -> tuple[Tensor, Tensor] | str:
    for item in items:
        if isinstance(item, str):
            return item
    images = torch.stack([item[0] for item in items])  # type: ignore[misc]
    labels = torch.tensor([item[1] for item in items], dtype=torch.int64)  # type: ignore[misc]
    return images, labels


def _resized_crop_params(width: int, height: int, gen: torch.Generator) -> tuple[int, int, int, int]:
    """torchvision's RandomResizedCrop.get_params (scale 0.08-1, ratio 3/4-4/3), drawing from `gen`
    instead of the global RNG."""
    area = width * height
    log_lo, log_hi = math.log(3 / 4), math.log(4 / 3)
    for _ in range(10):
        target = area * (0.08 + 0.92 * float(torch.rand(1, generator=gen)))
        ratio = math.exp(log_lo + (log_hi - log_lo) * float(torch.rand(1, generator=gen)))
        w = round(math.sqrt(target * ratio))
        h = round(math.sqrt(target / ratio))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, (1,), generator=gen))
            left = int(torch.randint(0, width - w + 1, (1,), generator=gen))
            return top, left, h, w
    # Fallback of torchvision: the largest central crop within the ratio range.
    in_ratio = width / height
    if in_ratio < 3 / 4:
        w, h = width, round(width / (3 / 4))
    elif in_ratio > 4 / 3:
        w, h = round(height * (4 / 3)), height
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


# ---- the bundle and the registry ------------------------------------------------------------------
@dataclass(frozen=True)
class DataBundle:
    """The three splits of a data set as one protocol defines them."""

    name: str
    train: Split  # the training data minus the validation split
    val: Split  # carved from the training data with data.split_seed, class-stratified
    test: Split
    num_classes: int
    input_shape: tuple[int, int, int]  # C, H, W of what batches() yields
    classes: tuple[str, ...] = ()


@dataclass(frozen=True)
class DatasetInfo:
    """A registered data set: what `prunebench datasets` shows, and how to check and load it."""

    name: str
    title: str  # the data set's name in messages, e.g. "CIFAR-10"
    description: str
    layout: str  # the files expected under data.root, as a sentence
    augmentations: tuple[str, ...]
    num_classes: int | None  # None: as many as the class folders found
    input_shape: tuple[int, int, int]
    probe: Callable[[DatasetInfo, DataSpec], None] = field(repr=False, compare=False)
    read: Callable[[DatasetInfo, DataSpec], DataBundle] = field(repr=False, compare=False)
    default_root: str | None = None
    root_hint: str = ""  # what to do when the default root is missing
    needs_root: bool = True  # False: generated or bundled, data.root is ignored
    in_memory: bool = True  # False: streamed from disk (StreamingSplit)


def check_data(spec: DataSpec) -> None:
    """Cheap checks before any training: the name is known, the augmentation supported, the root exists
    and its layout is recognized (headers and file names only; nothing is decoded)."""
    info = _info(spec)
    info.probe(info, spec)


def load_data(spec: DataSpec) -> DataBundle:
    """Load (or open, for streamed data) the data set of `spec` with its train/val/test splits."""
    info = _info(spec)
    return info.read(info, spec)


def _info(spec: DataSpec) -> DatasetInfo:
    info = DATASETS.get(spec.name)
    if info is None:
        close = difflib.get_close_matches(spec.name, list(DATASETS), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise FieldError(("data", "name"), f"unknown dataset {spec.name!r} ({hint}known: {', '.join(DATASETS)})")
    if spec.augmentation not in AUGMENTATIONS:
        raise FieldError(
            ("data", "augmentation"),
            f"unknown augmentation {spec.augmentation!r} (known: {', '.join(AUGMENTATIONS)})",
        )
    if spec.augmentation not in info.augmentations:
        raise FieldError(
            ("data", "augmentation"),
            f"{info.name} does not support augmentation {spec.augmentation!r} "
            f"(supported: {', '.join(info.augmentations)})",
        )
    return info


def _root_error(info: DatasetInfo, root: Path, problem: str, hint: str = "") -> FieldError:
    message = f"no {info.title} found in {root}: {problem}; expected {info.layout}"
    return FieldError(ROOT, message + (f"; {hint}" if hint else ""))


def _read_error(info: DatasetInfo, path: Path | str, problem: str) -> FieldError:
    return FieldError(ROOT, f"cannot read {info.title} from {path}: {problem}; expected {info.layout}")


def _root(info: DatasetInfo, spec: DataSpec) -> tuple[Path, str]:
    """The data directory and the hint to add to layout errors (how to get the default root)."""
    root = spec.resolved_root()
    hint = ""
    if root is None:
        if info.default_root is None:
            raise FieldError(ROOT, f"{info.name} needs data.root (it has no default location): expected {info.layout}")
        root, hint = Path(info.default_root), f"{info.default_root} is the default root; {info.root_hint}"
    if not root.exists():
        raise _root_error(info, root, "the directory does not exist", hint)
    if not root.is_dir():
        raise _root_error(info, root, "it is not a directory", hint)
    return root, hint


# ---- selecting subsets and the validation split -----------------------------------------------------
def _generator(split_seed: int, purpose: str) -> torch.Generator:
    """An independent stream per purpose, so that e.g. the test subset does not shift with train_subset."""
    digest = hashlib.sha256(f"prunebench.data/{purpose}/{split_seed}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)


def _by_class(labels: Tensor, num_classes: int) -> list[Tensor]:
    """Positions of each class, in increasing order."""
    order = torch.argsort(labels, stable=True)
    sizes = torch.bincount(labels, minlength=num_classes).tolist()
    return list(torch.split(order, sizes))


def _balanced_counts(sizes: Sequence[int], n: int, gen: torch.Generator) -> list[int]:
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


def _balanced_subset(labels: Tensor, n: int | None, num_classes: int, gen: torch.Generator) -> Tensor:
    """Sorted positions of a class-balanced subset of n examples (all of them when n is None)."""
    if n is None:
        return torch.arange(labels.numel())
    groups = _by_class(labels, num_classes)
    counts = _balanced_counts([g.numel() for g in groups], n, gen)
    picked = [g[torch.randperm(g.numel(), generator=gen)[:k]] for g, k in zip(groups, counts, strict=True)]
    return torch.cat(picked).sort().values


def _stratified_split(labels: Tensor, fraction: float, num_classes: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """Sorted positions (held out, kept): round(fraction * n) held out, at least one, each class held out
    in proportion (largest remainders, ties broken at random)."""
    n = labels.numel()
    groups = _by_class(labels, num_classes)
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


def _check_sizes(info: DatasetInfo, spec: DataSpec, n_train: int, n_test: int, where: str) -> None:
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
class _Pool:
    """The examples of one source (a data set's training or test files) before any selection."""

    source: str
    labels: Tensor  # int64
    fetch: Callable[[Tensor], Tensor]  # sorted positions -> images N x C x H x W
    origin: Tensor | None = None  # positions in `source` when the pool is a part of it (digits)

    def indices(self, positions: Tensor) -> Tensor:
        return positions if self.origin is None else self.origin[positions]


@dataclass(frozen=True)
class _Selection:
    train: Tensor  # positions in the training pool
    val: Tensor
    test: Tensor  # positions in the test pool


def _select(
    info: DatasetInfo, spec: DataSpec, train_labels: Tensor, test_labels: Tensor, num_classes: int, where: str
) -> _Selection:
    _check_sizes(info, spec, train_labels.numel(), test_labels.numel(), where)
    pool = _balanced_subset(train_labels, spec.train_subset, num_classes, _generator(spec.split_seed, "train"))
    val, train = _stratified_split(
        train_labels[pool], spec.val_fraction, num_classes, _generator(spec.split_seed, "val")
    )
    test = _balanced_subset(test_labels, spec.test_subset, num_classes, _generator(spec.split_seed, "test"))
    return _Selection(train=pool[train], val=pool[val], test=test)


def _tensor_bundle(
    info: DatasetInfo,
    spec: DataSpec,
    train: _Pool,
    test: _Pool,
    classes: Sequence[str],
    norm: Normalization,
    where: str = "",
) -> DataBundle:
    num_classes = len(classes)
    for pool in (train, test):
        if pool.labels.numel() and not 0 <= int(pool.labels.min()) <= int(pool.labels.max()) < num_classes:
            raise FieldError(ROOT, f"{info.title} labels of the {pool.source} files are outside 0..{num_classes - 1}")
    sel = _select(info, spec, train.labels, test.labels, num_classes, where)
    # Decode the training pool once (the chosen part of it), then split it.
    both = torch.cat([sel.train, sel.val])
    order = torch.argsort(both)
    images = train.fetch(both[order])
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel())
    fit_images = images[rank[: sel.train.numel()]]
    val_images = images[rank[sel.train.numel() :]]

    def split(pool: _Pool, positions: Tensor, images: Tensor) -> TensorSplit:
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


# ---- digits (scikit-learn) --------------------------------------------------------------------------
_DIGITS_TEST_FRACTION = 0.2
_DIGITS_TEST_SEED = 20240501  # the test split of digits is fixed: the same for every protocol


def _digits_arrays() -> tuple[Tensor, Tensor]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.from_numpy(digits.images.astype(np.uint8)).unsqueeze(1)  # values 0..16
    return images, torch.from_numpy(digits.target.astype(np.int64))


def _digits_split(labels: Tensor) -> tuple[Tensor, Tensor]:
    test, train = _stratified_split(labels, _DIGITS_TEST_FRACTION, 10, _generator(_DIGITS_TEST_SEED, "digits"))
    return train, test


def _digits_probe(info: DatasetInfo, spec: DataSpec) -> None:
    n = 1797
    n_test = max(1, math.floor(_DIGITS_TEST_FRACTION * n + 0.5))
    _check_sizes(info, spec, n - n_test, n_test, "")


def _digits_read(info: DatasetInfo, spec: DataSpec) -> DataBundle:
    images, labels = _digits_arrays()
    train, test = _digits_split(labels)
    # Normalization constants from the fixed training part: the same for every split_seed.
    pixels = images[train].double() / 16
    norm = Normalization((float(pixels.mean()),), (float(pixels.std()),), 16.0)
    pools = [_Pool("digits", labels[pos], lambda p, pos=pos: images[pos[p]], origin=pos) for pos in (train, test)]
    return _tensor_bundle(info, spec, pools[0], pools[1], [str(i) for i in range(10)], norm)


# ---- MNIST and Fashion-MNIST (IDX files) ------------------------------------------------------------
_IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
_IDX_SUBDIRS = {"mnist": ("MNIST/raw", "raw"), "fashion_mnist": ("FashionMNIST/raw", "raw")}


def _idx_locate(info: DatasetInfo, spec: DataSpec) -> tuple[dict[str, Path], Path, str]:
    root, hint = _root(info, spec)
    best: dict[str, Path] = {}
    for directory in (root, *(root / sub for sub in _IDX_SUBDIRS[info.name])):
        found: dict[str, Path] = {}
        for name in _IDX_FILES:
            for candidate in (directory / name, directory / f"{name}.gz"):
                if candidate.is_file():
                    found[name] = candidate
                    break
        if len(found) == len(_IDX_FILES):
            return found, root, hint
        if len(found) > len(best):
            best = found
    if best:
        missing = ", ".join(n for n in _IDX_FILES if n not in best)
        raise _root_error(info, root, f"missing {missing}", hint)
    raise _root_error(info, root, "none of the IDX files is there", hint)


def _open_idx(path: Path) -> Any:
    return gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")


def _idx_header(info: DatasetInfo, path: Path, stream: Any) -> tuple[int, ...]:
    head = stream.read(4)
    if len(head) < 4 or head[0] != 0 or head[1] != 0:
        raise _read_error(info, path, "not an IDX file (bad magic number)")
    if head[2] != 0x08:
        raise _read_error(info, path, f"IDX element type 0x{head[2]:02x} is not unsigned bytes (0x08)")
    ndim = head[3]
    raw = stream.read(4 * ndim)
    if len(raw) < 4 * ndim:
        raise _read_error(info, path, "the IDX header is truncated")
    return struct.unpack(f">{ndim}I", raw)


def _idx_read(info: DatasetInfo, path: Path, header_only: bool) -> tuple[tuple[int, ...], np.ndarray | None]:
    try:
        with _open_idx(path) as stream:
            dims = _idx_header(info, path, stream)
            if header_only:
                return dims, None
            body = stream.read()
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise _read_error(info, path, f"{exc.__class__.__name__}: {exc}") from None
    expected = math.prod(dims)
    if len(body) != expected:
        raise _read_error(info, path, f"holds {len(body)} bytes of data, its header says {expected}")
    return dims, np.frombuffer(body, dtype=np.uint8).reshape(dims)


def _idx_check_dims(info: DatasetInfo, files: dict[str, Path], dims: dict[str, tuple[int, ...]]) -> tuple[int, int]:
    counts = []
    for part in ("train", "t10k"):
        images, labels = dims[f"{part}-images-idx3-ubyte"], dims[f"{part}-labels-idx1-ubyte"]
        path = files[f"{part}-images-idx3-ubyte"]
        if len(images) != 3 or images[1:] != (28, 28):
            raise _read_error(info, path, f"images of shape {images[1:]}, expected N x 28 x 28")
        if len(labels) != 1 or labels[0] != images[0]:
            raise _read_error(info, files[f"{part}-labels-idx1-ubyte"], f"{labels} labels for {images[0]} images")
        counts.append(images[0])
    return counts[0], counts[1]


def _idx_probe(info: DatasetInfo, spec: DataSpec) -> None:
    files, root, _ = _idx_locate(info, spec)
    dims = {name: _idx_read(info, path, header_only=True)[0] for name, path in files.items()}
    n_train, n_test = _idx_check_dims(info, files, dims)
    _check_sizes(info, spec, n_train, n_test, f" in {root}")


def _idx_read_all(info: DatasetInfo, spec: DataSpec) -> DataBundle:
    files, root, _ = _idx_locate(info, spec)
    arrays, dims = {}, {}
    for name, path in files.items():
        dims[name], arrays[name] = _idx_read(info, path, header_only=False)
    _idx_check_dims(info, files, dims)

    def pool(part: str) -> _Pool:
        images = torch.from_numpy(arrays[f"{part}-images-idx3-ubyte"].copy()).unsqueeze(1)
        labels = torch.from_numpy(arrays[f"{part}-labels-idx1-ubyte"].astype(np.int64))
        return _Pool("train" if part == "train" else "test", labels, lambda p: images[p])

    norm = _IDX_NORM[info.name]
    return _tensor_bundle(info, spec, pool("train"), pool("t10k"), _IDX_CLASSES[info.name], norm, f" in {root}")


_IDX_NORM = {
    "mnist": Normalization((0.1307,), (0.3081,), 255.0),
    "fashion_mnist": Normalization((0.2860,), (0.3530,), 255.0),
}
_IDX_CLASSES = {
    "mnist": [str(i) for i in range(10)],
    "fashion_mnist": [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ],
}


# ---- image folders --------------------------------------------------------------------------------
def _class_folders(info: DatasetInfo, root: Path, directory: Path, hint: str) -> list[str]:
    try:
        classes = sorted(e.name for e in os.scandir(directory) if e.is_dir() and not e.name.startswith("."))
    except OSError as exc:
        raise _root_error(info, root, f"cannot list {directory}: {exc.strerror}", hint) from None
    if not classes:
        raise _root_error(info, root, f"{directory.name}/ holds no class folders", hint)
    return classes


def _folder_files(info: DatasetInfo, root: Path, directory: Path, classes: Sequence[str]) -> tuple[list[str], Tensor]:
    """Image paths relative to `directory` (class by class, sorted by name) and their labels."""
    paths: list[str] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        try:
            files = sorted(
                e.name
                for e in os.scandir(directory / name)
                if e.name.lower().endswith(IMAGE_EXTENSIONS) and not e.name.startswith(".") and e.is_file()
            )
        except OSError as exc:
            raise _root_error(info, root, f"cannot list {directory / name}: {exc.strerror}") from None
        if not files:
            raise _root_error(info, root, f"{directory.name}/{name}/ holds no images (.jpg, .jpeg, .png)")
        paths.extend(f"{name}/{f}" for f in files)
        labels.extend([label] * len(files))
    return paths, torch.tensor(labels, dtype=torch.int64)


def _folder_pair(info: DatasetInfo, root: Path, train: str, test: str, hint: str) -> list[str]:
    """The class folders, the same under train/ and test/."""
    classes = _class_folders(info, root, root / train, hint)
    test_classes = _class_folders(info, root, root / test, hint)
    if classes != test_classes:
        only_train = sorted(set(classes) - set(test_classes))[:3]
        only_test = sorted(set(test_classes) - set(classes))[:3]
        raise _root_error(
            info,
            root,
            f"{train}/ and {test}/ hold different class folders (only in {train}/: {only_train}, "
            f"only in {test}/: {only_test})",
            hint,
        )
    if info.num_classes is not None and len(classes) != info.num_classes:
        raise _root_error(
            info,
            root,
            f"{train}/ holds {len(classes)} class folders, {info.title} has {info.num_classes}",
            hint,
        )
    return classes


def _decode_files(
    info: DatasetInfo, directory: Path, paths: Sequence[str], positions: Tensor, shape: tuple[int, int, int]
) -> Tensor:
    """Decode the chosen files with PIL (the decoder of torchvision's own data sets) into uint8 C x H x W."""
    from PIL import Image

    channels, height, width = shape
    out = np.empty((positions.numel(), height, width, channels), dtype=np.uint8)
    for k, i in enumerate(positions.tolist()):
        path = directory / paths[i]
        try:
            with Image.open(path) as image:
                image.load()
                pixels = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise _read_error(info, path, f"not a readable image ({exc})") from None
        if pixels.shape != out.shape[1:]:
            raise _read_error(
                info, path, f"the image is {pixels.shape[1]}x{pixels.shape[0]}, expected {width}x{height}"
            )
        out[k] = pixels
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


# ---- CIFAR-10 and CIFAR-100 -------------------------------------------------------------------------
@dataclass(frozen=True)
class _CifarPickle:
    directory: str
    train: tuple[str, ...]
    test: tuple[str, ...]
    label_key: str


_CIFAR_PICKLE = {
    "cifar10": _CifarPickle(
        "cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)), ("test_batch",), "labels"
    ),
    "cifar100": _CifarPickle("cifar-100-python", ("train",), ("test",), "fine_labels"),
}
_CIFAR_NORM = {
    "cifar10": Normalization((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), 255.0),
    "cifar100": Normalization((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), 255.0),
}


@dataclass(frozen=True)
class _CifarFound:
    root: Path
    pickle_dir: Path | None  # torchvision's layout
    classes: list[str]  # ImageFolder layout: the class folders
    train: tuple[list[str], Tensor] | None = None
    test: tuple[list[str], Tensor] | None = None


def _cifar_locate(info: DatasetInfo, spec: DataSpec) -> _CifarFound:
    root, hint = _root(info, spec)
    fmt = _CIFAR_PICKLE[info.name]
    wanted = (*fmt.train, *fmt.test)
    partial: tuple[Path, list[str]] | None = None
    for directory in (root, root / fmt.directory):
        present = [f for f in wanted if (directory / f).is_file()]
        if len(present) == len(wanted):
            return _CifarFound(root, directory, [])
        if present:
            partial = (directory, [f for f in wanted if f not in present])
    if partial is not None:
        raise _root_error(info, root, f"{partial[0]} lacks {', '.join(partial[1])}", hint)
    if (root / "train").is_dir() and (root / "test").is_dir():
        classes = _folder_pair(info, root, "train", "test", hint)
        train = _folder_files(info, root, root / "train", classes)
        test = _folder_files(info, root, root / "test", classes)
        return _CifarFound(root, None, classes, train, test)
    if (root / "train").is_dir() or (root / "test").is_dir():
        problem = (
            "train/ is there but test/ is not" if (root / "train").is_dir() else "test/ is there but train/ is not"
        )
    else:
        problem = f"neither {fmt.directory}/ nor train/ and test/ is there"
    raise _root_error(info, root, problem, hint)


def _cifar_probe(info: DatasetInfo, spec: DataSpec) -> None:
    found = _cifar_locate(info, spec)
    if found.train is not None and found.test is not None:
        _check_sizes(info, spec, found.train[1].numel(), found.test[1].numel(), f" in {found.root}")


def _read_cifar_pickle(
    info: DatasetInfo, directory: Path, names: Sequence[str], label_key: str
) -> tuple[Tensor, Tensor]:
    images, labels = [], []
    for name in names:
        path = directory / name
        try:
            with open(path, "rb") as f:
                batch = pickle.load(f, encoding="bytes")
            # Python 2 pickles (the originals) have bytes keys; ones written by Python 3 may have str keys.
            data = batch.get(b"data", batch.get("data"))
            label = batch.get(label_key.encode(), batch.get(label_key))
            data = np.asarray(data)
            label = np.asarray(label, dtype=np.int64)
        except Exception as exc:  # unpickling garbage can raise almost anything; it is the user's file
            raise _read_error(info, path, f"not a CIFAR pickle ({exc.__class__.__name__}: {exc})") from None
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
            raise _read_error(info, path, f"data of {data.dtype} {data.shape}, expected uint8 N x 3072")
        if label.shape != (data.shape[0],):
            raise _read_error(info, path, f"{label.size} {label_key} for {data.shape[0]} images")
        images.append(data)
        labels.append(label)
    stacked = np.concatenate(images).reshape(-1, 3, 32, 32)  # rows are R plane, G plane, B plane
    return torch.from_numpy(stacked), torch.from_numpy(np.concatenate(labels))


def _cifar_read(info: DatasetInfo, spec: DataSpec) -> DataBundle:
    found = _cifar_locate(info, spec)
    norm = _CIFAR_NORM[info.name]
    where = f" in {found.root}"
    if found.pickle_dir is not None:
        fmt = _CIFAR_PICKLE[info.name]
        train_x, train_y = _read_cifar_pickle(info, found.pickle_dir, fmt.train, fmt.label_key)
        test_x, test_y = _read_cifar_pickle(info, found.pickle_dir, fmt.test, fmt.label_key)
        classes = _cifar_classes(info, found.pickle_dir)
        train = _Pool("train", train_y, lambda p: train_x[p])
        test = _Pool("test", test_y, lambda p: test_x[p])
        return _tensor_bundle(info, spec, train, test, classes, norm, where)
    assert found.train is not None and found.test is not None
    (train_paths, train_y), (test_paths, test_y) = found.train, found.test
    # Subsets are chosen before decoding: a CPU-scale subset of the JPEGs loads in seconds.
    train = _Pool("train", train_y, lambda p: _decode_files(info, found.root / "train", train_paths, p, (3, 32, 32)))
    test = _Pool("test", test_y, lambda p: _decode_files(info, found.root / "test", test_paths, p, (3, 32, 32)))
    return _tensor_bundle(info, spec, train, test, found.classes, norm, where)


def _cifar_classes(info: DatasetInfo, directory: Path) -> list[str]:
    """Class names from the meta file when it is readable, else numbers (labels are what matter)."""
    assert info.num_classes is not None
    meta, key = ("batches.meta", "label_names") if info.name == "cifar10" else ("meta", "fine_label_names")
    try:
        with open(directory / meta, "rb") as f:
            names = pickle.load(f, encoding="bytes")
        names = names.get(key.encode(), names.get(key))
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
        if len(names) == info.num_classes:
            return names
    except Exception:  # the meta file is optional: only the names of the classes are lost
        pass
    return [str(i) for i in range(info.num_classes)]


# ---- ImageNet ---------------------------------------------------------------------------------------
_IMAGENET_NORM = Normalization((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 255.0)


def _imagenet_probe(info: DatasetInfo, spec: DataSpec) -> None:
    root, hint = _root(info, spec)
    for sub in ("train", "val"):
        if not (root / sub).is_dir():
            raise _root_error(info, root, f"{sub}/ is not there", hint)
    classes = _folder_pair(info, root, "train", "val", hint)
    # Listing 1.28 million files is not cheap: look into the first class folder only.
    for sub in ("train", "val"):
        first = root / sub / classes[0]
        try:
            with os.scandir(first) as entries:
                has_image = any(e.name.lower().endswith(IMAGE_EXTENSIONS) for e in entries)
        except OSError as exc:
            raise _root_error(info, root, f"cannot list {first}: {exc.strerror}", hint) from None
        if not has_image:
            raise _root_error(info, root, f"{sub}/{classes[0]}/ holds no images (.JPEG, .jpg, .png)", hint)


def _imagenet_read(info: DatasetInfo, spec: DataSpec) -> DataBundle:
    _imagenet_probe(info, spec)
    root, _ = _root(info, spec)
    classes = _class_folders(info, root, root / "train", "")
    train_paths, train_y = _folder_files(info, root, root / "train", classes)
    test_paths, test_y = _folder_files(info, root, root / "val", classes)
    sel = _select(info, spec, train_y, test_y, len(classes), f" in {root}")
    # Fixed-width bytes: workers index them without touching per-string refcounts (no copy-on-write).
    train_arr = np.array([os.fsencode(p) for p in train_paths])
    test_arr = np.array([os.fsencode(p) for p in test_paths])

    def split(directory: Path, source: str, paths: np.ndarray, labels: Tensor, positions: Tensor) -> StreamingSplit:
        return StreamingSplit(
            directory=directory,
            paths=paths[positions.numpy()],
            labels=labels[positions].clone(),
            indices=positions,
            source=source,
            augmentation=spec.augmentation,
            normalization=_IMAGENET_NORM,
            num_workers=spec.num_workers,
        )

    return DataBundle(
        name=info.name,
        train=split(root / "train", "train", train_arr, train_y, sel.train),
        val=split(root / "train", "train", train_arr, train_y, sel.val),
        test=split(root / "val", "test", test_arr, test_y, sel.test),
        num_classes=len(classes),
        input_shape=(3, 224, 224),
        classes=tuple(classes),
    )


# ---- synthetic ------------------------------------------------------------------------------------
_SYNTHETIC_TRAIN, _SYNTHETIC_TEST, _SYNTHETIC_AMPLITUDE = 1000, 200, 0.2


def _synthetic_arrays(split_seed: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Class prototypes (smooth, left-right symmetric, so flip_crop keeps the class) plus unit noise;
    the amplitude makes the classes learnable but not trivially (a linear model gets about 95%)."""
    gen = _generator(split_seed, "synthetic")
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


def _synthetic_probe(info: DatasetInfo, spec: DataSpec) -> None:
    _check_sizes(info, spec, _SYNTHETIC_TRAIN, _SYNTHETIC_TEST, "")


def _synthetic_read(info: DatasetInfo, spec: DataSpec) -> DataBundle:
    train_x, train_y, test_x, test_y = _synthetic_arrays(spec.split_seed)
    mean = train_x.mean(dim=(0, 2, 3)).tolist()
    std = train_x.std(dim=(0, 2, 3)).tolist()
    train = _Pool("train", train_y, lambda p: train_x[p])
    test = _Pool("test", test_y, lambda p: test_x[p])
    return _tensor_bundle(
        info, spec, train, test, [str(i) for i in range(10)], Normalization(tuple(mean), tuple(std), 1.0)
    )


# ---- the registry ---------------------------------------------------------------------------------
_CIFAR_LAYOUT = (
    "{pickle}/ with {files} (torchvision's layout; data.root is that directory or its parent), or "
    "train/<class>/*.jpg and test/<class>/*.jpg with {n} class folders of 32x32 images (ImageFolder; "
    ".jpg, .jpeg or .png; classes sorted by name)"
)
_IDX_LAYOUT = (
    "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte "
    "(the standard IDX files, each plain or .gz) in data.root or in its {sub}/"
)

DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo(
            name="digits",
            title="digits",
            description="UCI optical digits from scikit-learn: 1,797 grayscale 8x8 images, 10 classes; "
            "a fixed stratified 20% test split",
            layout="nothing: the data ships with scikit-learn (data.root is ignored)",
            augmentations=("none",),
            num_classes=10,
            input_shape=(1, 8, 8),
            probe=_digits_probe,
            read=_digits_read,
            needs_root=False,
        ),
        DatasetInfo(
            name="mnist",
            title="MNIST",
            description="MNIST handwritten digits: 60,000 + 10,000 grayscale 28x28 images, 10 classes",
            layout=_IDX_LAYOUT.format(sub="MNIST/raw"),
            augmentations=("none",),
            num_classes=10,
            input_shape=(1, 28, 28),
            probe=_idx_probe,
            read=_idx_read_all,
        ),
        DatasetInfo(
            name="fashion_mnist",
            title="Fashion-MNIST",
            description="Fashion-MNIST clothing images: 60,000 + 10,000 grayscale 28x28 images, 10 classes",
            layout=_IDX_LAYOUT.format(sub="FashionMNIST/raw"),
            augmentations=("none", "flip_crop"),
            num_classes=10,
            input_shape=(1, 28, 28),
            probe=_idx_probe,
            read=_idx_read_all,
            default_root="/usr/share/datasets/fashion-mnist",
            root_hint="install the Debian package dataset-fashion-mnist, or set data.root",
        ),
        DatasetInfo(
            name="cifar10",
            title="CIFAR-10",
            description="CIFAR-10: 50,000 + 10,000 color 32x32 images, 10 classes",
            layout=_CIFAR_LAYOUT.format(pickle="cifar-10-batches-py", files="data_batch_1..5 and test_batch", n=10),
            augmentations=("none", "flip_crop"),
            num_classes=10,
            input_shape=(3, 32, 32),
            probe=_cifar_probe,
            read=_cifar_read,
        ),
        DatasetInfo(
            name="cifar100",
            title="CIFAR-100",
            description="CIFAR-100 (fine labels): 50,000 + 10,000 color 32x32 images, 100 classes",
            layout=_CIFAR_LAYOUT.format(pickle="cifar-100-python", files="train and test", n=100),
            augmentations=("none", "flip_crop"),
            num_classes=100,
            input_shape=(3, 32, 32),
            probe=_cifar_probe,
            read=_cifar_read,
        ),
        DatasetInfo(
            name="imagenet",
            title="ImageNet",
            description="ImageNet (ILSVRC 2012) streamed from disk at 224x224; its val/ is the test split",
            layout="train/<wnid>/*.JPEG and val/<wnid>/*.JPEG (ImageFolder; the same class folders in both; "
            "val/ sorted into class folders, as torchvision's ImageNet scripts leave it)",
            augmentations=("none", "imagenet"),
            num_classes=None,
            input_shape=(3, 224, 224),
            probe=_imagenet_probe,
            read=_imagenet_read,
            in_memory=False,
        ),
        DatasetInfo(
            name="synthetic",
            title="synthetic",
            description="for tests: class-conditional Gaussian 3x16x16 images, 10 classes, 1,000 training "
            "and 200 test images generated from data.split_seed",
            layout="nothing: the data is generated (data.root is ignored)",
            augmentations=("none", "flip_crop"),
            num_classes=10,
            input_shape=(3, 16, 16),
            probe=_synthetic_probe,
            read=_synthetic_read,
            needs_root=False,
        ),
    )
}
