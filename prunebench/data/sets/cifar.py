"""CIFAR-10 and CIFAR-100: torchvision's pickled batches, or an ImageFolder tree of the images."""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from prunebench.data.folders import decode_files, folder_files, folder_pair
from prunebench.data.registry import DataBundle, DatasetInfo, data_root, read_error, register_dataset, root_error
from prunebench.data.selection import Pool, check_sizes, tensor_bundle
from prunebench.data.splits import Normalization
from prunebench.protocol import DataSpec


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
    root, hint = data_root(info, spec)
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
        raise root_error(info, root, f"{partial[0]} lacks {', '.join(partial[1])}", hint)
    if (root / "train").is_dir() and (root / "test").is_dir():
        classes = folder_pair(info, root, "train", "test", hint)
        train = folder_files(info, root, root / "train", classes)
        test = folder_files(info, root, root / "test", classes)
        return _CifarFound(root, None, classes, train, test)
    if (root / "train").is_dir() or (root / "test").is_dir():
        problem = (
            "train/ is there but test/ is not" if (root / "train").is_dir() else "test/ is there but train/ is not"
        )
    else:
        problem = f"neither {fmt.directory}/ nor train/ and test/ is there"
    raise root_error(info, root, problem, hint)


def _probe(info: DatasetInfo, spec: DataSpec) -> None:
    found = _cifar_locate(info, spec)
    if found.train is not None and found.test is not None:
        check_sizes(info, spec, found.train[1].numel(), found.test[1].numel(), f" in {found.root}")


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
            raise read_error(info, path, f"not a CIFAR pickle ({exc.__class__.__name__}: {exc})") from None
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
            raise read_error(info, path, f"data of {data.dtype} {data.shape}, expected uint8 N x 3072")
        if label.shape != (data.shape[0],):
            raise read_error(info, path, f"{label.size} {label_key} for {data.shape[0]} images")
        images.append(data)
        labels.append(label)
    stacked = np.concatenate(images).reshape(-1, 3, 32, 32)  # rows are R plane, G plane, B plane
    return torch.from_numpy(stacked), torch.from_numpy(np.concatenate(labels))


def _read(info: DatasetInfo, spec: DataSpec) -> DataBundle:
    found = _cifar_locate(info, spec)
    norm = _CIFAR_NORM[info.name]
    where = f" in {found.root}"
    if found.pickle_dir is not None:
        fmt = _CIFAR_PICKLE[info.name]
        train_x, train_y = _read_cifar_pickle(info, found.pickle_dir, fmt.train, fmt.label_key)
        test_x, test_y = _read_cifar_pickle(info, found.pickle_dir, fmt.test, fmt.label_key)
        classes = _cifar_classes(info, found.pickle_dir)
        train = Pool("train", train_y, lambda p: train_x[p])
        test = Pool("test", test_y, lambda p: test_x[p])
        return tensor_bundle(info, spec, train, test, classes, norm, where)
    assert found.train is not None and found.test is not None
    (train_paths, train_y), (test_paths, test_y) = found.train, found.test
    # Subsets are chosen before decoding: a CPU-scale subset of the JPEGs loads in seconds.
    train = Pool("train", train_y, lambda p: decode_files(info, found.root / "train", train_paths, p, (3, 32, 32)))
    test = Pool("test", test_y, lambda p: decode_files(info, found.root / "test", test_paths, p, (3, 32, 32)))
    return tensor_bundle(info, spec, train, test, found.classes, norm, where)


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


_CIFAR_LAYOUT = (
    "{pickle}/ with {files} (torchvision's layout; data.root is that directory or its parent), or "
    "train/<class>/*.jpg and test/<class>/*.jpg with {n} class folders of 32x32 images (ImageFolder; "
    ".jpg, .jpeg or .png; classes sorted by name)"
)


register_dataset(
    DatasetInfo(
        name="cifar10",
        title="CIFAR-10",
        description="CIFAR-10: 50,000 + 10,000 color 32x32 images, 10 classes",
        layout=_CIFAR_LAYOUT.format(pickle="cifar-10-batches-py", files="data_batch_1..5 and test_batch", n=10),
        augmentations=("none", "flip_crop"),
        num_classes=10,
        input_shape=(3, 32, 32),
        train_examples=50000,
        probe=_probe,
        read=_read,
    )
)


register_dataset(
    DatasetInfo(
        name="cifar100",
        title="CIFAR-100",
        description="CIFAR-100 (fine labels): 50,000 + 10,000 color 32x32 images, 100 classes",
        layout=_CIFAR_LAYOUT.format(pickle="cifar-100-python", files="train and test", n=100),
        augmentations=("none", "flip_crop"),
        num_classes=100,
        input_shape=(3, 32, 32),
        train_examples=50000,
        probe=_probe,
        read=_read,
    )
)
